package connectorpayload

import (
	"errors"
	"math"
	"strconv"
)

// Numbers follow serde_json 1.0 with its default features (no
// arbitrary_precision, no float_roundtrip), as the Rust connector is built:
//
//   - an integer without fraction or exponent stays exact: u64 when it is
//     not negative and fits, i64 when it is negative and fits;
//   - "-0", negative integers below i64, integers above u64 and every number
//     with a fraction or an exponent become an f64;
//   - that f64 is computed the way serde_json computes it without
//     float_roundtrip: the significant digits accumulated in a u64 (digits
//     past u64 are dropped), converted to f64, then one multiplication or
//     division by a power of ten. Beyond 2^53 this rounds twice, so the value
//     can sit one ULP away from the correctly rounded one (9007199254740993.0
//     becomes 9007199254740994.0); strconv.ParseFloat would differ there;
//   - an f64 that overflows is a parse error (the payload is then wrapped),
//     one that underflows becomes 0.0 (or -0.0);
//   - the f64 is written in the shortest form that round-trips (Ryū), in the
//     layout of Rust's ryu crate: "100.0", "0.1", "1e16", "1.5e-7".

var errNumber = errors.New("invalid number")

// pow10 holds the correctly rounded f64 of 1e0 … 1e308, as serde_json's
// POW10 table (math.Pow10 is not correctly rounded for every exponent).
var pow10 = func() [309]float64 {
	var t [309]float64
	for i := range t {
		f, err := strconv.ParseFloat("1e"+strconv.Itoa(i), 64)
		if err != nil {
			panic(err)
		}
		t[i] = f
	}
	return t
}()

// overflowU64 reports whether a*10+d exceeds the u64 range.
func overflowU64(a, d uint64) bool {
	const c = math.MaxUint64
	return a >= c/10 && (a > c/10 || d > c%10)
}

func overflowI32(a, d int32) bool {
	const c = math.MaxInt32
	return a >= c/10 && (a > c/10 || d > c%10)
}

func isDigit(b byte) bool { return b >= '0' && b <= '9' }

// number parses the number at c.pos and appends its canonical form.
func (c *canon) number() error {
	start := c.pos
	positive := true
	if c.peek() == '-' {
		positive = false
		c.pos++
	}
	if c.pos >= len(c.src) {
		return errNumber
	}
	b := c.src[c.pos]
	c.pos++
	var sig uint64
	switch {
	case b == '0':
		if isDigit(c.peek()) {
			return errNumber // one leading zero only
		}
	case b >= '1' && b <= '9':
		sig = uint64(b - '0')
		for isDigit(c.peek()) {
			d := uint64(c.src[c.pos] - '0')
			if overflowU64(sig, d) {
				f, err := c.longInteger(positive, sig)
				if err != nil {
					return err
				}
				c.out = appendF64(c.out, f)
				return nil
			}
			c.pos++
			sig = sig*10 + d
		}
	default:
		return errNumber
	}
	switch c.peek() {
	case '.':
		f, err := c.decimal(positive, sig, 0)
		if err != nil {
			return err
		}
		c.out = appendF64(c.out, f)
	case 'e', 'E':
		f, err := c.exponent(positive, sig, 0)
		if err != nil {
			return err
		}
		c.out = appendF64(c.out, f)
	default:
		switch {
		case positive:
			c.out = append(c.out, c.src[start:c.pos]...) // already canonical
		case sig == 0 || sig > 1<<63:
			// "-0" and negative integers below i64 become an f64.
			c.out = appendF64(c.out, -float64(sig))
		default:
			c.out = append(c.out, c.src[start:c.pos]...)
		}
	}
	return nil
}

// longInteger continues an integer whose digits overflowed u64: further
// digits only raise the exponent.
func (c *canon) longInteger(positive bool, sig uint64) (float64, error) {
	var exp int32
	for {
		switch b := c.peek(); {
		case isDigit(b):
			c.pos++
			exp++
		case b == '.':
			return c.decimal(positive, sig, exp)
		case b == 'e' || b == 'E':
			return c.exponent(positive, sig, exp)
		default:
			return f64FromParts(positive, sig, exp)
		}
	}
}

func (c *canon) decimal(positive bool, sig uint64, expBefore int32) (float64, error) {
	c.pos++ // '.'
	var expAfter int32
	for isDigit(c.peek()) {
		d := uint64(c.src[c.pos] - '0')
		if overflowU64(sig, d) {
			// Drop the remaining digits.
			for isDigit(c.peek()) {
				c.pos++
			}
			return c.afterFraction(positive, sig, expBefore+expAfter)
		}
		c.pos++
		sig = sig*10 + d
		expAfter--
	}
	if expAfter == 0 {
		return 0, errNumber // no digit after the point
	}
	return c.afterFraction(positive, sig, expBefore+expAfter)
}

