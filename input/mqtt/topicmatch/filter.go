// Package topicmatch implements MQTT 3.1.1 topic filters (§4.7) with named
// placeholders, and the expansion of those placeholders into Danube topic
// names.
//
// Everything here is pure: no I/O, no goroutines, no global state, so the
// matcher and the expansion can be table-tested and fuzzed in isolation.
//
// Filter syntax accepted by Parse:
//
//   - the MQTT wildcards: '+' matches exactly one level (an empty level
//     included), '#' matches any number of levels including the parent level
//     ("sensors/#" matches "sensors"); both must occupy a whole level and '#'
//     must be the last level;
//   - named placeholders: a level written "{name}" is subscribed as '+' and the
//     value of that level is captured under name; name matches
//     [A-Za-z_][A-Za-z0-9_]* and must be unique within the filter;
//   - shared subscriptions: "$share/<group>/<filter>" is subscribed as written,
//     and matched against incoming topics with the prefix stripped.
//
// Topics starting with '$' are not matched by a filter whose first level is a
// wildcard ([MQTT-4.7.2-1]).
package topicmatch

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// maxFilterLen is the MQTT limit on the UTF-8 encoded length of a filter.
const maxFilterLen = 65535

// sharePrefix introduces a shared subscription (MQTT 5 §4.8.2, supported by
// Mosquitto, EMQX, HiveMQ, VerneMQ and mochi for 3.1.1 clients as well).
const sharePrefix = "$share/"

// Filter is a parsed, validated MQTT topic filter. The zero value is not
// usable; create one with Parse. A Filter is immutable and safe for
// concurrent use.
type Filter struct {
	raw   string   // as configured
	sub   string   // as sent in SUBSCRIBE: placeholders replaced by '+', share prefix kept
	match string   // sub without the share prefix
	group string   // share group, "" when not shared
	lvls  []string // levels of match; "+" and "#" are wildcards
	capAt []int    // per level: index into names, or -1
	names []string // placeholder names in level order
	wild1 bool     // first level is a wildcard: never matches '$' topics
}

// Parse validates s as an MQTT topic filter with optional named placeholders.
// The error text quotes the filter and says what is wrong, e.g.
// `invalid filter "a/#/b": '#' must be the last level`.
func Parse(s string) (*Filter, error) {
	f, err := parse(s)
	if err != nil {
		return nil, fmt.Errorf("invalid filter %q: %w", s, err)
	}
	return f, nil
}

func parse(s string) (*Filter, error) {
	if s == "" {
		return nil, errors.New("must not be empty")
	}
	if len(s) > maxFilterLen {
		return nil, fmt.Errorf("longer than %d bytes", maxFilterLen)
	}
	if !utf8.ValidString(s) {
		return nil, errors.New("not valid UTF-8")
	}
	if strings.IndexByte(s, 0) >= 0 {
		return nil, errors.New("must not contain the null character U+0000")
	}
	f := &Filter{raw: s}
	body := s
	if strings.HasPrefix(s, sharePrefix) {
		rest := s[len(sharePrefix):]
		i := strings.IndexByte(rest, '/')
		if i < 0 {
			return nil, errors.New("a shared subscription must have the form $share/<group>/<filter>")
		}
		f.group = rest[:i]
		body = rest[i+1:]
		if f.group == "" {
			return nil, errors.New("the share group of $share/<group>/<filter> must not be empty")
		}
		if strings.ContainsAny(f.group, "+#{}") {
			return nil, fmt.Errorf("the share group %q must not contain '+', '#' or placeholders", f.group)
		}
		if body == "" {
			return nil, errors.New("the filter of $share/<group>/<filter> must not be empty")
		}
	}
	lvls := strings.Split(body, "/")
	f.capAt = make([]int, len(lvls))
	var sub strings.Builder
	for i, l := range lvls {
		f.capAt[i] = -1
		switch {
		case l == "#":
			if i != len(lvls)-1 {
				return nil, errors.New("'#' must be the last level")
			}
		case l == "+":
		case strings.ContainsRune(l, '#'):
			return nil, errors.New("'#' must occupy a whole level")
		case strings.ContainsRune(l, '+'):
			return nil, errors.New("'+' must occupy a whole level")
		case strings.ContainsAny(l, "{}"):
			name, ok := placeholderName(l)
			if !ok {
				return nil, fmt.Errorf("level %q: a placeholder must occupy a whole level and be written {name} with name matching [A-Za-z_][A-Za-z0-9_]*", l)
			}
			for _, n := range f.names {
				if n == name {
					return nil, fmt.Errorf("placeholder {%s} is used twice", name)
				}
			}
			f.capAt[i] = len(f.names)
			f.names = append(f.names, name)
			l = "+"
		}
		lvls[i] = l
		if i > 0 {
			sub.WriteByte('/')
		}
		sub.WriteString(l)
	}
	f.lvls = lvls
	f.match = sub.String()
	f.wild1 = lvls[0] == "+" || lvls[0] == "#"
	if f.group != "" {
		f.sub = sharePrefix + f.group + "/" + f.match
	} else {
		f.sub = f.match
	}
	return f, nil
}

