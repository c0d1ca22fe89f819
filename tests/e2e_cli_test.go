package tests

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestE2EBadConfigExitsWithReason checks that a broken config stops the
// binary at once with a non-zero exit code, a message on stderr, and the
// reason on one line, and that `lint` fails on it with the same reason.
// Benthos writes lint errors through its logger, which goes to stdout unless
// logger.file is set, so the reason is looked for in both streams.
func TestE2EBadConfigExitsWithReason(t *testing.T) {
	valid := shippedConfig(t, "unused")
	tests := []struct {
		name   string
		yaml   string
		env    map[string]string // overrides of the default environment
		reason *regexp.Regexp    // must match a single line of stderr
	}{
		{
			name:   "unknown field",
			yaml:   strings.Replace(valid, "    clean_session: false", "    clean_sesion: false", 1),
			reason: regexp.MustCompile(`clean_sesion.*not recognised|not recognised.*clean_sesion`),
		},
		{
			name:   "invalid Danube topic",
			yaml:   strings.Replace(valid, "danube_topic: /iot/debug", "danube_topic: iot.debug", 1),
			reason: regexp.MustCompile(`iot\.debug`),
		},
		{
			name:   "invalid MQTT filter",
			yaml:   strings.Replace(valid, "unused/debug/#", "unused/debug/#/x", 1),
			reason: regexp.MustCompile(`debug/#/x`),
		},
		{
			name:   "bad qos",
			yaml:   strings.Replace(valid, "qos: AtMostOnce", "qos: Sometimes", 1),
			reason: regexp.MustCompile(`qos`),
		},
		{
			name:   "MQTT port out of range",
			yaml:   valid,
			env:    map[string]string{"MQTT_URL": "tcp://127.0.0.1:99999"},
			reason: quotesEscapedOrNot(`urls\[0\]: port 99999 in "tcp://127\.0\.0\.1:99999" is out of range`),
		},
		{
			name:   "MQTT URL without port",
			yaml:   valid,
			env:    map[string]string{"MQTT_URL": "tcp://127.0.0.1"},
			reason: quotesEscapedOrNot(`urls\[0\]: "tcp://127\.0\.0\.1" has no port`),
		},
		{
			name:   "Danube URL without port",
			yaml:   valid,
			env:    map[string]string{"DANUBE_URL": "http://127.0.0.1"},
			reason: quotesEscapedOrNot(`field url: invalid Danube URL "http://127\.0\.0\.1": no port`),
		},
		{
			name:   "Danube URL scheme",
			yaml:   valid,
			env:    map[string]string{"DANUBE_URL": "ftp://127.0.0.1:6650"},
			reason: quotesEscapedOrNot(`field url: invalid Danube URL "ftp://127\.0\.0\.1:6650": unsupported scheme "ftp://"`),
		},
		{
			name:   "unbound placeholder",
			yaml:   strings.Replace(valid, "danube_topic: /iot/debug", "danube_topic: /iot/{level}", 1),
			reason: regexp.MustCompile(`topic_mappings\[3\]\.danube_topic: .*placeholder \{level\} is not bound`),
		},
		{
			name:   "not YAML",
			yaml:   "input: [\n",
			reason: regexp.MustCompile(`(?i)yaml|parse|line`),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if tt.env == nil {
				require.NotEqual(t, valid, tt.yaml, "the replacement applied")
			}
			env := map[string]string{"MQTT_URL": "tcp://127.0.0.1:1", "DANUBE_URL": "http://127.0.0.1:1", "HTTP_ENABLED": "false"}
			for k, v := range tt.env {
				env[k] = v
			}
			matches := func(p *proc) bool {
				for _, line := range strings.Split(p.stderr.String()+"\n"+p.stdout.String(), "\n") {
					if tt.reason.MatchString(line) {
						return true
					}
				}
				return false
			}

			p := startBridge(t, tt.yaml, env)
			code := p.wait(t, 20*time.Second)
			assert.NotEqual(t, 0, code)
			stderr := p.stderr.String()
			assert.NotEmpty(t, strings.TrimSpace(stderr), "stderr says why it stopped")
			assert.True(t, matches(p), "no output line matches %s:\nstderr: %s\nstdout: %s", tt.reason, stderr, p.stdout)

			path := filepath.Join(t.TempDir(), "lint.yaml")
			require.NoError(t, os.WriteFile(path, []byte(tt.yaml), 0o600))
			l := startBin(t, env, "lint", path)
			assert.Equal(t, 1, l.wait(t, 20*time.Second), "lint fails")
			assert.True(t, matches(l), "no lint output line matches %s:\nstderr: %s\nstdout: %s", tt.reason, l.stderr, l.stdout)
		})
	}

	// A shadowed mapping is legal: lint passes and warns, the bridge starts
	// and warns.
	t.Run("shadowed mapping warns", func(t *testing.T) {
		t.Parallel()
		yaml := strings.Replace(valid, "unused/sensors/temp/#", "unused/sensors/temp/zone1", 1)
		require.NotEqual(t, valid, yaml)
		reason := quotesEscapedOrNot(`topic_mappings\[2\]\.mqtt_topic: filter "unused/sensors/temp/zone1" is shadowed by topic_mappings\[0\] \("unused/sensors/\+/zone1"\)`)
		env := map[string]string{"MQTT_URL": "tcp://127.0.0.1:1", "DANUBE_URL": "http://127.0.0.1:1", "HTTP_ENABLED": "false"}
		path := filepath.Join(t.TempDir(), "lint.yaml")
		require.NoError(t, os.WriteFile(path, []byte(yaml), 0o600))
		l := startBin(t, env, "lint", path)
		assert.Equal(t, 0, l.wait(t, 20*time.Second), "lint passes:\n%s%s", l.stdout, l.stderr)
		assert.Regexp(t, reason, l.stderr.String(), "lint warns")
		assert.Contains(t, l.stderr.String(), "lint warning: mqtt input: ")

		p := startBridge(t, yaml, env)
		require.Eventually(t, func() bool {
			out := p.stdout.String() + p.stderr.String()
			return reason.MatchString(out) && strings.Contains(out, "level=warn")
		}, 20*time.Second, 50*time.Millisecond, "the start-up warning")
		select {
		case <-p.done:
			t.Fatalf("the bridge exited:\n%s%s", p.stdout, p.stderr)
		default:
		}
	})

	t.Run("missing file", func(t *testing.T) {
		t.Parallel()
		p := startBin(t, nil, "-c", filepath.Join(t.TempDir(), "nope.yaml"))
		assert.NotEqual(t, 0, p.wait(t, 20*time.Second))
		assert.Contains(t, p.stderr.String()+p.stdout.String(), "nope.yaml")
	})
}

