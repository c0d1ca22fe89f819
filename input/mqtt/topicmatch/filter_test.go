package topicmatch

import (
	"strings"
	"testing"
)

// refMatch is a deliberately simple reference for MQTT 3.1.1 §4.7 matching:
// split both strings on '/', compare recursively. It knows nothing of
// placeholders or shared subscriptions.
func refMatch(filter, topic string) bool {
	if topic == "" {
		return false
	}
	f, t := strings.Split(filter, "/"), strings.Split(topic, "/")
	if strings.HasPrefix(topic, "$") && (f[0] == "+" || f[0] == "#") {
		return false
	}
	var rec func(f, t []string) bool
	rec = func(f, t []string) bool {
		if len(f) == 0 {
			return len(t) == 0
		}
		if f[0] == "#" {
			return true
		}
		if len(t) == 0 {
			return false
		}
		if f[0] == "+" || f[0] == t[0] {
			return rec(f[1:], t[1:])
		}
		return false
	}
	return rec(f, t)
}

func TestMatchTable(t *testing.T) {
	cases := []struct {
		filter, topic string
		want          bool
	}{
		// §4.7.1.2 multi-level wildcard
		{"sport/tennis/player1/#", "sport/tennis/player1", true},
		{"sport/tennis/player1/#", "sport/tennis/player1/ranking", true},
		{"sport/tennis/player1/#", "sport/tennis/player1/score/wimbledon", true},
		{"sport/#", "sport", true},
		{"sensors/#", "sensors", true},
		{"sensors/#", "sensors/", true},
		{"sensors/#", "sensorsX", false},
		{"#", "a/b/c", true},
		{"#", "/", true},
		// §4.7.1.3 single-level wildcard
		{"sport/tennis/+", "sport/tennis/player1", true},
		{"sport/tennis/+", "sport/tennis/player1/ranking", false},
		{"sport/+", "sport", false},
		{"sport/+", "sport/", true},
		{"+/+", "/finance", true},
		{"/+", "/finance", true},
		{"+", "/finance", false},
		{"+", "a", true},
		{"a/+/c", "a//c", true},
		{"sensors/+/zone1", "sensors/temp/zone1", true},
		{"sensors/+/zone1", "sensors/temp/zone2", false},
		{"sensors/{kind}/zone1", "sensors/temp/zone1", true},
		// §4.7.2 topics beginning with $
		{"#", "$SYS/broker", false},
		{"+/monitor/Clients", "$SYS/monitor/Clients", false},
		{"$SYS/#", "$SYS/monitor/Clients", true},
		{"$SYS/monitor/+", "$SYS/monitor/Clients", true},
		{"a/#", "a/$x", true},
		// shared subscriptions: prefix stripped before matching
		{"$share/g1/sensors/#", "sensors/a", true},
		{"$share/g1/sensors/#", "sensors", true},
		{"$share/g1/#", "$SYS/x", false},
		{"$share/g1/sensors/+", "$share/g1/sensors/a", false},
		// exact
		{"a/b", "a/b", true},
		{"a/b", "a/b/c", false},
		{"a/b/c", "a/b", false},
		{"a", "", false},
	}
	for _, c := range cases {
		f, err := Parse(c.filter)
		if err != nil {
			t.Fatalf("Parse(%q): %v", c.filter, err)
		}
		if got := f.Match(c.topic); got != c.want {
			t.Errorf("%q matches %q = %v, want %v", c.filter, c.topic, got, c.want)
		}
	}
}

func TestParseErrors(t *testing.T) {
	cases := map[string]string{
		"":                         "must not be empty",
		"a/#/b":                    "'#' must be the last level",
		"a+":                       "'+' must occupy a whole level",
		"a/b#":                     "'#' must occupy a whole level",
		"a/+b/c":                   "'+' must occupy a whole level",
		"a/\x00":                   "null character",
		"$share/g":                 "$share/<group>/<filter>",
		"$share//a":                "group",
		"$share/g/":                "must not be empty",
		"$share/g+/a":              "must not contain",
		"a/{1x}":                   "placeholder",
		"a/x{y}":                   "placeholder",
		"a/{b}/{b}":                "used twice",
		"a/{":                      "placeholder",
		"\xff":                     "UTF-8",
		strings.Repeat("a", 65536): "longer than",
	}
	for in, want := range cases {
		_, err := Parse(in)
		if err == nil {
			t.Errorf("Parse(%q): no error, want %q", in, want)
			continue
		}
		if !strings.Contains(err.Error(), want) || !strings.HasPrefix(err.Error(), "invalid filter ") {
			t.Errorf("Parse(%q) = %q, want it to contain %q", in, err, want)
		}
	}
	f, err := Parse("a/#/b")
	if err == nil || err.Error() != `invalid filter "a/#/b": '#' must be the last level` || f != nil {
		t.Errorf("exact message: %v", err)
	}
}