// placeholderName returns name when level is exactly "{name}" with a valid
// identifier.
func placeholderName(level string) (string, bool) {
	if len(level) < 3 || level[0] != '{' || level[len(level)-1] != '}' {
		return "", false
	}
	name := level[1 : len(level)-1]
	if !isIdent(name) {
		return "", false
	}
	return name, true
}

func isIdent(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '_', c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z':
		case c >= '0' && c <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}

// String returns the filter as configured.
func (f *Filter) String() string { return f.raw }

// Subscription returns the filter to send in SUBSCRIBE: placeholders replaced
// by '+', a "$share/<group>/" prefix kept.
func (f *Filter) Subscription() string { return f.sub }

// MatchFilter returns the filter incoming topics are matched against: the
// subscription without any shared-subscription prefix.
func (f *Filter) MatchFilter() string { return f.match }

// ShareGroup returns the shared-subscription group, or "" if the filter is not
// shared.
func (f *Filter) ShareGroup() string { return f.group }

// Placeholders returns the placeholder names in the order of their levels.
// Capture slices passed to MatchCapture are indexed the same way.
func (f *Filter) Placeholders() []string { return append([]string(nil), f.names...) }

// Match reports whether topic matches the filter under MQTT 3.1.1 §4.7.
func (f *Filter) Match(topic string) bool { return f.matchInto(topic, nil) }

// MatchCapture is Match that also stores the value of each named placeholder
// into caps (indexed like Placeholders). caps must have at least
// len(Placeholders()) elements, or be nil to capture nothing. The contents of
// caps are unspecified when the topic does not match.
func (f *Filter) MatchCapture(topic string, caps []string) bool {
	return f.matchInto(topic, caps)
}

func (f *Filter) matchInto(topic string, caps []string) bool {
	if topic == "" {
		return false
	}
	if f.wild1 && topic[0] == '$' { // [MQTT-4.7.2-1]
		return false
	}
	rest, done := topic, false
	for i, l := range f.lvls {
		if l == "#" {
			return true // the remaining levels, or none: "a/#" matches "a" [MQTT-4.7.1-2]
		}
		if done {
			return false // topic has fewer levels than the filter
		}
		var level string
		if j := strings.IndexByte(rest, '/'); j >= 0 {
			level, rest = rest[:j], rest[j+1:]
		} else {
			level, done = rest, true
		}
		if l == "+" {
			if caps != nil && f.capAt[i] >= 0 {
				caps[f.capAt[i]] = level
			}
			continue
		}
		if l != level {
			return false
		}
	}
	return done
}

// Covers reports whether f matches every topic that g matches. With f listed
// before g under first-match-wins routing, g then never gets a message: g is
// shadowed by f. Placeholders match like '+', a "$share/<group>/" prefix is
// ignored (as in matching), and the '$' rule applies: a filter whose first
// level is a wildcard does not cover a filter whose first level is a literal
// starting with '$'. Only topics that can exist count: every topic has at
// least one level and is not empty, so "+/#" covers "#".
func (f *Filter) Covers(g *Filter) bool {
	if f.wild1 && !g.wild1 && strings.HasPrefix(g.lvls[0], "$") {
		return false
	}
	a, b := f.lvls, g.lvls
	na, hashA := len(a), a[len(a)-1] == "#"
	if hashA {
		na--
	}
	nb, hashB := len(b), b[len(b)-1] == "#"
	if hashB {
		nb--
	}
	if hashA {
		// f matches every topic of at least na levels that starts like
		// a[:na]. g's shortest topics have nb levels, one more when the
		// nb-level topic would be the empty string, which is no topic:
		// "#" matches nothing shorter than "x", "/#" nothing shorter than "/x".
		shortest := nb
		if hashB && (nb == 0 || nb == 1 && b[0] == "") {
			shortest++
		}
		if shortest < na {
			return false
		}
	} else if hashB || nb != na {
		// f matches topics of exactly na levels only.
		return false
	}
	for i := 0; i < na; i++ {
		if a[i] == "+" {
			continue
		}
		// Past nb, g's '#' allows any level there.
		if i >= nb || b[i] == "+" || b[i] != a[i] {
			return false
		}
	}
	return true
}

// ValidateTopicName checks a concrete topic name as received in or sent with
// PUBLISH: not empty, at most 65535 bytes, valid UTF-8, no wildcards and no
// null character.
func ValidateTopicName(t string) error {
	switch {
	case t == "":
		return errors.New("topic name must not be empty")
	case len(t) > maxFilterLen:
		return fmt.Errorf("topic name is %d bytes long, more than the %d MQTT allows", len(t), maxFilterLen)
	case !utf8.ValidString(t):
		return errors.New("topic name is not valid UTF-8")
	case strings.ContainsAny(t, "+#\x00"):
		return fmt.Errorf("topic name %q must not contain '+', '#' or U+0000", t)
	}
	return nil
}
