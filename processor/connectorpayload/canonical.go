package connectorpayload

import (
	"bytes"
	"errors"
	"slices"
	"sync"
	"unicode/utf8"
)

// The canonicaliser reproduces what the Rust connector does to a payload it
// can parse as JSON: serde_json::from_slice into a serde_json::Value, then
// serde_json::to_vec. That is:
//
//   - any JSON text is accepted, a bare scalar too, with JSON whitespace
//     (space, tab, CR, LF) around it; anything else fails: a BOM, trailing
//     bytes, trailing commas, invalid UTF-8 in a string, a raw control
//     character in a string, a lone UTF-16 surrogate escape, nesting deeper
//     than 127 arrays/objects (serde_json's recursion limit of 128), a number
//     out of the f64 range;
//   - the output is compact, object keys sorted bytewise (a BTreeMap, as
//     serde_json is built without preserve_order), a duplicated key keeps
//     its last value;
//   - strings are re-escaped: only '"', '\\' and the control characters
//     are escaped (\b \t \n \f \r, else \u00xx in lowercase hex); "/" and
//     non-ASCII characters are written as they are;
//   - numbers: see number.go.

// maxDepth is serde_json's recursion limit: the 128th nested array or
// object fails.
const maxDepth = 128

var errSyntax = errors.New("invalid JSON")

type member struct {
	keyStart, keyEnd int // decoded key in canon.keys
	start, end       int // `"key":value` in canon.out
}

type canon struct {
	src       []byte
	pos       int
	out       []byte
	remaining int
	keys      []byte   // decoded keys of the open objects
	members   []member // members of the open objects
	tmp       []byte
	str       []byte // a decoded string
}

var canonPool = sync.Pool{New: func() any { return &canon{} }}

// AppendCanonical appends to dst the bytes serde_json writes for src after
// parsing it into a Value, and reports whether src was JSON at all. When it
// was not, dst is returned unchanged.
func AppendCanonical(dst, src []byte) ([]byte, bool) {
	return appendCanonical(dst, src, false)
}

// appendCanonical is AppendCanonical; with unquote, a JSON string is
// appended as its decoded text instead (the connector's `string` schema
// type).
func appendCanonical(dst, src []byte, unquote bool) ([]byte, bool) {
	c := canonPool.Get().(*canon)
	c.src, c.pos, c.out, c.remaining = src, 0, dst, maxDepth
	c.keys, c.members = c.keys[:0], c.members[:0]
	base := len(dst)
	c.skipSpace()
	isString := c.peek() == '"'
	err := c.value()
	if err == nil {
		c.skipSpace()
		if c.pos != len(c.src) {
			err = errSyntax // trailing characters
		}
	}
	out := c.out
	if err == nil && isString && unquote {
		out = append(out[:base], c.str...)
	}
	c.src, c.out = nil, nil
	if cap(c.tmp) > 1<<16 {
		c.tmp = nil
	}
	if cap(c.str) > 1<<16 {
		c.str = nil
	}
	canonPool.Put(c)
	if err != nil {
		return out[:base], false
	}
	return out, true
}

func (c *canon) peek() byte {
	if c.pos < len(c.src) {
		return c.src[c.pos]
	}
	return 0
}

func (c *canon) skipSpace() {
	for c.pos < len(c.src) {
		switch c.src[c.pos] {
		case ' ', '\t', '\n', '\r':
			c.pos++
		default:
			return
		}
	}
}

func (c *canon) literal(word string) error {
	if !bytes.HasPrefix(c.src[c.pos:], []byte(word)) {
		return errSyntax
	}
	c.pos += len(word)
	c.out = append(c.out, word...)
	return nil
}

func (c *canon) value() error {
	switch b := c.peek(); {
	case b == '{':
		return c.object()
	case b == '[':
		return c.array()
	case b == '"':
		return c.string()
	case b == '-' || isDigit(b):
		return c.number()
	case b == 't':
		return c.literal("true")
	case b == 'f':
		return c.literal("false")
	case b == 'n':
		return c.literal("null")
	}
	return errSyntax
}

