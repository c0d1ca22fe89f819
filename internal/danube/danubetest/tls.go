package danubetest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"time"
)

// NewTLSServer is NewServer serving TLS, like httptest.NewTLSServer: the
// broker presents a self-signed certificate for 127.0.0.1, ::1 and localhost,
// generated in memory for this server. Certificate returns it, and
// ClientTLSConfig and CertificatePEM let a client trust it. A WithTLS option
// given in opts is overridden.
func NewTLSServer(opts ...Option) (*Server, error) {
	cert, cfg, err := selfSignedCert()
	if err != nil {
		return nil, err
	}
	s, err := NewServer(append(opts, WithTLS(cfg))...)
	if err != nil {
		return nil, err
	}
	s.cert = cert
	return s, nil
}

// NewTestTLSServer is NewTLSServer for tests: it calls t.Fatalf on error and
// registers Close with t.Cleanup.
func NewTestTLSServer(t TB, opts ...Option) *Server {
	t.Helper()
	s, err := NewTLSServer(opts...)
	if err != nil {
		t.Fatalf("danubetest: start TLS server: %v", err)
	}
	t.Cleanup(s.Close)
	return s
}

// Certificate returns the certificate the broker presents: the generated one
// of a NewTLSServer broker, else the first certificate of the WithTLS
// configuration. It is nil for a plaintext broker.
func (s *Server) Certificate() *x509.Certificate {
	if s.cert != nil {
		return s.cert
	}
	if s.cfg.tls == nil || len(s.cfg.tls.Certificates) == 0 {
		return nil
	}
	c := s.cfg.tls.Certificates[0]
	if c.Leaf != nil {
		return c.Leaf
	}
	if len(c.Certificate) == 0 {
		return nil
	}
	leaf, err := x509.ParseCertificate(c.Certificate[0])
	if err != nil {
		return nil
	}
	return leaf
}

// ClientTLSConfig returns a client TLS configuration that trusts only the
// broker's Certificate (nil for a plaintext broker).
func (s *Server) ClientTLSConfig() *tls.Config {
	cert := s.Certificate()
	if cert == nil {
		return nil
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
}

// CertificatePEM returns the broker's Certificate PEM-encoded, as a CA file
// for a client configured by file (tls.root_cas_file); nil for a plaintext
// broker.
func (s *Server) CertificatePEM() []byte {
	cert := s.Certificate()
	if cert == nil {
		return nil
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw})
}

// selfSignedCert makes a self-signed ECDSA P-256 certificate for the
// loopback addresses and localhost, and a server configuration presenting it.
// The certificate is its own CA, so a pool holding it verifies it.
func selfSignedCert() (*x509.Certificate, *tls.Config, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("danubetest: generate TLS key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return nil, nil, fmt.Errorf("danubetest: generate certificate serial: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "danubetest broker", Organization: []string{"danubetest"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		DNSNames:              []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, fmt.Errorf("danubetest: create certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, fmt.Errorf("danubetest: parse certificate: %w", err)
	}
	cfg := &tls.Config{
		Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key, Leaf: cert}},
		MinVersion:   tls.VersionTLS12,
	}
	return cert, cfg, nil
}
