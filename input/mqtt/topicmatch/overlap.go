package topicmatch

import "strings"

// Overlaps reports whether some topic name matches both f and g. Placeholders
// match like '+', a "$share/<group>/" prefix is ignored (as in matching), '#'
// also matches the parent level, and the '$' rule applies: a wildcard first
// level does not match a topic whose first level starts with '$'.
func (f *Filter) Overlaps(g *Filter) bool {
	a, b := f.lvls, g.lvls
	if dollarOnly(a) && wild(b[0]) || dollarOnly(b) && wild(a[0]) {
		return false
	}
	for i := 0; ; i++ {
		switch {
		case i == len(a) && i == len(b):
			return true
		case i == len(a):
			return b[i] == "#"
		case i == len(b):
			return a[i] == "#"
		}
		x, y := a[i], b[i]
		if x == "#" || y == "#" {
			return true
		}
		if x != "+" && y != "+" && x != y {
			return false
		}
	}
}

func wild(level string) bool { return level == "+" || level == "#" }

// dollarOnly reports whether every topic a filter matches starts with '$'.
func dollarOnly(lvls []string) bool { return strings.HasPrefix(lvls[0], "$") }