func (c *canon) afterFraction(positive bool, sig uint64, exp int32) (float64, error) {
	if b := c.peek(); b == 'e' || b == 'E' {
		return c.exponent(positive, sig, exp)
	}
	return f64FromParts(positive, sig, exp)
}

func (c *canon) exponent(positive bool, sig uint64, startExp int32) (float64, error) {
	c.pos++ // 'e'
	positiveExp := true
	switch c.peek() {
	case '+':
		c.pos++
	case '-':
		c.pos++
		positiveExp = false
	}
	if !isDigit(c.peek()) {
		return 0, errNumber
	}
	exp := int32(c.src[c.pos] - '0')
	c.pos++
	for isDigit(c.peek()) {
		d := int32(c.src[c.pos] - '0')
		c.pos++
		if overflowI32(exp, d) {
			for isDigit(c.peek()) {
				c.pos++
			}
			if sig != 0 && positiveExp {
				return 0, errNumber // out of range, not infinity
			}
			if positive {
				return 0, nil
			}
			return math.Copysign(0, -1), nil
		}
		exp = exp*10 + d
	}
	var final int32
	if positiveExp {
		final = satAdd(startExp, exp)
	} else {
		final = satAdd(startExp, -exp)
	}
	return f64FromParts(positive, sig, final)
}

func satAdd(a, b int32) int32 {
	s := int64(a) + int64(b)
	switch {
	case s > math.MaxInt32:
		return math.MaxInt32
	case s < math.MinInt32:
		return math.MinInt32
	}
	return int32(s)
}

// f64FromParts is serde_json's computation of sig × 10^exp.
func f64FromParts(positive bool, sig uint64, exp int32) (float64, error) {
	f := float64(sig)
	for {
		a := uint64(exp)
		if exp < 0 {
			a = uint64(-int64(exp))
		}
		if a < uint64(len(pow10)) {
			if exp >= 0 {
				f *= pow10[a]
				if math.IsInf(f, 0) {
					return 0, errNumber
				}
			} else {
				f /= pow10[a]
			}
			break
		}
		if f == 0 {
			break
		}
		if exp >= 0 {
			return 0, errNumber
		}
		f /= 1e308
		exp += 308
	}
	if !positive {
		f = -f
	}
	return f, nil
}

// appendF64 writes a finite f64 as serde_json does (the ryu crate's layout).
func appendF64(dst []byte, f float64) []byte {
	if f == 0 {
		if math.Signbit(f) {
			return append(dst, "-0.0"...)
		}
		return append(dst, "0.0"...)
	}
	var buf [32]byte
	s := strconv.AppendFloat(buf[:0], f, 'e', -1, 64) // [-]d[.ddd]e±XX
	if s[0] == '-' {
		dst = append(dst, '-')
		s = s[1:]
	}
	e := 0
	for i := range s {
		if s[i] == 'e' {
			n, _ := strconv.Atoi(string(s[i+1:]))
			e = n
			s = s[:i]
			break
		}
	}
	var digits [20]byte
	d := digits[:0]
	for _, ch := range s {
		if ch != '.' {
			d = append(d, ch)
		}
	}
	length := len(d)
	k := e - length + 1 // value = digits × 10^k
	kk := length + k    // 10^(kk-1) <= value < 10^kk
	switch {
	case k >= 0 && kk <= 16:
		dst = append(dst, d...)
		for i := length; i < kk; i++ {
			dst = append(dst, '0')
		}
		dst = append(dst, '.', '0')
	case kk > 0 && kk <= 16:
		dst = append(dst, d[:kk]...)
		dst = append(dst, '.')
		dst = append(dst, d[kk:]...)
	case kk > -5 && kk <= 0:
		dst = append(dst, '0', '.')
		for i := kk; i < 0; i++ {
			dst = append(dst, '0')
		}
		dst = append(dst, d...)
	case length == 1:
		dst = append(dst, d[0], 'e')
		dst = strconv.AppendInt(dst, int64(kk-1), 10)
	default:
		dst = append(dst, d[0], '.')
		dst = append(dst, d[1:]...)
		dst = append(dst, 'e')
		dst = strconv.AppendInt(dst, int64(kk-1), 10)
	}
	return dst
}
