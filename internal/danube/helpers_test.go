package danube_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/benthos-danube/benthos-danube/internal/danube"
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
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.Send(ctx, m); err != nil {
		tb.Fatalf("Send: %v", err)
	}
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

// testPKI writes a CA and a server certificate for 127.0.0.1 into dir and
// returns the server TLS config and the CA file path.
func testPKI(tb testing.TB) (*tls.Config, string) {
	tb.Helper()
	dir := tb.TempDir()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "danube test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		tb.Fatal(err)
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		tb.Fatal(err)
	}
	srvKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	srvTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "127.0.0.1"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	srvDER, err := x509.CreateCertificate(rand.Reader, srvTmpl, caCert, &srvKey.PublicKey, caKey)
	if err != nil {
		tb.Fatal(err)
	}
	caFile := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), 0o600); err != nil {
		tb.Fatal(err)
	}
	return &tls.Config{
		Certificates: []tls.Certificate{{Certificate: [][]byte{srvDER}, PrivateKey: srvKey}},
		MinVersion:   tls.VersionTLS12,
	}, caFile
}

var _ = danubetest.NewTestServer
