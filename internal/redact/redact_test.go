package redact

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"testing"
)

func TestURL(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"no user information", "tcp://broker:1883", "tcp://broker:1883"},
		{"user and password", "tcp://bridge:s3cret@broker:1883", "tcp://bridge:xxxxx@broker:1883"},
		{"user only", "tcp://bridge@broker:1883", "tcp://bridge@broker:1883"},
		{"empty password", "tcp://bridge:@broker:1883", "tcp://bridge:xxxxx@broker:1883"},
		{"percent-encoded password", "wss://bridge:p%40ss@broker/mqtt", "wss://bridge:xxxxx@broker/mqtt"},
		{"at in the path", "ws://broker:8080/mqtt@x", "ws://broker:8080/mqtt@x"},
		{"unparsable: bad escape", "tcp://bridge:s%zzecret@broker:1883", "tcp://bridge:xxxxx@broker:1883"},
		{"raw at in the password", "tcp://bridge:p@ss@broker:1883", "tcp://bridge:xxxxx@broker:1883"},
		{"unparsable: space in password", "tcp://bridge:se cret@broker:1883", "tcp://bridge:xxxxx@broker:1883"},
		{"no scheme", "bridge:s3cret@broker:6650", "bridge:xxxxx@broker:6650"},
		{"host and port only", "broker:6650", "broker:6650"},
		{"empty", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := URL(tt.in); got != tt.want {
				t.Errorf("URL(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
	if got := URLs([]string{"tcp://a:b@h:1", "tcp://h:2"}); strings.Join(got, ",") != "tcp://a:xxxxx@h:1,tcp://h:2" {
		t.Errorf("URLs = %q", got)
	}
}

func TestText(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"none", "dial tcp 127.0.0.1:1883: connection refused", "dial tcp 127.0.0.1:1883: connection refused"},
		{"list", "connecting to [tcp://u:pw@a:1883 ssl://v:p@w@b:8883]: refused",
			"connecting to [tcp://u:xxxxx@a:1883 ssl://v:xxxxx@b:8883]: refused"},
		{"quoted", `parse "tcp://u:pw@a:1883": bad`, `parse "tcp://u:xxxxx@a:1883": bad`},
		{"user only", "tcp://u@a:1883", "tcp://u@a:1883"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Text(tt.in); got != tt.want {
				t.Errorf("Text(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestError(t *testing.T) {
	sentinel := errors.New("refused")
	err := Error(fmt.Errorf("connecting to tcp://u:hunter2@a:1883: %w", sentinel))
	if strings.Contains(err.Error(), "hunter2") || !strings.Contains(err.Error(), "tcp://u:xxxxx@a:1883") {
		t.Errorf("Error() = %q", err)
	}
	if !errors.Is(err, sentinel) {
		t.Error("errors.Is lost through Error")
	}
	if Error(nil) != nil {
		t.Error("Error(nil) != nil")
	}
	if plain := fmt.Errorf("x: %w", sentinel); Error(plain) != plain {
		t.Error("an error with nothing to mask is wrapped")
	}

	// url.Parse quotes the URL and, for a bad escape, a piece of the password.
	for _, raw := range []string{"tcp://u:ab%zzcd@a:1883", "tcp://u:ab cd@a:1883", "tcp://u:ab/cd@a:1883"} {
		_, perr := url.Parse(raw)
		if perr == nil {
			t.Fatalf("%q parses", raw)
		}
		got := Error(fmt.Errorf("urls[0]: %w", perr))
		for _, piece := range []string{"ab", "cd", "%zz"} {
			if strings.Contains(got.Error(), piece) {
				t.Errorf("Error(%v) = %q contains %q", perr, got, piece)
			}
		}
		var ue *url.Error
		if !errors.As(got, &ue) {
			t.Errorf("errors.As(*url.Error) lost for %q", raw)
		}
	}
}
