package topicmatch

import (
	"strings"
	"testing"
)

func TestCoversTable(t *testing.T) {
	cases := []struct {
		a, b string
		want bool
	}{
		{"a/#", "a/b", true},
		{"a/#", "a", true}, // '#' includes the parent level
		{"a/#", "a/#", true},
		{"a/#", "a/+/c", true},
		{"a/#", "b/c", false},
		{"a/b", "a/#", false},
		{"sensors/+/zone1", "sensors/temp/zone1", true},
		{"sensors/{kind}/zone1", "sensors/temp/zone1", true}, // placeholders match like '+'
		{"sensors/+/zone1", "sensors/{kind}/zone1", true},
		{"sensors/temp/zone1", "sensors/+/zone1", false},
		{"sensors/+/zone1", "sensors/temp/#", false}, // they overlap, neither covers the other
		{"sensors/temp/#", "sensors/+/zone1", false},
		{"+", "a", true},
		{"+", "a/b", false},
		{"+", "#", false},
		{"#", "a/b/c", true},
		{"#", "+/#", true},
		{"+/#", "#", true}, // every topic has a first level
		{"+/+/#", "#", false},
		{"a/+/#", "a/#", false}, // a/# matches "a", a/+/# does not
		{"a/+/#", "a/b/#", true},
		{"a/+/#", "a/b", true},
		{"a/+", "a/+/c", false},
		{"+/+/#", "/#", true}, // "/#" matches nothing shorter than "/x": "" is no topic
		{"+/+/#", "a/#", false},
		{"a//b", "a//b", true},
		{"a/+/b", "a//b", true},
		// '$' topics are not matched by a filter starting with a wildcard.
		{"#", "$SYS/#", false},
		{"+/x", "$SYS/x", false},
		{"#", "+/x", true},
		{"$SYS/#", "$SYS/broker/load", true},
		{"a/#", "a/$x", true},
		// Shared subscriptions are matched without the prefix.
		{"$share/g/a/#", "a/b", true},
		{"a/#", "$share/g/a/b", true},
		{"$share/g1/a/b", "$share/g2/a/b", true},
		{"$share/g/#", "$SYS/x", false},
	}
	for _, c := range cases {
		a, b := mustParse(t, c.a), mustParse(t, c.b)
		if got := a.Covers(b); got != c.want {
			t.Errorf("Parse(%q).Covers(%q) = %v, want %v", c.a, c.b, got, c.want)
		}
	}
}

// TestCoversExhaustive checks Covers against its definition, with refMatch
// as the matcher: a covers b when every topic b matches, a matches too. All
// filters of up to three levels over a small alphabet are paired, and topics
// of up to four levels (one more than any filter) over the same literals plus
// one that no filter names are tried.
func TestCoversExhaustive(t *testing.T) {
	levels := []string{"a", "b", "", "$s"}
	var filters []string
	var grow func(prefix []string)
	grow = func(prefix []string) {
		if len(prefix) > 0 {
			filters = append(filters, strings.Join(prefix, "/"))
			filters = append(filters, strings.Join(append(append([]string(nil), prefix...), "#"), "/"))
		}
		if len(prefix) == 2 {
			return
		}
		for _, l := range append([]string{"+"}, levels...) {
			grow(append(append([]string(nil), prefix...), l))
		}
	}
	grow(nil)
	filters = append(filters, "#")
	var topics []string
	var growT func(prefix []string)
	growT = func(prefix []string) {
		if len(prefix) > 0 {
			topics = append(topics, strings.Join(prefix, "/"))
		}
		if len(prefix) == 4 {
			return
		}
		for _, l := range append([]string{"c"}, levels...) {
			growT(append(append([]string(nil), prefix...), l))
		}
	}
	growT(nil)

	var parsed []*Filter
	valid := filters[:0]
	for _, s := range filters {
		if f, err := Parse(s); err == nil { // "" is not a filter
			parsed = append(parsed, f)
			valid = append(valid, s)
		}
	}
	if len(valid) < 60 {
		t.Fatalf("only %d filters generated", len(valid))
	}
	for i, a := range valid {
		for j, b := range valid {
			want := true
			for _, topic := range topics {
				if refMatch(b, topic) && !refMatch(a, topic) {
					want = false
					break
				}
			}
			if got := parsed[i].Covers(parsed[j]); got != want {
				t.Fatalf("Parse(%q).Covers(%q) = %v, want %v", a, b, got, want)
			}
		}
	}
}

func mustParse(t *testing.T, s string) *Filter {
	t.Helper()
	f, err := Parse(s)
	if err != nil {
		t.Fatalf("Parse(%q): %v", s, err)
	}
	return f
}
