package hostcheck

import "testing"

func TestValid(t *testing.T) {
	cases := map[string]bool{
		"localhost": true, "broker.example.com": true, "danube_broker-1": true, "127.0.0.1": true,
		"::1": true, "fe80::1%eth0": true, "2001:db8::1": true,
		"": false, "bro ker": false, "bro!ker": false, "user@host": false, "a/b": false, "ünicode": false, "x%y": false,
	}
	for h, want := range cases {
		if got := Valid(h); got != want {
			t.Errorf("Valid(%q) = %v, want %v", h, got, want)
		}
	}
}
