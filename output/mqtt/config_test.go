package mqttout

import (
	"strings"
	"testing"

	"github.com/redpanda-data/benthos/v4/public/service"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestConfigChecks: lint and start-up report the same one-line error for
// each bad setting (one set of checks, internal/configlint).
func TestConfigChecks(t *testing.T) {
	env := service.NewEnvironment()
	require.NoError(t, Register(env))
	for _, tc := range []struct {
		name, yaml, want string
	}{
		{"no urls", "urls: []\ntopic: a", "field urls: at least one broker URL is required"},
		{"bad scheme", "urls: [ ftp://h:1 ]\ntopic: a", `field urls[0]: unsupported scheme "ftp"`},
		{"no port", "urls: [ tcp://h ]\ntopic: a", `field urls[0]: "tcp://h" has no port`},
		{"wildcard topic", "urls: [ tcp://h:1 ]\ntopic: a/+/b", `field topic: topic name "a/+/b" must not contain '+', '#' or U+0000`},
		{"empty topic", "urls: [ tcp://h:1 ]\ntopic: ''", "field topic: topic name must not be empty"},
		{"qos 3", "urls: [ tcp://h:1 ]\ntopic: a\nqos: '3'", `field qos: must be 0, 1 or 2, got "3"`},
		{"retained maybe", "urls: [ tcp://h:1 ]\ntopic: a\nretained: maybe", `field retained: must be true or false, got "maybe"`},
		{"write_timeout 0", "urls: [ tcp://h:1 ]\ntopic: a\nwrite_timeout: 0s", "field write_timeout: must be positive"},
		{"connect_timeout 0", "urls: [ tcp://h:1 ]\ntopic: a\nconnect_timeout: 0s", "field connect_timeout: must be positive"},
		{"keepalive 10ms", "urls: [ tcp://h:1 ]\ntopic: a\nkeepalive: 10ms", "field keepalive: must be 0 (disabled) or between 1s"},
		{"protocol 4", "urls: [ tcp://h:1 ]\ntopic: a\nprotocol_version: '4'", `field protocol_version: unknown value "4" (supported: 3.1.1, 5)`},
		{"user_properties on 3.1.1", "urls: [ tcp://h:1 ]\ntopic: a\nuser_properties: { include_prefixes: [ x ] }", "field user_properties: MQTT 3.1.1 has no user properties: set protocol_version: 5"},
		{"max_in_flight 0", "urls: [ tcp://h:1 ]\ntopic: a\nmax_in_flight: 0", "field max_in_flight: must be at least 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lints, err := env.NewComponentConfigLinter().LintOutputYAML([]byte("mqtt:\n" + indent(tc.yaml)))
			require.NoError(t, err)
			var texts []string
			for _, l := range lints {
				texts = append(texts, l.What)
			}
			require.Len(t, lints, 1, "lint: %v", texts)
			assert.Contains(t, lints[0].What, "mqtt output: "+tc.want)
			conf, err := Spec().ParseYAML(tc.yaml, env)
			require.NoError(t, err)
			_, err = newOutput(conf, service.MockResources(), dial311)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want, "start-up says the same")
			assert.Contains(t, lints[0].What, err.Error(), "one message for both")
		})
	}
	// Interpolated values are checked per message, not at lint.
	lints, err := env.NewComponentConfigLinter().LintOutputYAML([]byte("mqtt:\n  urls: [ tcp://h:1 ]\n  topic: 'd/${! @id }/c'\n  qos: '${! @q }'\n  retained: '${! @r }'\n"))
	require.NoError(t, err)
	assert.Empty(t, lints)
}

func indent(s string) string {
	return "  " + strings.ReplaceAll(s, "\n", "\n  ")
}
