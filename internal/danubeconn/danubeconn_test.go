package danubeconn_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/redpanda-data/benthos/v4/public/service"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/benthos-danube/benthos-danube/internal/danube"
	"github.com/benthos-danube/benthos-danube/internal/danubeconn"
)

func parse(t *testing.T, yaml string) *service.ParsedConfig {
	t.Helper()
	spec := service.NewConfigSpec().Field(service.NewStringField("url")).Fields(danubeconn.Fields()...)
	conf, err := spec.ParseYAML(yaml, nil)
	if err != nil {
		t.Fatalf("parsing %q: %v", yaml, err)
	}
	return conf
}

func TestFieldsAreTheSharedOnes(t *testing.T) {
	fields := danubeconn.Fields()
	if len(fields) != 3 {
		t.Fatalf("got %d fields, want tls, token and token_file", len(fields))
	}
	conf := parse(t, "url: http://127.0.0.1:6650\n")
	for _, name := range []string{danubeconn.FieldTLS, danubeconn.FieldToken, danubeconn.FieldTokenFile} {
		if !conf.Contains(name) {
			t.Errorf("field %s has no default", name)
		}
	}
}

func TestRead(t *testing.T) {
	tokenFile := filepath.Join(t.TempDir(), "jwt")
	if err := os.WriteFile(tokenFile, []byte("a-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, yaml string
		options    int    // client options given
		warning    string // in SchemeWarning, "" for none
		err        string // in Read's error, "" for none
	}{
		{"plaintext", "url: http://127.0.0.1:6650\n", 0, "", ""},
		{"token", "url: http://h:6650\ntoken: abc\n", 1, "", ""},
		{"token file wins", fmt.Sprintf("url: http://h:6650\ntoken: abc\ntoken_file: %s\n", tokenFile), 1, "", ""},
		{"tls", "url: https://h:6650\ntls: {enabled: true}\n", 1, "", ""},
		{"https without tls", "url: HTTPS://h:6650\n", 0, "starts with https:// but tls.enabled is false", ""},
		{"unreadable CA", "url: https://h:6650\ntls: {enabled: true, root_cas_file: /nonexistent/ca.pem}\n", 0, "", "field tls:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conf := parse(t, tt.yaml)
			url, _ := conf.FieldString("url")
			c, err := danubeconn.Read(conf, url)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("Read: %v, want an error with %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Read: %v", err)
			}
			if got := len(c.Options()); got != tt.options {
				t.Errorf("%d client options, want %d", got, tt.options)
			}
			w := c.SchemeWarning("the-url")
			if (tt.warning == "") != (w == "") || !strings.Contains(w, tt.warning) {
				t.Errorf("SchemeWarning = %q, want %q", w, tt.warning)
			}
		})
	}
}

func TestHint(t *testing.T) {
	unavailable := status.Error(codes.Unavailable, "connection refused")
	tests := []struct {
		name       string
		err        error
		httpsNoTLS bool
		want       string // in the hint, "" for none
	}{
		{"nil", nil, false, ""},
		{"no credentials", status.Error(codes.Unauthenticated, "credentials are missing"), false, "requires authentication: set token (or token_file)"},
		{"bad token, wrapped", fmt.Errorf("subscribing: %w", &danube.Error{Code: codes.Unauthenticated, Err: errors.New("Invalid token")}), false, "rejected the token: check token or token_file"},
		{"tls to plaintext", errors.New("tls: first record does not look like a TLS handshake"), false, "tls.enabled is true but the broker answers in plaintext"},
		{"plaintext to tls", errors.New("error reading server preface: EOF"), false, "set tls.enabled: true"},
		{"unknown CA", errors.New("x509: certificate signed by unknown authority"), false, "set tls.root_cas_file"},
		{"wrong host", errors.New("x509: certificate is valid for a.example, not b.example"), false, "does not name the host of url"},
		{"unreachable", unavailable, false, ""},
		{"unreachable over https without tls", unavailable, true, "url starts with https:// but tls.enabled is false"},
		{"unrelated", errors.New("something else"), true, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			url := "http://h:6650"
			if tt.httpsNoTLS {
				url = "https://h:6650"
			}
			c, err := danubeconn.Read(parse(t, "url: "+url+"\n"), url)
			if err != nil {
				t.Fatal(err)
			}
			got := c.Hint(tt.err)
			if (tt.want == "") != (got == "") || !strings.Contains(got, tt.want) {
				t.Errorf("Hint = %q, want %q", got, tt.want)
			}
			if !tt.httpsNoTLS && got != danubeconn.Hint(tt.err) {
				t.Errorf("Conn.Hint %q differs from Hint %q without an https url", got, danubeconn.Hint(tt.err))
			}
		})
	}
}