func (c *canon) enter() error {
	c.remaining--
	if c.remaining == 0 {
		return errSyntax // recursion limit
	}
	return nil
}

func (c *canon) array() error {
	if err := c.enter(); err != nil {
		return err
	}
	c.pos++
	c.out = append(c.out, '[')
	c.skipSpace()
	if c.peek() == ']' {
		c.pos++
		c.out = append(c.out, ']')
		c.remaining++
		return nil
	}
	for {
		c.skipSpace()
		if err := c.value(); err != nil {
			return err
		}
		c.skipSpace()
		switch c.peek() {
		case ',':
			c.pos++
			c.out = append(c.out, ',')
		case ']':
			c.pos++
			c.out = append(c.out, ']')
			c.remaining++
			return nil
		default:
			return errSyntax
		}
	}
}

func (c *canon) object() error {
	if err := c.enter(); err != nil {
		return err
	}
	c.pos++
	open := len(c.out)
	c.out = append(c.out, '{')
	keyBase, memBase := len(c.keys), len(c.members)
	c.skipSpace()
	if c.peek() == '}' {
		c.pos++
		c.out = append(c.out, '}')
		c.remaining++
		return nil
	}
	for {
		c.skipSpace()
		if c.peek() != '"' {
			return errSyntax
		}
		m := member{start: len(c.out)}
		if err := c.string(); err != nil {
			return err
		}
		m.keyStart = len(c.keys)
		c.keys = append(c.keys, c.str...)
		m.keyEnd = len(c.keys)
		c.skipSpace()
		if c.peek() != ':' {
			return errSyntax
		}
		c.pos++
		c.out = append(c.out, ':')
		c.skipSpace()
		if err := c.value(); err != nil {
			return err
		}
		m.end = len(c.out)
		c.members = append(c.members, m)
		c.skipSpace()
		switch c.peek() {
		case ',':
			c.pos++
			c.out = append(c.out, ',')
		case '}':
			c.pos++
			c.closeObject(open, keyBase, memBase)
			c.remaining++
			return nil
		default:
			return errSyntax
		}
	}
}

// closeObject writes the closing brace, first rewriting the members of the
// object opened at out[open] in key order, without duplicates, unless they
// already are.
func (c *canon) closeObject(open, keyBase, memBase int) {
	ms := c.members[memBase:]
	key := func(m member) []byte { return c.keys[m.keyStart:m.keyEnd] }
	sorted := true
	for i := 1; i < len(ms); i++ {
		if bytes.Compare(key(ms[i-1]), key(ms[i])) >= 0 {
			sorted = false
			break
		}
	}
	if !sorted {
		if len(ms) <= 32 {
			// Insertion sort: stable, and no allocation for the small
			// objects of telemetry.
			for i := 1; i < len(ms); i++ {
				for j := i; j > 0 && bytes.Compare(key(ms[j-1]), key(ms[j])) > 0; j-- {
					ms[j-1], ms[j] = ms[j], ms[j-1]
				}
			}
		} else {
			slices.SortStableFunc(ms, func(a, b member) int { return bytes.Compare(key(a), key(b)) })
		}
		c.tmp = append(c.tmp[:0], c.out[open+1:]...)
		shift := open + 1
		c.out = c.out[:open+1]
		for i, m := range ms {
			if i+1 < len(ms) && bytes.Equal(key(m), key(ms[i+1])) {
				continue // a later duplicate wins (the sort is stable)
			}
			if len(c.out) > open+1 {
				c.out = append(c.out, ',')
			}
			c.out = append(c.out, c.tmp[m.start-shift:m.end-shift]...)
		}
	}
	c.out = append(c.out, '}')
	c.keys = c.keys[:keyBase]
	c.members = c.members[:memBase]
}

