package connectorpayload

import (
	"bytes"
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"
)

func env(data string, size int) string {
	return `{"data":"` + data + `","encoding":"base64","size":` + itoa(size) + `}`
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var b []byte
	for ; n > 0; n /= 10 {
		b = append([]byte{byte('0' + n%10)}, b...)
	}
	return string(b)
}

// TestDocTable is §2.2 of rust-connector-v03-and-danube-edge.md, row by
// row, for each column. The cells where the connector fails (bytes with a
// JSON payload) are our documented choice: the raw payload.
func TestDocTable(t *testing.T) {
	rows := []struct {
		name, in               string
		json, str, bytesChoice string
	}{
		{"object", `{"b":1,"a":2}`, `{"a":2,"b":1}`, `{"a":2,"b":1}`, `{"b":1,"a":2}`},
		{"string literal", `"hi"`, `"hi"`, `hi`, `"hi"`},
		{"number", `42`, `42`, `42`, `42`},
		{"not JSON", `hello`, `{"data":"aGVsbG8=","encoding":"base64","size":5}`, `{"data":"aGVsbG8=","encoding":"base64","size":5}`, `hello`},
		{"empty", ``, `{"data":"","encoding":"base64","size":0}`, `{"data":"","encoding":"base64","size":0}`, ``},
	}
	for _, r := range rows {
		for _, typ := range []string{"", "none", "json_schema", "JSON", "number", "avro"} {
			m, err := ParseSchemaType(typ)
			if err != nil {
				t.Fatal(err)
			}
			if got := string(Append(nil, []byte(r.in), m)); got != r.json {
				t.Errorf("%s as %q: got %q, want %q", r.name, typ, got, r.json)
			}
		}
		m, _ := ParseSchemaType("String")
		if got := string(Append(nil, []byte(r.in), m)); got != r.str {
			t.Errorf("%s as string: got %q, want %q", r.name, got, r.str)
		}
		for _, typ := range []string{"bytes", "protobuf"} {
			m, _ := ParseSchemaType(typ)
			if got := string(Append(nil, []byte(r.in), m)); got != r.bytesChoice {
				t.Errorf("%s as %s: got %q, want %q", r.name, typ, got, r.bytesChoice)
			}
		}
	}
}

func TestUnknownSchemaType(t *testing.T) {
	if _, err := ParseSchemaType("protobuff"); err == nil || !strings.Contains(err.Error(), "json_schema") {
		t.Fatalf("got %v", err)
	}
}

func TestCanonical(t *testing.T) {
	cases := []struct{ in, want string }{
		// Structure, whitespace, key order, duplicates.
		{" \t\r\n{ \"b\" : [ 1 , 2 ] , \"a\" : { } }\n", `{"a":{},"b":[1,2]}`},
		{`{"a":1,"a":2}`, `{"a":2}`},
		{`{"b":1,"a":2,"b":3,"a":4}`, `{"a":4,"b":3}`},
		{`{"z":{"y":1,"x":2,"y":3},"a":[{"d":1,"c":2}]}`, `{"a":[{"c":2,"d":1}],"z":{"x":2,"y":3}}`},
		{`{"é":1,"z":2,"A":3,"":4}`, `{"":4,"A":3,"z":2,"é":1}`}, // bytewise order
		{`[]`, `[]`},
		{`[[],{}]`, `[[],{}]`},
		{`true`, `true`}, {`false`, `false`}, {` null `, `null`},
		// Strings: escapes normalised.
		{`"a\/b"`, `"a/b"`},
		{`"\u0041\u00e9\u20AC"`, `"Aé€"`},
		{`"\ud83d\ude00"`, `"😀"`},
		{`"\b\f\n\r\t\"\\"`, `"\b\f\n\r\t\"\\"`},
		{`"\u0000\u001F\u007f"`, "\"\\u0000\\u001f\x7f\""},
		{"\"caf\xc3\xa9\"", "\"caf\xc3\xa9\""},
		// Integers stay exact in i64/u64 range.
		{`0`, `0`}, {`-1`, `-1`}, {`42`, `42`},
		{`18446744073709551615`, `18446744073709551615`},
		{`-9223372036854775808`, `-9223372036854775808`},
		{`9007199254740993`, `9007199254740993`},
		// Other numbers: f64, shortest form, ryu layout.
		{`-0`, `-0.0`}, {`-0.0`, `-0.0`}, {`0.0`, `0.0`}, {`0e5`, `0.0`},
		{`1e2`, `100.0`}, {`1E2`, `100.0`}, {`1e+2`, `100.0`}, {`100.0`, `100.0`}, {`1.0`, `1.0`},
		{`0.1`, `0.1`}, {`21.5`, `21.5`}, {`-3.25`, `-3.25`}, {`123.456`, `123.456`},
		{`1e300`, `1e300`}, {`-1e300`, `-1e300`},
		{`1e15`, `1000000000000000.0`}, {`1e16`, `1e16`}, {`1.5e16`, `1.5e16`},
		{`0.0001`, `0.0001`}, {`0.00001`, `0.00001`}, {`0.000001`, `1e-6`}, {`1.5e-7`, `1.5e-7`},
		{`1.7976931348623157e308`, `1.7976931348623157e308`},
		{`5e-324`, `5e-324`},
		{`1e-400`, `0.0`}, {`-1e-400`, `-0.0`},
		{`1e-99999999999`, `0.0`}, {`0e99999999999`, `0.0`},
		// Beyond u64 / i64: f64.
		{`18446744073709551616`, `1.8446744073709552e19`},
		{`-9223372036854775809`, `-9.223372036854776e18`},
		{`123456789012345678901234567890`, `1.2345678901234568e29`},
		// serde_json without float_roundtrip rounds twice past 2^53:
		// correctly rounded this would be 9007199254740992.0.
		{`9007199254740993.0`, `9007199254740994.0`},
		{`11e201`, `1.1000000000000001e202`}, // 11 × (1e201 rounded)
	}
	for _, c := range cases {
		got, ok := AppendCanonical(nil, []byte(c.in))
		if !ok || string(got) != c.want {
			t.Errorf("%q: got %q (json=%v), want %q", c.in, got, ok, c.want)
		}
	}
}

