package danube_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/benthos-danube/benthos-danube/internal/danube"
	"github.com/benthos-danube/benthos-danube/internal/danube/clienttest"
	"github.com/benthos-danube/benthos-danube/internal/danube/danubetest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// newClient returns a client for url, closed at the end of the test.
func newClient(tb testing.TB, url string, opts ...danube.Option) *danube.Client {
	tb.Helper()
	c, err := danube.NewClient(url, opts...)
	if err != nil {
		tb.Fatalf("NewClient(%q): %v", url, err)
	}
	tb.Cleanup(func() { _ = c.Close() })
	return c
}

// newProducer creates a producer closed at the end of the test. Backoffs are
// short to keep tests fast.
func newProducer(tb testing.TB, c *danube.Client, cfg danube.ProducerConfig) *danube.Producer {
	tb.Helper()
	if cfg.BaseBackoff == 0 {
		cfg.BaseBackoff = 20 * time.Millisecond
	}
	if cfg.MaxBackoff == 0 {
		cfg.MaxBackoff = 200 * time.Millisecond
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	p, err := c.NewProducer(ctx, cfg)
	if err != nil {
		tb.Fatalf("NewProducer(%s): %v", cfg.Topic, err)
	}
	tb.Cleanup(func() { _ = p.Close() })
	return p
}

func newConsumer(tb testing.TB, c *danube.Client, cfg danube.ConsumerConfig) *danube.Consumer {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	co, err := c.Subscribe(ctx, cfg)
	if err != nil {
		tb.Fatalf("Subscribe(%s/%s): %v", cfg.Topic, cfg.Subscription, err)
	}
	tb.Cleanup(func() { _ = co.Close() })
	return co
}

func send(tb testing.TB, p *danube.Producer, m danube.Message) {
	tb.Helper()
	clienttest.Send(tb, p, m)
}

func receive(tb testing.TB, co *danube.Consumer, wait time.Duration) *danube.ReceivedMessage {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	m, err := co.Receive(ctx)
	if err != nil {
		tb.Fatalf("Receive: %v", err)
	}
	return m
}

// caFile writes the certificate of the TLS broker srv into a temporary CA
// file, for danube.TLSConfig, and returns its path.
func caFile(tb testing.TB, srv *danubetest.Server) string {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "ca.pem")
	if err := os.WriteFile(path, srv.CertificatePEM(), 0o600); err != nil {
		tb.Fatal(err)
	}
	return path
}

var _ = danubetest.NewTestServer