// string parses the string at c.pos, appends its canonical form to c.out
// and leaves the decoded bytes in c.str.
func (c *canon) string() error {
	c.pos++ // '"'
	start := c.pos
	// Fast path: no escape, nothing to re-escape.
	for c.pos < len(c.src) {
		b := c.src[c.pos]
		if b == '"' {
			raw := c.src[start:c.pos]
			if !utf8.Valid(raw) {
				return errSyntax
			}
			c.pos++
			c.str = append(c.str[:0], raw...)
			c.out = append(c.out, '"')
			c.out = append(c.out, raw...)
			c.out = append(c.out, '"')
			return nil
		}
		if b == '\\' {
			break
		}
		if b < 0x20 {
			return errSyntax // control character in a string
		}
		c.pos++
	}
	c.str = append(c.str[:0], c.src[start:c.pos]...)
	for {
		if c.pos >= len(c.src) {
			return errSyntax
		}
		b := c.src[c.pos]
		c.pos++
		switch {
		case b == '"':
			if !utf8.Valid(c.str) {
				return errSyntax
			}
			c.out = appendQuoted(c.out, c.str)
			return nil
		case b < 0x20:
			return errSyntax
		case b != '\\':
			c.str = append(c.str, b)
			continue
		}
		if c.pos >= len(c.src) {
			return errSyntax
		}
		e := c.src[c.pos]
		c.pos++
		switch e {
		case '"', '\\', '/':
			c.str = append(c.str, e)
		case 'b':
			c.str = append(c.str, '\b')
		case 'f':
			c.str = append(c.str, '\f')
		case 'n':
			c.str = append(c.str, '\n')
		case 'r':
			c.str = append(c.str, '\r')
		case 't':
			c.str = append(c.str, '\t')
		case 'u':
			r, err := c.unicodeEscape()
			if err != nil {
				return err
			}
			c.str = utf8.AppendRune(c.str, r)
		default:
			return errSyntax
		}
	}
}

// unicodeEscape decodes the XXXX of \uXXXX (c.pos after the 'u'), pairing
// surrogates. A lone surrogate fails, as serde_json requires for a String.
func (c *canon) unicodeEscape() (rune, error) {
	n, ok := c.hex4()
	if !ok {
		return 0, errSyntax
	}
	if n >= 0xDC00 && n <= 0xDFFF {
		return 0, errSyntax // lone trailing surrogate
	}
	if n < 0xD800 || n > 0xDBFF {
		return rune(n), nil
	}
	if c.pos+1 >= len(c.src) || c.src[c.pos] != '\\' || c.src[c.pos+1] != 'u' {
		return 0, errSyntax
	}
	c.pos += 2
	n2, ok := c.hex4()
	if !ok || n2 < 0xDC00 || n2 > 0xDFFF {
		return 0, errSyntax
	}
	return rune((n-0xD800)<<10|(n2-0xDC00)) + 0x10000, nil
}

func (c *canon) hex4() (uint32, bool) {
	if c.pos+4 > len(c.src) {
		return 0, false
	}
	var n uint32
	for _, b := range c.src[c.pos : c.pos+4] {
		var v byte
		switch {
		case b >= '0' && b <= '9':
			v = b - '0'
		case b >= 'a' && b <= 'f':
			v = b - 'a' + 10
		case b >= 'A' && b <= 'F':
			v = b - 'A' + 10
		default:
			return 0, false
		}
		n = n<<4 | uint32(v)
	}
	c.pos += 4
	return n, true
}

const hexDigits = "0123456789abcdef"

// appendQuoted writes s as serde_json escapes a string.
func appendQuoted(dst, s []byte) []byte {
	dst = append(dst, '"')
	last := 0
	for i, b := range s {
		var esc byte
		switch {
		case b == '"' || b == '\\':
			esc = b
		case b == '\b':
			esc = 'b'
		case b == '\t':
			esc = 't'
		case b == '\n':
			esc = 'n'
		case b == '\f':
			esc = 'f'
		case b == '\r':
			esc = 'r'
		case b < 0x20:
			esc = 'u'
		default:
			continue
		}
		dst = append(dst, s[last:i]...)
		last = i + 1
		if esc == 'u' {
			dst = append(dst, '\\', 'u', '0', '0', hexDigits[b>>4], hexDigits[b&0xF])
		} else {
			dst = append(dst, '\\', esc)
		}
	}
	dst = append(dst, s[last:]...)
	return append(dst, '"')
}
