package migrate

import (
	"errors"
	"strings"
	"unicode/utf8"
)

// ValidateFilter checks an MQTT 3.1.1 topic filter: non-empty, valid UTF-8
// without NUL, at most 65535 bytes, '+' only as a whole level and '#' only as
// the whole last level. These are the checks whose failure made the Rust
// connector exit with "Failed to subscribe to topic".
func ValidateFilter(filter string) error {
	switch {
	case filter == "":
		return errors.New("empty filter")
	case len(filter) > 65535:
		return errors.New("longer than 65535 bytes")
	case !utf8.ValidString(filter):
		return errors.New("not valid UTF-8")
	case strings.ContainsRune(filter, 0):
		return errors.New("contains a NUL character")
	}
	levels := strings.Split(filter, "/")
	for i, l := range levels {
		if strings.Contains(l, "#") && (l != "#" || i != len(levels)-1) {
			return errors.New("'#' must be the whole last level")
		}
		if strings.Contains(l, "+") && l != "+" {
			return errors.New("'+' must be a whole level")
		}
	}
	return nil
}

// FiltersOverlap reports whether some topic name matches both filters (both
// assumed valid), with MQTT semantics: '+' is one level, '#' is the rest
// including the parent level.
func FiltersOverlap(a, b string) bool {
	la, lb := strings.Split(a, "/"), strings.Split(b, "/")
	for i := 0; ; i++ {
		switch {
		case i == len(la) && i == len(lb):
			return true
		case i == len(la):
			return lb[i] == "#"
		case i == len(lb):
			return la[i] == "#"
		}
		x, y := la[i], lb[i]
		if x == "#" || y == "#" {
			return true
		}
		if x != "+" && y != "+" && x != y {
			return false
		}
	}
}
