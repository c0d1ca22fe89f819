package docgen

import (
	"regexp"
	"strings"
)

// Benthos writes component documentation in AsciiDoc (its own site renders
// it), and so do our specs, so that `benthos-danube list` and Benthos'
// tooling show them as Benthos' own. The README is Markdown: markdown turns
// the few AsciiDoc constructs that occur in spec text into their Markdown
// equivalents, so no `== Heading` or `xref:` reaches the README.

// docsBase is where Benthos' xref targets live on the web. An xref
// `xref:configuration:batching.adoc[text]` names the module (configuration)
// and the page (batching).
const docsBase = "https://docs.redpanda.com/redpanda-connect/"

var (
	// xref:module:path/page.adoc[text] or xref:module:path/page.adoc#anchor[text]
	xrefPattern = regexp.MustCompile(`xref:([a-z0-9_-]+):([A-Za-z0-9_./-]+)\.adoc(#[A-Za-z0-9_-]+)?\[([^\]]*)\]`)
	// link:https://…[text]
	linkPattern = regexp.MustCompile(`link:(https?://[^\[\s]+)\[([^\]]*)\]`)
	// == Heading, === Heading, …
	headingPattern = regexp.MustCompile(`^(=+) (.+)$`)
)

// markdown converts AsciiDoc headings, cross references and links in s to
// Markdown. A section heading `==` becomes a Markdown heading of the given
// level, `===` one level deeper, and so on.
func markdown(s string, level int) string {
	lines := strings.Split(s, "\n")
	fence := false
	for i, l := range lines {
		if strings.HasPrefix(l, "```") {
			fence = !fence
			continue
		}
		if fence {
			continue
		}
		if m := headingPattern.FindStringSubmatch(l); m != nil {
			depth := min(level+max(len(m[1])-2, 0), 6)
			lines[i] = strings.Repeat("#", depth) + " " + m[2]
			continue
		}
		lines[i] = inline(l)
	}
	return strings.Join(lines, "\n")
}

// inline converts the AsciiDoc cross references and links of one line.
func inline(l string) string {
	l = xrefPattern.ReplaceAllStringFunc(l, func(x string) string {
		m := xrefPattern.FindStringSubmatch(x)
		page := strings.TrimSuffix(m[2], "/index")
		url := docsBase + m[1] + "/" + page + "/" + m[3]
		text := m[4]
		if text == "" {
			text = page
		}
		return "[" + text + "](" + url + ")"
	})
	return linkPattern.ReplaceAllString(l, "[$2]($1)")
}
