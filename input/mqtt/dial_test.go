package mqtt

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"math/big"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/benthos-danube/benthos-danube/internal/mqtttest"
)

// selfSigned returns a TLS certificate for 127.0.0.1.
func selfSigned(t *testing.T) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// TestTransports: the input's own dialer (a buffered reader under paho)
// connects over every transport paho offers, and messages flow over each.
func TestTransports(t *testing.T) {
	srv := mqtttest.NewTestServer(t)
	srv.Stop()
	tcpAddr, tlsAddr, wsAddr := srv.Addr(), closedPort(t), closedPort(t)
	sock := filepath.Join(t.TempDir(), "mqtt.sock")
	if err := srv.Start(
		listeners.NewTCP(listeners.Config{ID: "tls", Address: tlsAddr, TLSConfig: &tls.Config{Certificates: []tls.Certificate{selfSigned(t)}}}),
		listeners.NewWebsocket(listeners.Config{ID: "ws", Address: wsAddr}),
		listeners.NewUnixSock(listeners.Config{ID: "unix", Address: sock}),
	); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct{ name, url, extra string }{
		{"tcp", "tcp://" + tcpAddr, ""},
		{"ssl", "ssl://" + tlsAddr, "tls: { enabled: true, skip_cert_verify: true }\n"},
		{"ws", "ws://" + wsAddr, ""},
		{"unix", "unix://" + sock, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id := runID(t)
			got := make(chan string, 1)
			ts := startStream(t, fmt.Sprintf(`
urls: [ %q ]
client_id: %s-bridge
%stopic_mappings:
  - mqtt_topic: %[2]s/#
    danube_topic: /t/x
`, tc.url, id, tc.extra), func(_ context.Context, m *service.Message) error {
				b, _ := m.AsBytes()
				select {
				case got <- string(b):
				default:
				}
				return nil
			})
			ts.waitConnected(t)
			c := ts.in.conn.Load()
			pub := newPublisher(t, "tcp://"+tcpAddr, id+"-pub", true)
			pub.publishWait(t, id+"/a", 1, "over "+tc.name)
			select {
			case b := <-got:
				if b != "over "+tc.name {
					t.Fatalf("got %q", b)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("no message")
			}
			if c == nil {
				t.Fatal("no connection")
			}
		})
	}
}
