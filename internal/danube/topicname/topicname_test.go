package topicname

import (
	"regexp"
	"testing"
)

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"/default/orders", true},
		{"/iot/sensors_zone-1", true},
		{"/a/b", true},
		{"default/orders", false},
		{"/default/", false},
		{"//orders", false},
		{"/default/a/b", false},
		{"/default/a.b", false},
		{"/default/a b", false},
		{"/dé/x", false},
		{"/A-1/b_2", true},
		{"/", false},
		{"/a", false},
		{"/a//b", false},
		{"//b", false},
		{"", false},
	} {
		if err := Validate(tc.name); (err == nil) != tc.ok {
			t.Errorf("Validate(%q) = %v, want ok=%v", tc.name, err, tc.ok)
		}
	}
}

// FuzzValidate compares the hand-written check with the regular expression
// that states the rule.
func FuzzValidate(f *testing.F) {
	rule := regexp.MustCompile(`^/[A-Za-z0-9_-]+/[A-Za-z0-9_-]+$`)
	for _, s := range []string{"/a/b", "a/b", "/a/", "//", "/a/b/c", "/a.b/c", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := Validate(s) == nil, rule.MatchString(s); got != want {
			t.Fatalf("Validate(%q) ok=%v, rule says %v", s, got, want)
		}
	})
}
