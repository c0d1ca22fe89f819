package danubeout

import (
	"slices"
	"testing"

	"github.com/redpanda-data/benthos/v4/public/service"
)

// lintOutput lints a danube output config with an environment that has only
// this output registered.
func lintOutput(t *testing.T, yaml string) []string {
	t.Helper()
	env := service.NewEnvironment()
	if err := Register(env); err != nil {
		t.Fatal(err)
	}
	lints, err := env.NewComponentConfigLinter().LintOutputYAML([]byte("danube:\n" + yaml))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range lints {
		out = append(out, l.What)
	}
	return out
}

// startUpOutput runs the output's constructor on yaml.
func startUpOutput(t *testing.T, yaml string) error {
	t.Helper()
	env := service.NewEnvironment()
	conf, err := Spec().ParseYAML(yaml, env)
	if err != nil {
		t.Fatalf("ParseYAML: %v", err)
	}
	out, _, _, err := newFromConfig(env, conf, service.MockResources())
	if err == nil {
		t.Cleanup(func() { _ = out.Close(t.Context()) })
	}
	return err
}

// TestConfigLintAndStartUp runs every config through the linter and through
// the constructor: both must report the same single line.
func TestConfigLintAndStartUp(t *testing.T) {
	const u = "  url: http://127.0.0.1:6650\n"
	cases := []struct{ name, yaml, want string }{
		{"url empty", "  url: \"\"\n", `danube output: field url: must not be empty`},
		{"url blank", "  url: \" \"\n", `danube output: field url: must not be empty`},
		{"url scheme ftp", "  url: ftp://127.0.0.1:6650\n",
			`danube output: field url: invalid Danube URL "ftp://127.0.0.1:6650": unsupported scheme "ftp://"; use host:port, optionally prefixed by http:// or https:// (TLS is set by the tls field, not by the scheme)`},
		{"url scheme grpc", "  url: grpc://broker:6650\n",
			`danube output: field url: invalid Danube URL "grpc://broker:6650": unsupported scheme "grpc://"; use host:port, optionally prefixed by http:// or https:// (TLS is set by the tls field, not by the scheme)`},
		{"url without port", "  url: http://127.0.0.1\n",
			`danube output: field url: invalid Danube URL "http://127.0.0.1": no port; use host:port, e.g. 127.0.0.1:6650 (6650 is Danube's default)`},
		{"url host only", "  url: broker\n",
			`danube output: field url: invalid Danube URL "broker": no port; use host:port, e.g. broker:6650 (6650 is Danube's default)`},
		{"url port out of range", "  url: http://broker:99999\n",
			`danube output: field url: invalid Danube URL "http://broker:99999": port "99999" is not a number from 1 to 65535`},
		{"url port name", "  url: broker:grpc\n",
			`danube output: field url: invalid Danube URL "broker:grpc": port "grpc" is not a number from 1 to 65535`},
		{"url without host", "  url: \":6650\"\n",
			`danube output: field url: invalid Danube URL ":6650": no host`},
		{"url bad host", "  url: http://bro!ker:6650\n",
			`danube output: field url: invalid Danube URL "http://bro!ker:6650": invalid host "bro!ker"; use a host name (letters, digits, '.', '-', '_') or an IP address`},
		{"url path", "  url: http://broker:6650/api\n",
			`danube output: field url: invalid Danube URL "http://broker:6650/api": unexpected "/api" after host:port`},
		{"url IPv6 without brackets", "  url: \"::1:6650\"\n",
			`danube output: field url: invalid Danube URL "::1:6650": too many colons in address; write an IPv6 address in brackets, e.g. [::1]:6650`},
		{"static topic", u + "  topic: default/no-leading-slash\n",
			`danube output: field topic: invalid topic name "default/no-leading-slash": must have the form "/namespace/topic" (letters, digits, '_' and '-' only)`},
		{"partitions", u + "  partitions: -1\n", `danube output: field partitions: must be 0 (not partitioned) or positive, got -1`},
		{"producer_name", u + "  producer_name: \"\"\n", `danube output: field producer_name: must not be empty`},
		{"schema.version", u + "  schema: {subject: s, version: -1}\n", `danube output: field schema.version: must be 0 (the latest version) or positive, got -1`},
		{"send_timeout", u + "  send_timeout: 0s\n", `danube output: field send_timeout: must be positive, got 0s`},
		{"max_producers", u + "  max_producers: 0\n", `danube output: field max_producers: must be at least 1, got 0`},
		{"producer_idle_timeout", u + "  producer_idle_timeout: -1s\n", `danube output: field producer_idle_timeout: must be positive, got -1s`},
		{"max_in_flight", u + "  max_in_flight: 0\n", `danube output: field max_in_flight: must be at least 1, got 0`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if lints := lintOutput(t, c.yaml); !slices.Equal(lints, []string{c.want}) {
				t.Errorf("lint:\n got %q\nwant [%q]", lints, c.want)
			}
			if err := startUpOutput(t, c.yaml); err == nil || err.Error() != c.want {
				t.Errorf("start-up:\n got %v\nwant %s", err, c.want)
			}
		})
	}
}

// TestConfigLintClean: the URL forms the url field documents, and an
// interpolated topic, lint and start without findings.
func TestConfigLintClean(t *testing.T) {
	for _, y := range []string{
		"  url: http://127.0.0.1:6650\n",
		"  url: HTTPS://broker.example.com:6650/\n",
		"  url: danube-broker.example.com:6650\n",
		"  url: danube_broker:6650\n",
		"  url: \"[::1]:6650\"\n",
		"  url: http://127.0.0.1:6650\n  topic: '/default/${! @x }'\n",
		"  url: http://127.0.0.1:6650\n  topic: /default/t\n  max_in_flight: 1\n",
	} {
		if got := lintOutput(t, y); len(got) != 0 {
			t.Errorf("lint %q = %q, want nothing", y, got)
		}
		if err := startUpOutput(t, y); err != nil {
			t.Errorf("start-up %q: %v", y, err)
		}
	}
}

// TestFieldErrorsAsTheyCome: an error of Benthos' field accessors already
// names the field, so start-up returns it without wrapping it again.
func TestFieldErrorsAsTheyCome(t *testing.T) {
	const u = "  url: http://127.0.0.1:6650\n"
	for _, c := range []struct{ name, yaml, want string }{
		{"send_timeout", u + "  send_timeout: soon\n", `failed to parse 'send_timeout' as a duration string: time: invalid duration "soon"`},
		{"producer_idle_timeout", u + "  producer_idle_timeout: later\n", `failed to parse 'producer_idle_timeout' as a duration string: time: invalid duration "later"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			if err := startUpOutput(t, c.yaml); err == nil || err.Error() != c.want {
				t.Errorf("start-up:\n got %v\nwant %s", err, c.want)
			}
		})
	}
}
