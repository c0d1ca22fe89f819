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
	rule := regexp.MustCompile(`^/` + PartPattern + `/` + PartPattern + `$`)
	for _, s := range []string{"/a/b", "a/b", "/a/", "//", "/a/b/c", "/a.b/c", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := Validate(s) == nil, rule.MatchString(s); got != want {
			t.Fatalf("Validate(%q) ok=%v, rule says %v", s, got, want)
		}
	})
}

// TestPartPattern checks that PartPattern accepts exactly the bytes
// IsNameChar accepts.
func TestPartPattern(t *testing.T) {
	re := regexp.MustCompile(`^` + PartPattern + `$`)
	for c := 0; c < 256; c++ {
		if got, want := re.MatchString(string([]byte{byte(c)})), IsNameChar(byte(c)); got != want {
			t.Errorf("byte %#x: PartPattern matches %v, IsNameChar %v", c, got, want)
		}
	}
	if re.MatchString("") {
		t.Error("PartPattern matches the empty string")
	}
}

func TestPartition(t *testing.T) {
	for _, tc := range []struct {
		name string
		base string
		n    int
	}{
		{"/a/b-part-0", "/a/b", 0},
		{"/a/b-part-12", "/a/b", 12},
		{"/a/b-part-1-part-2", "/a/b-part-1", 2},
		{"/a/b-part-007", "/a/b", 7},
		{"/a/b", "/a/b", -1},
		{"/a/b-part-", "/a/b-part-", -1},
		{"/a/b-part-x", "/a/b-part-x", -1},
		{"/a/b-part-+1", "/a/b-part-+1", -1},
		{"/a/b-part--1", "/a/b-part--1", -1},
		{"/a/b-part-99999999999999999999", "/a/b-part-99999999999999999999", -1},
	} {
		base, n := SplitPartition(tc.name)
		if base != tc.base || n != tc.n {
			t.Errorf("SplitPartition(%q) = %q, %d; want %q, %d", tc.name, base, n, tc.base, tc.n)
		}
	}
	if got := Partition("/a/b", 3); got != "/a/b-part-3" {
		t.Errorf("Partition = %q", got)
	}
	if base, n := SplitPartition(Partition("/a/b", 5)); base != "/a/b" || n != 5 {
		t.Errorf("SplitPartition(Partition) = %q, %d", base, n)
	}
}
