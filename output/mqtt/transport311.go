package mqttout

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/benthos-danube/benthos-danube/internal/mqttconn"
	"github.com/benthos-danube/benthos-danube/internal/redact"
)

// transport311 is an MQTT 3.1.1 connection on paho.mqtt.golang. A fresh
// client per connection (paho clients are not reused after Disconnect), a
// clean session, no automatic reconnect: the output owns the reconnect loop.
// paho writes PUBLISH packets in the order Publish is called.
type transport311 struct {
	client   paho.Client
	lostCh   chan struct{}
	lostOnce sync.Once
}

func dial311(ctx context.Context, c connConfig) (transport, error) {
	t := &transport311{lostCh: make(chan struct{})}
	o := paho.NewClientOptions()
	for _, u := range c.urls {
		o.AddBroker(u)
	}
	o.SetClientID(c.clientID).
		SetCleanSession(true).
		SetKeepAlive(c.keepalive).
		SetConnectTimeout(c.connectTimeout).
		SetWriteTimeout(c.writeTimeout). // bounds Publish's wait for paho's outgoing queue
		SetCustomOpenConnectionFn(mqttconn.OpenConnectionQuickAck).
		SetAutoReconnect(false).
		SetConnectRetry(false).
		SetResumeSubs(false).
		SetConnectionLostHandler(func(_ paho.Client, err error) {
			t.markLost()
			if c.onLost != nil {
				c.onLost(err)
			}
		})
	if c.user != "" {
		o.SetUsername(c.user)
	}
	if c.password != "" {
		o.SetPassword(c.password)
	}
	if c.tls != nil {
		o.SetTLSConfig(c.tls)
	}
	t.client = paho.NewClient(o)
	// paho bounds the dial and CONNACK by connect_timeout per URL; the wait
	// here only adds a margin so a stuck handshake can never hang Connect.
	limit := c.connectTimeout*time.Duration(len(c.urls)) + 5*time.Second
	tok := t.client.Connect()
	timer := time.NewTimer(limit)
	defer timer.Stop()
	var err error
	select {
	case <-tok.Done():
		err = tok.Error()
	case <-ctx.Done():
		err = ctx.Err()
	case <-timer.C:
		err = fmt.Errorf("no answer from the broker within %v", limit)
	}
	if err != nil {
		t.client.Disconnect(0)
		return nil, redact.Error(fmt.Errorf("connecting to MQTT broker %v as client_id %q: %w", redact.URLs(c.urls), c.clientID, err))
	}
	return t, nil
}

func (t *transport311) markLost() { t.lostOnce.Do(func() { close(t.lostCh) }) }

func (t *transport311) publish(p publication) delivery {
	return delivery311{t.client.Publish(p.topic, p.qos, p.retained, p.payload)}
}

// delivery311 is a paho token whose connection errors are errConnLost.
type delivery311 struct{ tok paho.Token }

func (d delivery311) Done() <-chan struct{} { return d.tok.Done() }

func (d delivery311) Error() error {
	err := d.tok.Error()
	if err == nil {
		return nil
	}
	// paho: ErrNotConnected before the write, "connection lost before
	// Publish completed" from its clean-up of a lost connection.
	if errors.Is(err, paho.ErrNotConnected) {
		return errNotSent
	}
	// A network error while writing (the socket closed under the
	// publish, a reset) is the same loss seen earlier.
	var opErr *net.OpError
	if strings.Contains(err.Error(), "connection lost") || errors.As(err, &opErr) {
		return fmt.Errorf("%w (%v)", errConnLost, err)
	}
	return err
}

func (t *transport311) lost() <-chan struct{} { return t.lostCh }

func (t *transport311) close(quiesce time.Duration) {
	t.client.Disconnect(uint(quiesce / time.Millisecond))
	t.markLost()
}
