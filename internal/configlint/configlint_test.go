package configlint_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/benthos-danube/benthos-danube/internal/configlint"
)

// warnings collects what the test rule writes as warnings (the rule is
// registered once per process, so its writer is too). Lint runs the rule on
// the test's goroutine.
var warnings strings.Builder

func testSpec() *service.ConfigSpec {
	rule := configlint.Rule("configlint_test_lints", "configlint_test input", testSpec, func(conf *service.ParsedConfig) []string {
		var out []string
		n, err := conf.FieldInt("n")
		if err != nil {
			return []string{err.Error()}
		}
		if n < 1 {
			out = append(out, fmt.Sprintf("n: must be at least 1, got %d", n))
		}
		if l, _ := conf.FieldStringList("list"); len(l) == 0 {
			out = append(out, "list: must not be empty")
		}
		if n == 42 {
			out = append(out, configlint.WarningPrefix+"n: 42 is legal but suspicious")
		}
		return out
	}, &warnings)
	return service.NewConfigSpec().
		Field(service.NewIntField("n").Default(7)).
		Field(service.NewStringListField("list")).
		LintRule(rule)
}

// TestRule: the check sees the config with Benthos' defaults applied (n
// left out is 7) and an empty list as an empty list. A value of the wrong
// type makes Benthos skip the rule (and v4.60.0 lint does not flag the type
// either: only start-up does).
func TestRule(t *testing.T) {
	env := service.NewEnvironment()
	if err := env.RegisterInput("configlint_test", testSpec(), func(*service.ParsedConfig, *service.Resources) (service.Input, error) {
		return nil, context.Canceled
	}); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		yaml string
		want []string
	}{
		{"list: [a]", nil},
		{"list: [a]\nn: 0", []string{"n: must be at least 1, got 0"}},
		{"list: []", []string{"list: must not be empty"}},
		{"n: -1", []string{"n: must be at least 1, got -1", "list: must not be empty"}},
		{"n: many", nil},
		{"list: [a]\nn: 42", nil}, // a warning only
	}
	for _, c := range cases {
		lints, err := env.NewComponentConfigLinter().LintInputYAML([]byte("configlint_test:\n  " + strings.ReplaceAll(c.yaml, "\n", "\n  ") + "\n"))
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, l := range lints {
			got = append(got, l.What)
		}
		if !slices.Equal(got, c.want) {
			t.Errorf("%q: lints %q, want %q", c.yaml, got, c.want)
		}
	}
	if got := warnings.String(); !strings.Contains(got, "lint warning: configlint_test input: n: 42 is legal but suspicious\n") {
		t.Errorf("warnings written: %q", got)
	}
}