func TestParseForms(t *testing.T) {
	f, err := Parse("$share/grp/sensors/{kind}/zone1/#")
	if err != nil {
		t.Fatal(err)
	}
	if f.Subscription() != "$share/grp/sensors/+/zone1/#" || f.MatchFilter() != "sensors/+/zone1/#" || f.ShareGroup() != "grp" {
		t.Fatalf("got %q %q %q", f.Subscription(), f.MatchFilter(), f.ShareGroup())
	}
	caps := make([]string, 1)
	if !f.MatchCapture("sensors/temp/zone1/a/b", caps) || caps[0] != "temp" {
		t.Fatalf("capture %v", caps)
	}
	g, _ := Parse("x/{a}/y/{b}")
	caps = make([]string, 2)
	if !g.MatchCapture("x/1/y/2", caps) || caps[0] != "1" || caps[1] != "2" {
		t.Fatalf("capture %v", caps)
	}
	if p := g.Placeholders(); len(p) != 2 || p[0] != "a" || p[1] != "b" {
		t.Fatalf("placeholders %v", p)
	}
}

func TestValidateTopicName(t *testing.T) {
	for _, ok := range []string{"a", "/", "a/b", "$SYS/x", strings.Repeat("x", 65535)} {
		if err := ValidateTopicName(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []string{"", "a/+", "#", "a\x00", "\xff", strings.Repeat("x", 65536)} {
		if ValidateTopicName(bad) == nil {
			t.Errorf("%q: want error", bad)
		}
	}
}

// FuzzMatch compares the matcher with refMatch for every valid filter.
// Placeholders are exercised by rewriting '+' levels to {pN}.
func FuzzMatch(f *testing.F) {
	seeds := [][2]string{
		{"sensors/#", "sensors"}, {"sensors/#", "sensors/a/b"}, {"+/+", "/finance"},
		{"+", "/finance"}, {"#", "$SYS/x"}, {"$SYS/#", "$SYS"}, {"a/+/c", "a//c"},
		{"sport/+", "sport"}, {"a/b", "a/b/"}, {"/", "/"}, {"+/#", "a"}, {"$share/g/a/+", "a/b"},
		{"a/#/b", "a/x/b"}, {"a+", "a+"}, {"", "a"}, {"#", ""},
	}
	for _, s := range seeds {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, filter, topic string) {
		flt, err := Parse(filter)
		if err != nil {
			return
		}
		if ValidateTopicName(topic) != nil {
			return
		}
		want := refMatch(flt.MatchFilter(), topic)
		if got := flt.Match(topic); got != want {
			t.Fatalf("Parse(%q).Match(%q) = %v, reference says %v", filter, topic, got, want)
		}
		// Same filter with every '+' named must match identically and capture
		// the levels at the '+' positions.
		lv := strings.Split(flt.MatchFilter(), "/")
		var pos []int
		for i, l := range lv {
			if l == "+" {
				lv[i] = "{p" + strings.Repeat("x", len(pos)) + "}"
				pos = append(pos, i)
			}
		}
		named, err := Parse(strings.Join(lv, "/"))
		if err != nil {
			t.Fatalf("named variant of %q: %v", filter, err)
		}
		caps := make([]string, len(pos))
		if got := named.MatchCapture(topic, caps); got != want {
			t.Fatalf("named %q vs %q = %v, want %v", named, topic, got, want)
		}
		if want {
			tl := strings.Split(topic, "/")
			for k, p := range pos {
				if caps[k] != tl[p] {
					t.Fatalf("%q vs %q: capture %d = %q, want %q", named, topic, k, caps[k], tl[p])
				}
			}
		}
	})
}