func TestNotJSON(t *testing.T) {
	deep := strings.Repeat("[", 128) + strings.Repeat("]", 128)
	for _, in := range []string{
		``, ` `, `hello`, `{`, `[1,]`, `{"a":1,}`, `[,1]`, `{"a" 1}`, `{1:2}`, `{"a":1}x`, `1 2`,
		"\xef\xbb\xbf{}",               // BOM
		"\"\xff\"", "\"\xc3\"", "\xff", // invalid UTF-8
		"\"\xed\xa0\x80\"",     // UTF-8 encoded surrogate
		"\"a\nb\"", "\"\x01\"", // raw control characters
		`"\ud800"`, `"\udc00"`, `"\ud800\u0041"`, `"\ud800x"`, `"\x"`, `"\u12"`, `"\u12G4"`, `"abc`,
		`01`, `-`, `+1`, `.5`, `1.`, `1.e5`, `1e`, `1e+`, `--1`, `0x10`, `NaN`, `Infinity`, `-Infinity`,
		`1e400`, `-1e400`, `1e99999999999`, `1.8e308`,
		`tru`, `True`, `nul`, `nulll`,
		deep, // serde_json's recursion limit
	} {
		if got, ok := AppendCanonical(nil, []byte(in)); ok {
			t.Errorf("%q: parsed as JSON %q, serde_json fails", in, got)
		}
		want := AppendEnvelope(nil, []byte(in))
		if got := Append(nil, []byte(in), ModeJSON); string(got) != string(want) {
			t.Errorf("%q: got %q, want the envelope %q", in, got, want)
		}
	}
	ok127 := strings.Repeat("[", 127) + strings.Repeat("]", 127)
	if got, ok := AppendCanonical(nil, []byte(ok127)); !ok || string(got) != ok127 {
		t.Errorf("127 nested arrays: got %v", ok)
	}
}

func TestEnvelope(t *testing.T) {
	cases := []struct{ in, want string }{
		{"", env("", 0)},
		{"a", env("YQ==", 1)},
		{"ab", env("YWI=", 2)},
		{"\x00\x01\xfe\xff", env("AAH+/w==", 4)},
		{"\xef\xbb\xbf{}", env("77u/e30=", 5)},
	}
	for _, c := range cases {
		if got := string(Append(nil, []byte(c.in), ModeString)); got != c.want {
			t.Errorf("%q: got %q, want %q", c.in, got, c.want)
		}
	}
}

func TestStringMode(t *testing.T) {
	cases := []struct{ in, want string }{
		{`"hi"`, `hi`},
		{` "a\nb\u00e9" `, "a\nb\xc3\xa9"},
		{`""`, ``},
		{`["hi"]`, `["hi"]`},
		{`{"b":"x","a":1}`, `{"a":1,"b":"x"}`},
		{`null`, `null`},
	}
	for _, c := range cases {
		if got := string(Append(nil, []byte(c.in), ModeString)); got != c.want {
			t.Errorf("%q: got %q, want %q", c.in, got, c.want)
		}
	}
}

// TestAppendKeepsPrefix: Append appends; what dst held stays.
func TestAppendKeepsPrefix(t *testing.T) {
	for _, in := range []string{`{"b":1,"a":2}`, `nope`, `"s"`} {
		for _, m := range []Mode{ModeJSON, ModeString, ModeRaw} {
			got := Append([]byte("PFX"), []byte(in), m)
			want := "PFX" + string(Append(nil, []byte(in), m))
			if string(got) != want {
				t.Errorf("%q mode %d: got %q, want %q", in, m, got, want)
			}
		}
	}
}

// exponent finds a number with an exponent, which may leave the f64 range.
var exponent = regexp.MustCompile(`[0-9][eE]`)

func FuzzCanonical(f *testing.F) {
	for _, s := range []string{`{"b":1,"a":[1.5,"x"]}`, `"\ud83d\ude00"`, `1e2`, ``, `{"a":1,"a":2}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		out, ok := AppendCanonical(nil, in)
		// The grammar is JSON's: what we accept encoding/json accepts; and
		// what it accepts we accept too, away from the cases where serde_json
		// is stricter (invalid UTF-8, \u escapes that may be lone
		// surrogates, exponents and long numbers that may leave the f64
		// range, deep nesting).
		if ok && !json.Valid(in) {
			t.Fatalf("%q accepted, but it is not JSON", in)
		}
		if !ok && json.Valid(in) && utf8.Valid(in) && !bytes.Contains(in, []byte(`\u`)) &&
			!exponent.Match(in) && len(in) < 300 && bytes.Count(in, []byte("["))+bytes.Count(in, []byte("{")) < 100 {
			t.Fatalf("%q refused, but it is JSON", in)
		}
		if !ok {
			return
		}
		// The output is valid JSON that parses again. (It is not a fixed
		// point: serde_json's double rounding can move a float by one ULP
		// each time, "11e201" -> "1.1000000000000001e202" -> "1.1e202".)
		if !json.Valid(out) || !utf8.Valid(out) {
			t.Fatalf("%q -> invalid JSON %q", in, out)
		}
		if _, ok := AppendCanonical(nil, out); !ok {
			t.Fatalf("%q -> %q, which does not parse again", in, out)
		}
	})
}
