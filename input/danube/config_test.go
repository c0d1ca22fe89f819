package danubein

import (
	"strings"
	"testing"

	"github.com/redpanda-data/benthos/v4/public/service"
)

// TestConfigChecks runs the same configs through lint and start-up: one set
// of checks, the same one-line error from both.
func TestConfigChecks(t *testing.T) {
	env := service.NewEnvironment()
	if err := Register(env); err != nil {
		t.Fatal(err)
	}
	const base = "url: http://127.0.0.1:6650\nsubscription: s\n"
	for _, tc := range []struct {
		name, yaml, want string
	}{
		{"valid", base + "topics: [ /default/a, /default/b ]\n", ""},
		{"valid key_shared filters", base + "topics: [ /default/a ]\nsubscription_type: key_shared\nkey_filters: [ 'dev-*' ]\n", ""},
		{"no topics", base + "topics: []\n", "field topics: must list at least one topic"},
		{"bad topic", base + "topics: [ /default/a, default.b ]\n", "field topics[1]:"},
		{"duplicate topic", base + "topics: [ /default/a, /default/a ]\n", "field topics[1]: /default/a is listed twice"},
		{"bad url", "url: ftp://x\nsubscription: s\ntopics: [ /default/a ]\n", "field url:"},
		{"empty subscription", "url: http://127.0.0.1:6650\nsubscription: ' '\ntopics: [ /default/a ]\n", "field subscription: must not be empty"},
		{"bad type", base + "topics: [ /default/a ]\nsubscription_type: queue\n", "field subscription_type: must be one of"},
		{"filters without key_shared", base + "topics: [ /default/a ]\nkey_filters: [ x ]\n", "field key_filters: applies to subscription_type: key_shared only"},
		{"max_unacked", base + "topics: [ /default/a ]\nmax_unacked: 0\n", "field max_unacked: must be at least 1, got 0"},
		{"nack_delay", base + "topics: [ /default/a ]\nnack_delay: 2m\n", "field nack_delay: must be at most 1m0s"},
		{"empty consumer", base + "topics: [ /default/a ]\nconsumer_name: ''\n", "field consumer_name: must not be empty"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lints, err := env.NewComponentConfigLinter().LintInputYAML([]byte("danube:\n  " + strings.ReplaceAll(tc.yaml, "\n", "\n  ")))
			if err != nil {
				t.Fatal(err)
			}
			var lintText []string
			for _, l := range lints {
				lintText = append(lintText, l.What)
			}
			conf, err := Spec().ParseYAML(tc.yaml, env)
			if err != nil {
				t.Fatal(err)
			}
			_, startErr := newInput(conf, service.MockResources())
			if tc.want == "" {
				if len(lints) > 0 || startErr != nil {
					t.Fatalf("lint %v, start-up %v; want none", lintText, startErr)
				}
				return
			}
			if startErr == nil || !strings.Contains(startErr.Error(), tc.want) {
				t.Fatalf("start-up error %v, want %q", startErr, tc.want)
			}
			if len(lints) == 0 || !strings.Contains(strings.Join(lintText, "\n"), startErr.Error()) {
				t.Fatalf("lint %v, want it to contain the start-up error %q", lintText, startErr)
			}
		})
	}
}
