package docgen

import "testing"

func TestMarkdown(t *testing.T) {
	cases := []struct {
		name, in, want string
	}{
		{"section heading", "== Flow control", "#### Flow control"},
		{"subsection heading", "=== Limits", "##### Limits"},
		{"not a heading", "a == b", "a == b"},
		{"xref", "see xref:configuration:batching.adoc[in this doc].",
			"see [in this doc](https://docs.redpanda.com/redpanda-connect/configuration/batching/)."},
		{"xref with path and anchor", "A xref:guides:bloblang/about.adoc#functions[Bloblang query]",
			"A [Bloblang query](https://docs.redpanda.com/redpanda-connect/guides/bloblang/about/#functions)"},
		{"two xrefs", "xref:a:b.adoc[x] and xref:c:d.adoc[y]",
			"[x](https://docs.redpanda.com/redpanda-connect/a/b/) and [y](https://docs.redpanda.com/redpanda-connect/c/d/)"},
		{"link", "read link:https://mqtt.org/spec[the spec]", "read [the spec](https://mqtt.org/spec)"},
		{"code fence untouched", "```yaml\n== not a heading\n```", "```yaml\n== not a heading\n```"},
		{"list untouched", "- `mqtt_topic` (string)", "- `mqtt_topic` (string)"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := markdown(c.in, 4); got != c.want {
				t.Fatalf("markdown(%q) = %q, want %q", c.in, got, c.want)
			}
		})
	}
}
