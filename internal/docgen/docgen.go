// Package docgen renders the configuration reference of our plugins from their
// Benthos specs, so the README can never drift from what the binary accepts.
//
// The README holds the rendered text between the markers BeginMarker and
// EndMarker. A test in this package fails when that text is stale; refresh it
// with `go generate ./internal/docgen`.
package docgen

//go:generate go test . -run TestReadmeReferenceIsCurrent -update

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/redpanda-data/benthos/v4/public/service"
)

// Markers delimit the generated reference inside README.md.
const (
	BeginMarker = "<!-- BEGIN GENERATED REFERENCE (go generate ./internal/docgen) -->"
	EndMarker   = "<!-- END GENERATED REFERENCE -->"
)

// Component names one plugin to document.
type Component struct {
	Kind string // "input", "output", "processor" or "metrics"
	Name string
}

// Components lists the plugins that this distribution adds, in README order.
var Components = []Component{
	{Kind: "input", Name: "mqtt"},
	{Kind: "input", Name: "danube"},
	{Kind: "output", Name: "danube"},
	{Kind: "output", Name: "mqtt"},
	{Kind: "processor", Name: "danube_connector_payload"},
	{Kind: "metrics", Name: "prometheus"},
}

// Reference renders the Markdown reference of every component in comps, as
// registered in env.
func Reference(env *service.Environment, comps []Component) ([]byte, error) {
	var buf bytes.Buffer
	for _, c := range comps {
		view, ok := lookup(env, c)
		if !ok {
			return nil, fmt.Errorf("%s %q is not registered in the environment", c.Kind, c.Name)
		}
		data, err := view.TemplateData()
		if err != nil {
			return nil, fmt.Errorf("read spec of %s %q: %w", c.Kind, c.Name, err)
		}
		raw, err := view.FormatJSON()
		if err != nil {
			return nil, fmt.Errorf("read spec of %s %q: %w", c.Kind, c.Name, err)
		}
		optional, err := optionalFields(raw)
		if err != nil {
			return nil, fmt.Errorf("read spec of %s %q: %w", c.Kind, c.Name, err)
		}
		writeComponent(&buf, c, data, optional)
	}
	return buf.Bytes(), nil
}

func lookup(env *service.Environment, c Component) (*service.ConfigView, bool) {
	switch c.Kind {
	case "input":
		return env.GetInputConfig(c.Name)
	case "output":
		return env.GetOutputConfig(c.Name)
	case "processor":
		return env.GetProcessorConfig(c.Name)
	case "metrics":
		return env.GetMetricsConfig(c.Name)
	}
	return nil, false
}

// specField is the part of a field spec in FormatJSON output that the
// reference needs beyond TemplateData.
type specField struct {
	Name       string      `json:"name"`
	Kind       string      `json:"kind"`
	IsOptional bool        `json:"is_optional"`
	Children   []specField `json:"children"`
}

// optionalFields returns the full names of the fields that may be left out
// although they have no default, or that are objects made of defaults.
func optionalFields(raw []byte) (map[string]bool, error) {
	var spec struct {
		Config specField `json:"config"`
	}
	if err := json.Unmarshal(raw, &spec); err != nil {
		return nil, err
	}
	out := map[string]bool{}
	var walk func(prefix string, fs []specField)
	walk = func(prefix string, fs []specField) {
		for _, f := range fs {
			name := prefix + f.Name
			if f.IsOptional || len(f.Children) > 0 {
				out[name] = true
			}
			childPrefix := name + "."
			if f.Kind == "array" {
				childPrefix = name + "[]."
			}
			walk(childPrefix, f.Children)
		}
	}
	walk("", spec.Config.Children)
	return out, nil
}

func writeComponent(buf *bytes.Buffer, c Component, d service.TemplateDataPlugin, optional map[string]bool) {
	fmt.Fprintf(buf, "%s `%s` %s\n\n", strings.Repeat("#", componentLevel), c.Name, c.Kind)
	if d.Summary != "" {
		fmt.Fprintf(buf, "%s\n\n", strings.TrimSpace(d.Summary))
	}
	if d.Description != "" {
		fmt.Fprintf(buf, "%s\n\n", markdown(strings.TrimSpace(d.Description), componentLevel+1))
	}
	if d.AdvancedConfigYAML != "" {
		fmt.Fprintf(buf, "All fields with their defaults:\n\n```yaml\n%s\n```\n\n", strings.TrimSpace(d.AdvancedConfigYAML))
	}
	if len(d.Fields) > 0 {
		buf.WriteString("| field | type | default | description |\n|---|---|---|---|\n")
		for _, f := range d.Fields {
			def := f.DefaultMarshalled
			switch {
			case def != "":
				def = "`" + cell(def) + "`"
			case optional[f.FullName]:
				def = "optional"
			default:
				def = "**required**"
			}
			typ := f.Type
			if f.IsSecret {
				typ += ", secret"
			}
			if f.IsInterpolated {
				typ += ", interpolated"
			}
			desc := inline(oneLine(f.Description))
			if len(f.Options) > 0 {
				desc += " Options: `" + strings.Join(f.Options, "`, `") + "`."
			}
			for _, o := range f.AnnotatedOptions {
				desc += fmt.Sprintf(" `%s`: %s", o[0], inline(oneLine(o[1])))
			}
			if len(f.ExamplesMarshalled) > 0 {
				desc += " Example: `" + oneLine(f.ExamplesMarshalled[0]) + "`."
			}
			fmt.Fprintf(buf, "| `%s` | %s | %s | %s |\n", f.FullName, typ, def, cell(desc))
		}
		buf.WriteString("\n")
	}
	for _, ex := range d.Examples {
		fmt.Fprintf(buf, "**Example: %s.** %s\n\n```yaml\n%s\n```\n\n", ex.Title, inline(oneLine(ex.Summary)), strings.TrimSpace(ex.Config))
	}
}

// componentLevel is the Markdown heading level of each component in the
// README's reference section.
const componentLevel = 3

func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

func cell(s string) string {
	return strings.ReplaceAll(s, "|", `\|`)
}

// Splice replaces the text between the markers in doc with ref.
func Splice(doc, ref []byte) ([]byte, error) {
	b := bytes.Index(doc, []byte(BeginMarker))
	e := bytes.Index(doc, []byte(EndMarker))
	if b < 0 || e < 0 || e < b {
		return nil, errors.New("README.md lacks the generated-reference markers")
	}
	var out bytes.Buffer
	out.Write(doc[:b+len(BeginMarker)])
	out.WriteString("\n\n")
	out.Write(bytes.TrimSpace(ref))
	out.WriteString("\n\n")
	out.Write(doc[e:])
	return out.Bytes(), nil
}
