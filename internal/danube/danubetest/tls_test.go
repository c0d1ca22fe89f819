package danubetest

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net"
	"os/exec"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/benthos-danube/benthos-danube/internal/danubepb"
)

// lookupOver runs one TopicPartitions RPC against addr with creds.
func lookupOver(t *testing.T, addr string, creds credentials.TransportCredentials) error {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(creds))
	mustOK(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	resp, err := danubepb.NewDiscoveryClient(conn).TopicPartitions(testCtx(t), &danubepb.TopicLookupRequest{RequestId: 3, Topic: "/default/x"})
	if err == nil && resp.GetRequestId() != 3 {
		return fmt.Errorf("request id %d", resp.GetRequestId())
	}
	return err
}

func TestTLSServer(t *testing.T) {
	s := NewTestTLSServer(t)
	if !strings.HasPrefix(s.URL(), "https://") {
		t.Fatalf("URL %s", s.URL())
	}
	_, port, err := net.SplitHostPort(s.Addr())
	mustOK(t, err)
	other := NewTestTLSServer(t)
	for _, tc := range []struct {
		name  string
		addr  string
		creds credentials.TransportCredentials
		ok    bool
	}{
		{"ClientTLSConfig by IP", s.Addr(), credentials.NewTLS(s.ClientTLSConfig()), true},
		{"ClientTLSConfig by localhost", "localhost:" + port, credentials.NewTLS(s.ClientTLSConfig()), true},
		{"system roots", s.Addr(), credentials.NewTLS(&tls.Config{MinVersion: tls.VersionTLS12}), false},
		{"another server's certificate", s.Addr(), credentials.NewTLS(other.ClientTLSConfig()), false},
		{"plaintext", s.Addr(), insecure.NewCredentials(), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := lookupOver(t, tc.addr, tc.creds); (err == nil) != tc.ok {
				t.Fatalf("TopicPartitions = %v, want ok=%v", err, tc.ok)
			}
		})
	}
}

func TestTLSServerCertificate(t *testing.T) {
	s := NewTestTLSServer(t)
	cert := s.Certificate()
	if cert == nil {
		t.Fatal("no certificate")
	}
	for _, host := range []string{"127.0.0.1", "::1", "localhost"} {
		if err := cert.VerifyHostname(host); err != nil {
			t.Errorf("certificate not valid for %s: %v", host, err)
		}
	}
	block, _ := pem.Decode(s.CertificatePEM())
	if block == nil || block.Type != "CERTIFICATE" {
		t.Fatalf("CertificatePEM: no CERTIFICATE block")
	}
	parsed, err := x509.ParseCertificate(block.Bytes)
	mustOK(t, err)
	if !parsed.Equal(cert) {
		t.Fatal("CertificatePEM is not Certificate")
	}
	// A CA file made from CertificatePEM verifies the broker.
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(s.CertificatePEM()) {
		t.Fatal("CertificatePEM not accepted as a CA file")
	}
	mustOK(t, lookupOver(t, s.Addr(), credentials.NewTLS(&tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12})))

	// Stop and Start keep serving TLS with the same certificate.
	s.Stop()
	mustOK(t, s.Start())
	mustOK(t, lookupOver(t, s.Addr(), credentials.NewTLS(s.ClientTLSConfig())))

	plain := NewTestServer(t)
	if plain.Certificate() != nil || plain.ClientTLSConfig() != nil || plain.CertificatePEM() != nil {
		t.Fatal("a plaintext server has a certificate")
	}
	// WithTLS: Certificate is the configuration's first certificate.
	withTLS := NewTestServer(t, WithTLS(s.cfg.tls))
	if !withTLS.Certificate().Equal(cert) {
		t.Fatal("Certificate of a WithTLS server")
	}
}

// fakeTB records what NewTestServer does with its TB.
type fakeTB struct {
	helper   bool
	fatal    string
	cleanups []func()
}

func (f *fakeTB) Helper()                           { f.helper = true }
func (f *fakeTB) Fatalf(format string, args ...any) { f.fatal = fmt.Sprintf(format, args...) }
func (f *fakeTB) Cleanup(fn func())                 { f.cleanups = append(f.cleanups, fn) }

func TestNewTestServerTB(t *testing.T) {
	var tb fakeTB
	s := NewTestServer(&tb)
	if !tb.helper || tb.fatal != "" || len(tb.cleanups) != 1 {
		t.Fatalf("NewTestServer: %+v", tb)
	}
	tb.cleanups[0]()
	if err := lookupOver(t, s.Addr(), insecure.NewCredentials()); err == nil {
		t.Fatal("the server still answers after its cleanup ran")
	}

	var bad fakeTB
	if s := NewTestServer(&bad, WithAddr("256.0.0.1:0")); s != nil || !strings.Contains(bad.fatal, "start server") {
		t.Fatalf("NewTestServer with a bad address: server %v, Fatalf %q", s, bad.fatal)
	}
}

// TestBinaryDoesNotLinkTesting checks that the distribution does not link
// package testing (danubetest is imported by the demo).
func TestBinaryDoesNotLinkTesting(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go tool not found")
	}
	out, err := exec.Command(goTool, "list", "-deps", "../../../cmd/benthos-danube").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, pkg := range strings.Fields(string(out)) {
		if pkg == "testing" {
			t.Fatal("cmd/benthos-danube links package testing")
		}
	}
}
