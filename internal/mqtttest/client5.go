package mqtttest

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"time"

	"github.com/eclipse/paho.golang/packets"
	paho "github.com/eclipse/paho.golang/paho"
)

// Connect5 dials the broker at rawURL (tcp://host:port) and connects an
// MQTT 5 client (paho.golang) with a clean start and a 30 s keep-alive. The
// client does not reconnect: it is for brokers that stay up, such as the
// demo's, and for tests.
func Connect5(ctx context.Context, rawURL, clientID string) (*paho.Client, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("broker URL %q: %w", rawURL, err)
	}
	var d net.Dialer
	dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	conn, err := d.DialContext(dctx, "tcp", u.Host)
	if err != nil {
		return nil, fmt.Errorf("dialing %s: %w", rawURL, err)
	}
	c := paho.NewClient(paho.ClientConfig{ClientID: clientID, Conn: packets.NewThreadSafeConn(conn)})
	if _, err := c.Connect(ctx, &paho.Connect{ClientID: clientID, CleanStart: true, KeepAlive: 30}); err != nil {
		_ = conn.Close()
		return nil, fmt.Errorf("MQTT 5 connect to %s: %w", rawURL, err)
	}
	return c, nil
}

// Publisher5 is an MQTT 5 test publisher (paho.golang).
type Publisher5 struct {
	Client *paho.Client
}

// NewPublisher5 connects a Publisher5 (Connect5, within 10 s), disconnected
// on cleanup; t fails on error.
func NewPublisher5(t TB, rawURL, clientID string) *Publisher5 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := Connect5(ctx, rawURL, clientID)
	if err != nil {
		t.Fatalf("publisher %s: %v", clientID, err)
		return nil
	}
	t.Cleanup(func() { _ = c.Disconnect(&paho.Disconnect{}) })
	return &Publisher5{Client: c}
}

// Publish publishes pb and waits (30 s at most) for its acknowledgement at
// QoS 1 and 2; t fails on error.
func (p *Publisher5) Publish(t TB, pb *paho.Publish) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := p.Client.Publish(ctx, pb); err != nil {
		t.Fatalf("publish %s: %v", pb.Topic, err)
	}
}
