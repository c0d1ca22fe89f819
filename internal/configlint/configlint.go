// Package configlint lets a component run its start-up checks at lint time.
//
// Benthos lint rules are Bloblang mappings, parsed once when the spec's
// LintRule is called, with a copy of the global Bloblang environment, and run
// with the component's config object as `this`: the fields as written plus
// the defaults of the fields left out (optional fields without a default stay
// absent). Rule registers a Bloblang function that takes that object, parses
// it with the component's own spec into a *service.ParsedConfig (so Benthos
// applies the defaults and conversions of start-up), and returns what the
// component's check function reports: the lint rule is then just
// `root = <name>(this)`, and lint and start-up share one set of checks.
//
// Registering Bloblang plugins is the one global state this project allows.
package configlint

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"sync"

	"github.com/redpanda-data/benthos/v4/public/bloblang"
	"github.com/redpanda-data/benthos/v4/public/service"
)

var (
	mu         sync.Mutex
	registered = map[string]bool{}
)

// Rule registers, on its first call for name, the Bloblang function name in
// the global Bloblang environment, and returns the lint rule that calls it.
// Call it in the component's Spec before LintRule, which parses the rule at
// once. spec is called once, at the first lint. check returns the problems of
// a parsed config, one line each. A config that spec cannot parse gives no
// finding (Benthos' own lint reports a missing required field). Benthos does
// not run the rule at all when a value has the wrong type for its field, e.g.
// `n: many` for an int; v4.60.0 lint does not flag that either, start-up does.
//
// A finding that starts with WarningPrefix is a warning: Benthos lint rules
// have no warning level (every finding fails `lint` and stops `-c` from
// starting), so warnings are written to warn as one line each, prefixed by
// the component, and not reported to Benthos.
func Rule(name, component string, spec func() *service.ConfigSpec, check func(*service.ParsedConfig) []string, warn io.Writer) string {
	mu.Lock()
	defer mu.Unlock()
	if !registered[name] {
		parseSpec := sync.OnceValue(spec)
		pspec := bloblang.NewPluginSpec().
			Category("benthos-danube").
			Description(fmt.Sprintf("Returns the configuration problems of a `%s` config object, as start-up reports them. The lint rule of the `%s` component; of no use in mappings.", component, component)).
			Param(bloblang.NewAnyParam("config").Description(fmt.Sprintf("The config object of a `%s`.", component)))
		err := bloblang.RegisterFunctionV2(name, pspec, func(args *bloblang.ParsedParams) (bloblang.Function, error) {
			v, err := args.Get("config")
			if err != nil {
				return nil, err
			}
			return func() (any, error) { return lint(parseSpec(), component, check, warn, v), nil }, nil
		})
		if err != nil {
			panic(fmt.Sprintf("registering the Bloblang function %s: %v", name, err))
		}
		registered[name] = true
	}
	return "root = " + name + "(this)"
}

// WarningPrefix marks a finding of a check function as a warning.
const WarningPrefix = "warning: "

func lint(spec *service.ConfigSpec, component string, check func(*service.ParsedConfig) []string, warn io.Writer, v any) []any {
	b, err := json.Marshal(emptyLists(v))
	if err != nil {
		return nil
	}
	conf, err := spec.ParseYAML(string(b), nil)
	if err != nil {
		return nil
	}
	var out []any
	for _, s := range check(conf) {
		if w, ok := strings.CutPrefix(s, WarningPrefix); ok {
			if warn != nil {
				fmt.Fprintf(warn, "lint warning: %s: %s\n", component, w)
			}
			continue
		}
		out = append(out, s)
	}
	return out
}

// emptyLists returns v with every nil []any replaced by an empty one: the
// linter gives "urls: []" as a nil list, which JSON would turn into null.
func emptyLists(v any) any {
	switch t := v.(type) {
	case []any:
		out := make([]any, len(t))
		for i, e := range t {
			out[i] = emptyLists(e)
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(t))
		for k, e := range t {
			out[k] = emptyLists(e)
		}
		return out
	}
	return v
}
