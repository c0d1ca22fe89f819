package topicmatch

import (
	"errors"
	"fmt"
	"strings"

	"github.com/benthos-danube/benthos-danube/internal/danube/topicname"
)

// Template is a Danube topic name that may contain "{name}" placeholders
// bound by the named placeholders of an MQTT filter, e.g. "/iot/{kind}_zone1"
// for the filter "sensors/{kind}/zone1". A Template is immutable and safe for
// concurrent use.
type Template struct {
	raw   string
	names []string
	parts []tmplPart
	size  int // bytes of literal text
}

type tmplPart struct {
	lit string
	cap int // index into the filter's placeholders, or -1 for a literal
}

// ParseTemplate parses tmpl against the placeholder names of a filter (in the
// filter's order, see Filter.Placeholders). It fails when a placeholder is
// not bound by the filter, when braces are malformed, or when the name could
// never be a valid Danube topic "/namespace/topic" whatever the captured
// values are. Because Expand only accepts captured values made of
// [A-Za-z0-9_-], a template that passes this check always expands to a valid
// name or to an error.
func ParseTemplate(tmpl string, names []string) (*Template, error) {
	t := &Template{raw: tmpl, names: append([]string(nil), names...)}
	rest := tmpl
	var probe strings.Builder
	for rest != "" {
		i := strings.IndexAny(rest, "{}")
		if i < 0 {
			t.addLit(rest)
			probe.WriteString(rest)
			break
		}
		if rest[i] == '}' {
			return nil, fmt.Errorf("invalid danube_topic %q: unmatched '}'", tmpl)
		}
		if i > 0 {
			t.addLit(rest[:i])
			probe.WriteString(rest[:i])
		}
		rest = rest[i+1:]
		j := strings.IndexByte(rest, '}')
		if j < 0 {
			return nil, fmt.Errorf("invalid danube_topic %q: unclosed '{'", tmpl)
		}
		name := rest[:j]
		rest = rest[j+1:]
		if !isIdent(name) {
			return nil, fmt.Errorf("invalid danube_topic %q: placeholder {%s}: a name must match [A-Za-z_][A-Za-z0-9_]*", tmpl, name)
		}
		idx := -1
		for k, n := range names {
			if n == name {
				idx = k
				break
			}
		}
		if idx < 0 {
			bound := "the filter binds no placeholders"
			if len(names) > 0 {
				bound = "the filter binds {" + strings.Join(names, "}, {") + "}"
			}
			return nil, fmt.Errorf("invalid danube_topic %q: placeholder {%s} is not bound by mqtt_topic (%s)", tmpl, name, bound)
		}
		t.parts = append(t.parts, tmplPart{cap: idx})
		probe.WriteByte('x') // any valid captured value
	}
	if err := topicname.Validate(probe.String()); err != nil {
		if len(t.parts) == 0 || t.Static() {
			return nil, fmt.Errorf("invalid danube_topic %q: %w", tmpl, err)
		}
		return nil, fmt.Errorf("invalid danube_topic %q: with placeholders replaced by a value it gives %q: %w", tmpl, probe.String(), err)
	}
	return t, nil
}

func (t *Template) addLit(s string) {
	t.size += len(s)
	if n := len(t.parts); n > 0 && t.parts[n-1].cap < 0 {
		t.parts[n-1].lit += s
		return
	}
	t.parts = append(t.parts, tmplPart{lit: s, cap: -1})
}

// String returns the template as configured.
func (t *Template) String() string { return t.raw }

// Static reports whether the template has no placeholders.
func (t *Template) Static() bool {
	for _, p := range t.parts {
		if p.cap >= 0 {
			return false
		}
	}
	return true
}

// Expand substitutes the captured values (indexed like the filter's
// placeholders) into the template. A value that is empty or contains a
// character outside [A-Za-z0-9_-] gives an error naming the placeholder and
// the value; no invalid name is ever returned.
func (t *Template) Expand(caps []string) (string, error) {
	if len(t.parts) == 1 && t.parts[0].cap < 0 {
		return t.parts[0].lit, nil
	}
	n := t.size
	for _, p := range t.parts {
		if p.cap >= 0 {
			if p.cap >= len(caps) {
				return "", fmt.Errorf("placeholder #%d has no captured value", p.cap)
			}
			v := caps[p.cap]
			if err := validSegmentValue(v); err != nil {
				return "", fmt.Errorf("danube_topic %q: placeholder {%s} captured %q, which %w", t.raw, t.names[p.cap], v, err)
			}
			n += len(v)
		}
	}
	var b strings.Builder
	b.Grow(n)
	for _, p := range t.parts {
		if p.cap >= 0 {
			b.WriteString(caps[p.cap])
		} else {
			b.WriteString(p.lit)
		}
	}
	return b.String(), nil
}

// Preview substitutes the captured values without checking them, to show
// which topic a message was meant for when Expand refused its values. Its
// result may not be a valid topic name; never send to it.
func (t *Template) Preview(caps []string) string {
	var b strings.Builder
	for _, p := range t.parts {
		switch {
		case p.cap < 0:
			b.WriteString(p.lit)
		case p.cap < len(caps):
			b.WriteString(caps[p.cap])
		}
	}
	return b.String()
}

func validSegmentValue(v string) error {
	if v == "" {
		return errors.New("is empty (an empty MQTT topic level)")
	}
	for i := 0; i < len(v); i++ {
		if !topicname.IsNameChar(v[i]) {
			return errors.New("contains characters outside [A-Za-z0-9_-]")
		}
	}
	return nil
}
