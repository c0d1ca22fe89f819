package mqtt

import (
	"context"
	"fmt"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/benthos-danube/benthos-danube/internal/mqttconn"
	"github.com/benthos-danube/benthos-danube/internal/redact"
)

// session3 is an MQTT 3.1.1 connection on Eclipse Paho (paho.mqtt.golang).
// A fresh client is built for every connection attempt (paho clients are
// not reused after Disconnect).
type session3 struct {
	client  paho.Client
	timeout time.Duration
}

// dial3 connects a fresh paho client.
func (in *input) dial3(ctx context.Context, c *connection) (session, bool, error) {
	client := paho.NewClient(in.clientOptions3(c))
	// Paho bounds the dial and CONNACK by connect_timeout per URL; the wait
	// here only adds a margin so a stuck handshake can never hang Connect.
	limit := in.cfg.connectTimeout*time.Duration(len(in.cfg.urls)) + 5*time.Second
	tok := client.Connect()
	if err := waitToken(ctx, tok, limit); err != nil {
		client.Disconnect(0)
		return nil, false, redact.Error(fmt.Errorf("connecting to MQTT broker %v as client_id %q: %w", redact.URLs(in.cfg.urls), in.cfg.clientID, err))
	}
	return &session3{client: client, timeout: in.cfg.connectTimeout}, tok.(*paho.ConnectToken).SessionPresent(), nil
}

// clientOptions3 builds paho options for one connection.
func (in *input) clientOptions3(c *connection) *paho.ClientOptions {
	cfg := in.cfg
	o := paho.NewClientOptions()
	for _, u := range cfg.urls {
		o.AddBroker(u)
	}
	o.SetClientID(cfg.clientID).
		SetCleanSession(cfg.cleanSession).
		SetKeepAlive(cfg.keepalive).
		SetConnectTimeout(cfg.connectTimeout).
		SetWriteTimeout(cfg.connectTimeout).
		SetCustomOpenConnectionFn(mqttconn.OpenConnection). // a buffered reader under paho
		SetAutoReconnect(false).                            // we own the reconnect loop (fresh client, backoff, resubscribe)
		SetConnectRetry(false).
		SetResumeSubs(false).
		SetAutoAckDisabled(true). // PUBACK/PUBREC only from the Benthos ack
		SetOrderMatters(true).    // handler runs on the router goroutine; it blocks only for bounded QoS 0 back-pressure
		SetDefaultPublishHandler(func(_ paho.Client, m paho.Message) { in.handle(c, m) }).
		SetConnectionLostHandler(func(_ paho.Client, err error) {
			in.log.Warnf("MQTT connection lost: %v", redact.Error(err))
			in.lost.Add(1)
			c.markLost()
		})
	if cfg.user != "" {
		o.SetUsername(cfg.user)
	}
	if cfg.password != "" {
		o.SetPassword(cfg.password)
	}
	if cfg.tls != nil {
		o.SetTLSConfig(cfg.tls)
	}
	if cfg.will != nil {
		o.SetWill(cfg.will.topic, cfg.will.payload, cfg.will.qos, cfg.will.retained)
	}
	return o
}

func (s *session3) subscribe(ctx context.Context, subs []subscription) ([]subResult, error) {
	filters := make(map[string]byte, len(subs))
	for _, sub := range subs {
		filters[sub.filter] = sub.qos
	}
	tok := s.client.SubscribeMultiple(filters, nil)
	if err := waitToken(ctx, tok, s.timeout); err != nil {
		return nil, err
	}
	codes := tok.(*paho.SubscribeToken).Result()
	out := make([]subResult, len(subs))
	for i, sub := range subs {
		code, ok := codes[sub.filter]
		if !ok {
			code = sub.qos // paho reports every filter; keep a missing one neutral
		}
		out[i] = subResult{code: code}
	}
	return out, nil
}

func (s *session3) disconnect(graceful bool) {
	if graceful {
		s.client.Disconnect(disconnectQuiesce)
		return
	}
	s.client.Disconnect(0)
}

// waitToken waits for tok, ctx or the limit, whichever comes first.
func waitToken(ctx context.Context, tok paho.Token, limit time.Duration) error {
	t := time.NewTimer(limit)
	defer t.Stop()
	select {
	case <-tok.Done():
		return tok.Error()
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return fmt.Errorf("no answer from the broker within %v", limit)
	}
}
