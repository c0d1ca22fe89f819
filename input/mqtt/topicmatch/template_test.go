package topicmatch

import (
	"strings"
	"testing"

	"github.com/benthos-danube/benthos-danube/internal/danube/topicname"
)

// refExpand is a deliberately simple reference for Template.Expand: replace
// each {name} textually, then validate the whole result.
func refExpand(tmpl string, names, vals []string) (string, bool) {
	out := tmpl
	for i, n := range names {
		for _, c := range vals[i] {
			if !(c == '_' || c == '-' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
				if strings.Contains(tmpl, "{"+n+"}") {
					return "", false
				}
			}
		}
		if vals[i] == "" && strings.Contains(tmpl, "{"+n+"}") {
			return "", false
		}
		out = strings.ReplaceAll(out, "{"+n+"}", vals[i])
	}
	return out, topicname.Validate(out) == nil
}

func TestTemplateTable(t *testing.T) {
	names := []string{"kind", "dev"}
	cases := []struct {
		tmpl    string
		caps    []string
		want    string
		wantErr string
	}{
		{"/iot/{kind}_zone1", []string{"temp", "d1"}, "/iot/temp_zone1", ""},
		{"/{dev}/{kind}", []string{"temp", "d-1"}, "/d-1/temp", ""},
		{"/iot/static", nil, "/iot/static", ""},
		{"/iot/{kind}{dev}", []string{"a", "b"}, "/iot/ab", ""},
		{"/iot/{kind}", []string{"", "x"}, "", "is empty"},
		{"/iot/{kind}", []string{"a.b", "x"}, "", `placeholder {kind} captured "a.b"`},
		{"/iot/{kind}", []string{"a b", "x"}, "", "outside [A-Za-z0-9_-]"},
	}
	for _, c := range cases {
		tp, err := ParseTemplate(c.tmpl, names)
		if err != nil {
			t.Fatalf("%q: %v", c.tmpl, err)
		}
		got, err := tp.Expand(c.caps)
		if c.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), c.wantErr) {
				t.Errorf("%q %v: err %v, want %q", c.tmpl, c.caps, err, c.wantErr)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("%q %v = %q, %v; want %q", c.tmpl, c.caps, got, err, c.want)
		}
	}
}

func TestTemplateParseErrors(t *testing.T) {
	cases := map[string]string{
		"iot/x":           "/namespace/topic",
		"/iot":            "/namespace/topic",
		"/iot/a/b":        "/namespace/topic",
		"/iot/a.b":        "/namespace/topic",
		"/iot/{missing}":  "placeholder {missing} is not bound by mqtt_topic (the filter binds {kind})",
		"/iot/{kind":      "unclosed",
		"/iot/kind}":      "unmatched",
		"/iot/{1}":        "a name must match",
		"/{kind}/{kind}/": "/namespace/topic",
		"":                "/namespace/topic",
	}
	for in, want := range cases {
		_, err := ParseTemplate(in, []string{"kind"})
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseTemplate(%q) = %v, want %q", in, err, want)
		}
	}
	if _, err := ParseTemplate("/a/{x}", nil); err == nil || !strings.Contains(err.Error(), "binds no placeholders") {
		t.Errorf("unbound: %v", err)
	}
}

// FuzzExpand compares Template.Expand with refExpand, and checks that every
// successful expansion is a valid Danube topic name.
func FuzzExpand(f *testing.F) {
	f.Add("/iot/{a}_zone1", "temp", "x")
	f.Add("/{a}/{b}", "ns", "t")
	f.Add("/{a}/{b}", "", "t")
	f.Add("/x/{b}{a}", "a/b", "c")
	f.Add("/x/y", "", "")
	f.Add("/x/{a", "1", "2")
	f.Fuzz(func(t *testing.T, tmpl, va, vb string) {
		names := []string{"a", "b"}
		tp, err := ParseTemplate(tmpl, names)
		if err != nil {
			return
		}
		got, err := tp.Expand([]string{va, vb})
		want, ok := refExpand(tmpl, names, []string{va, vb})
		if (err == nil) != ok {
			t.Fatalf("%q with %q,%q: Expand err %v, reference ok=%v (%q)", tmpl, va, vb, err, ok, want)
		}
		if err == nil {
			if got != want {
				t.Fatalf("%q with %q,%q = %q, reference %q", tmpl, va, vb, got, want)
			}
			if verr := topicname.Validate(got); verr != nil {
				t.Fatalf("expansion %q invalid: %v", got, verr)
			}
		}
	})
}