// quotesEscapedOrNot compiles re with every '"' also matching '\"': the run
// command logs lint errors in logfmt, which escapes quotes; `lint` prints them
// as they are.
func quotesEscapedOrNot(re string) *regexp.Regexp {
	return regexp.MustCompile(strings.ReplaceAll(re, `"`, `\\?"`))
}

// TestE2EDemo runs `benthos-danube demo`, waits for messages to show in the
// live view and stops it with SIGINT, which must exit 0.
func TestE2EDemo(t *testing.T) {
	p := startBin(t, nil, "demo", "--no-clear")
	re := regexp.MustCompile(`arrived in Danube: (\d+)`)
	require.Eventually(t, func() bool {
		for _, m := range re.FindAllStringSubmatch(p.stdout.String(), -1) {
			if n, _ := strconv.Atoi(m[1]); n > 0 {
				return true
			}
		}
		return false
	}, 10*time.Second, 100*time.Millisecond, "no arrivals shown within 10 s")
	out := p.stdout.String()
	for _, want := range []string{"/iot/sensors_zone1", "mqtt.topic=", "source=mqtt"} {
		assert.Eventually(t, func() bool { return strings.Contains(p.stdout.String(), want) },
			5*time.Second, 100*time.Millisecond, "%q not in the view:\n%s", want, out)
	}
	p.signal(t, syscall.SIGINT)
	assert.Equal(t, 0, p.wait(t, 20*time.Second), "Ctrl-C exits 0")
}

// TestE2EMigrateThenLint converts the reference connector TOML with the
// binary and lints the result with the binary.
func TestE2EMigrateThenLint(t *testing.T) {
	out := filepath.Join(t.TempDir(), "migrated.yaml")
	p := startBin(t, map[string]string{"MQTT_PASSWORD": "not-in-output"},
		"migrate", "--output", out, filepath.Join(repoRoot, "internal", "migrate", "testdata", "connector.toml"))
	require.Equal(t, 0, p.wait(t, 20*time.Second), p.stderr.String())
	assert.Contains(t, p.stderr.String(), "warning: ")
	b, err := os.ReadFile(out)
	require.NoError(t, err)
	assert.Contains(t, string(b), "topic_mappings:")
	assert.NotContains(t, string(b), "not-in-output")

	lint := startBin(t, nil, "lint", out)
	assert.Equal(t, 0, lint.wait(t, 20*time.Second), lint.stderr.String()+lint.stdout.String())

	bad := filepath.Join(t.TempDir(), "bad.toml")
	require.NoError(t, os.WriteFile(bad, []byte("connector_name = \"x\"\n"), 0o600))
	p = startBin(t, nil, "migrate", bad)
	assert.Equal(t, 1, p.wait(t, 20*time.Second))
	assert.Contains(t, p.stderr.String(), "missing required key(s): danube_service_url")
}

// TestE2EShippedConfigsLintAndTest runs `lint` and `test` over config/ with
// the binary, as CI does.
func TestE2EShippedConfigsLintAndTest(t *testing.T) {
	for _, args := range [][]string{{"lint", "./config/..."}, {"test", "./config/..."}} {
		p := startBin(t, nil, args...)
		assert.Equal(t, 0, p.wait(t, 60*time.Second), "%v:\n%s%s", args, p.stdout, p.stderr)
	}
}
