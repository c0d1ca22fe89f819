package danube_test

import (
	"strings"
	"testing"

	"github.com/benthos-danube/benthos-danube/internal/danube"
)

func TestParseServiceURL(t *testing.T) {
	cases := []struct {
		in, addr, err string
	}{
		{"http://127.0.0.1:6650", "127.0.0.1:6650", ""},
		{"https://broker.example.com:6650/", "broker.example.com:6650", ""},
		{"HTTP://broker:6650", "broker:6650", ""},
		{" broker:6650 ", "broker:6650", ""},
		{"danube_broker-1:6650", "danube_broker-1:6650", ""},
		{"[::1]:6650", "[::1]:6650", ""},
		{"", "", `invalid Danube URL "": no host:port`},
		{"http://", "", `invalid Danube URL "http://": no host:port`},
		{"ftp://127.0.0.1:6650", "", `unsupported scheme "ftp://"`},
		{"grpcs://broker:6650", "", `unsupported scheme "grpcs://"`},
		{"http://127.0.0.1", "", `invalid Danube URL "http://127.0.0.1": no port; use host:port, e.g. 127.0.0.1:6650`},
		{"broker", "", "no port"},
		{"broker:", "", `port "" is not a number from 1 to 65535`},
		{"broker:0", "", `port "0" is not a number`},
		{"broker:65536", "", `port "65536" is not a number`},
		{"broker:https", "", `port "https" is not a number`},
		{":6650", "", "no host"},
		{"bro ker:6650", "", `invalid host "bro ker"`},
		{"user@broker:6650", "", `must not carry credentials`},
		{"http://u:secret@broker:6650", "", `"http://u:xxxxx@broker:6650": it must not carry credentials`},
		{"broker:6650/api", "", `unexpected "/api" after host:port`},
		{"broker:6650?x=1", "", `unexpected "?x=1" after host:port`},
		{"::1:6650", "", "write an IPv6 address in brackets"},
	}
	for _, c := range cases {
		addr, err := danube.ParseServiceURL(c.in)
		switch {
		case c.err == "" && (err != nil || addr != c.addr):
			t.Errorf("ParseServiceURL(%q) = %q, %v; want %q", c.in, addr, err, c.addr)
		case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
			t.Errorf("ParseServiceURL(%q) = %q, %v; want an error containing %q", c.in, addr, err, c.err)
		}
	}
	// NewClient refuses the same URLs, so a bad URL never reaches a dial.
	if _, err := danube.NewClient("ftp://127.0.0.1:6650"); err == nil || !strings.Contains(err.Error(), "unsupported scheme") {
		t.Errorf("NewClient(ftp://...) = %v", err)
	}
}
