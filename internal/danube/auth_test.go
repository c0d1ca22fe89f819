package danube_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/benthos-danube/benthos-danube/internal/danube"
	"github.com/benthos-danube/benthos-danube/internal/danube/danubetest"
)

func TestTokenHeader(t *testing.T) {
	srv := danubetest.NewTestServer(t, danubetest.WithTokens("jwt-1", "jwt-2"))
	c := newClient(t, srv.URL(), danube.WithToken("jwt-1"))
	p := newProducer(t, c, danube.ProducerConfig{Topic: "/default/auth", Name: "a", HealthInterval: 20 * time.Millisecond})
	send(t, p, danube.Message{Payload: []byte("x")})
	co := newConsumer(t, c, danube.ConsumerConfig{Topic: "/default/auth", Subscription: "s", Name: "c"})
	send(t, p, danube.Message{Payload: []byte("y")})
	m := receive(t, co, 5*time.Second)
	if err := co.Ack(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	time.Sleep(60 * time.Millisecond) // a few health checks
	seen := srv.Authorizations()
	// Lookup, create, send, partitions, subscribe, receive, ack, health.
	if len(seen) < 8 {
		t.Fatalf("only %d authorization headers seen: %v", len(seen), seen)
	}
	for _, v := range seen {
		if v != "Bearer jwt-1" {
			t.Fatalf("authorization header %q", v)
		}
	}

	// Without a token the broker refuses: a permanent Unauthenticated error.
	anon := newClient(t, srv.URL())
	_, err := anon.NewProducer(context.Background(), danube.ProducerConfig{Topic: "/default/auth", Name: "b"})
	if de := (*danube.Error)(nil); !asError(err, &de) || de.Code != codes.Unauthenticated || !danube.IsPermanent(err) {
		t.Fatalf("anonymous create: %v", err)
	}
}

func asError(err error, target **danube.Error) bool {
	for err != nil {
		if de, ok := err.(*danube.Error); ok {
			*target = de
			return true
		}
		u, ok := err.(interface{ Unwrap() error })
		if !ok {
			return false
		}
		err = u.Unwrap()
	}
	return false
}

func TestTokenFileReread(t *testing.T) {
	srv := danubetest.NewTestServer(t, danubetest.WithTokens("token-a", "token-b"))
	path := filepath.Join(t.TempDir(), "jwt")
	if err := os.WriteFile(path, []byte("token-a\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c := newClient(t, srv.URL(), danube.WithTokenFile(path))
	p := newProducer(t, c, danube.ProducerConfig{Topic: "/default/tokfile", Name: "f"})
	send(t, p, danube.Message{Payload: []byte("1")})
	if got := last(srv.Authorizations()); got != "Bearer token-a" {
		t.Fatalf("first token %q", got)
	}
	// Same size, new content: the modification time tells the client.
	if err := os.WriteFile(path, []byte("token-b\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	future := time.Now().Add(2 * time.Second)
	if err := os.Chtimes(path, future, future); err != nil {
		t.Fatal(err)
	}
	send(t, p, danube.Message{Payload: []byte("2")})
	if got := last(srv.Authorizations()); got != "Bearer token-b" {
		t.Fatalf("token after rewrite %q", got)
	}
	if _, err := danube.NewClient(srv.URL(), danube.WithTokenFile(filepath.Join(t.TempDir(), "missing"))); err == nil {
		t.Fatal("missing token file accepted")
	}
}

func last(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return s[len(s)-1]
}

func TestTLSWithTestCA(t *testing.T) {
	srv := danubetest.NewTestTLSServer(t)
	caFile := caFile(t, srv)
	ping := func(c *danube.Client) error {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		return c.Ping(ctx)
	}
	for _, tc := range []struct {
		name string
		cfg  func(t *testing.T) []danube.Option
		ok   bool
	}{
		{"test_ca", func(t *testing.T) []danube.Option {
			cfg, err := danube.TLSConfig(caFile, "", "", false)
			if err != nil {
				t.Fatal(err)
			}
			return []danube.Option{danube.WithTLS(cfg)}
		}, true},
		{"skip_verify", func(t *testing.T) []danube.Option {
			cfg, err := danube.TLSConfig("", "", "", true)
			if err != nil {
				t.Fatal(err)
			}
			return []danube.Option{danube.WithTLS(cfg)}
		}, true},
		{"system_roots", func(t *testing.T) []danube.Option {
			cfg, err := danube.TLSConfig("", "", "", false)
			if err != nil {
				t.Fatal(err)
			}
			return []danube.Option{danube.WithTLS(cfg)}
		}, false},
		{"plaintext", func(*testing.T) []danube.Option { return nil }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// The https:// scheme never selects TLS by itself.
			c := newClient(t, srv.URL(), tc.cfg(t)...)
			err := ping(c)
			if (err == nil) != tc.ok {
				t.Fatalf("Ping = %v, want ok=%v", err, tc.ok)
			}
			if !tc.ok {
				return
			}
			p := newProducer(t, c, danube.ProducerConfig{Topic: "/default/tls-" + tc.name, Name: "t"})
			send(t, p, danube.Message{Payload: []byte("secure")})
			if srv.MessageCount("/default/tls-"+tc.name) != 1 {
				t.Fatal("message not stored")
			}
		})
	}
	if _, err := danube.TLSConfig(filepath.Join(t.TempDir(), "nope.pem"), "", "", false); err == nil {
		t.Fatal("missing CA file accepted")
	}
	if _, err := danube.TLSConfig("", "cert.pem", "", false); err == nil {
		t.Fatal("cert without key accepted")
	}
}
