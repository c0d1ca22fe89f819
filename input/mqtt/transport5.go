package mqtt

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/eclipse/paho.golang/packets"
	paho5 "github.com/eclipse/paho.golang/paho"
	"github.com/eclipse/paho.golang/paho/session/state"

	"github.com/benthos-danube/benthos-danube/internal/mqttconn"
	"github.com/benthos-danube/benthos-danube/internal/redact"
)

// MQTT 5 on paho.golang.
//
// The connection lifecycle stays the input's own, as for MQTT 3.1.1: every
// Connect dials a fresh paho.golang client (a client connects once), sends
// CONNECT, and re-subscribes every mapping; Benthos' Connect loop is the
// reconnect loop, with our backoff. autopaho is not used: it runs its own
// reconnect loop and re-subscribes from its OnConnectionUp callback, which
// would hide the connection state /ready reports and the gap between CONNACK
// and SUBSCRIBE where the retained-replay filter is installed.
//
// Acknowledgements. paho.golang's manual acknowledgement
// (EnableManualAcknowledgment) buffers acks and writes them from a ticker
// (every 50 ms by default), scanning the list of unacknowledged messages on
// every Ack: with a broker window of 20 that caps QoS 1 at a few hundred
// messages per second. Instead, the session state paho writes PUBACK/PUBREC
// through is wrapped (heldAcks): the automatic Ack paho makes when our
// handler returns is ignored, and the input's own ackReleaser, which already
// keeps arrival order for MQTT 3.1.1, sends each PUBACK/PUBREC through the
// wrapped state once the output confirmed the message. A fresh state per
// connection means an acknowledgement for a lost connection is dropped
// (the state has no connection), as paho.mqtt.golang does; a persistent
// session redelivers the message.

// properties are the MQTT 5 PUBLISH properties of a message.
type properties = paho5.PublishProperties

// Topic aliases. The input announces no Topic Alias Maximum (0), so a
// broker must send every PUBLISH with its topic: mochi 2.7 keeps its
// outbound aliases across reconnections of a persistent session and sends
// an alias the new connection never established (found by TestE2EMQTT5),
// which MQTT 5 forbids [MQTT-3.3.2-7]. A broker that sends aliases anyway
// has them resolved per connection (aliases.resolve); an alias without an
// established topic ends the connection with a clear error, the message
// unacknowledged.

// heldAcks is the session state of one MQTT 5 connection, with the
// acknowledgement taken out of paho's hands (see above).
type heldAcks struct {
	*state.State
}

// Ack is what paho calls when the handler returned: nothing is sent.
func (heldAcks) Ack(*packets.Publish) error { return nil }

// release sends the PUBACK (QoS 1) or PUBREC (QoS 2) of a received PUBLISH.
func (h heldAcks) release(id uint16, qos byte) error {
	return h.State.Ack(&packets.Publish{PacketID: id, QoS: qos})
}

// session5 is one MQTT 5 connection.
type session5 struct {
	client   *paho5.Client
	conn     *connection
	acks     heldAcks
	closing  atomic.Bool // set by disconnect: later errors are ours, not news
	reported atomic.Bool // why the connection ended was logged
	// retainHandling of every subscription: 1 (retained messages only for
	// a subscription the session did not have) with a persistent session
	// and retained_on_resume: skip, so a resumed session gets no replays;
	// 0 (always) otherwise.
	retainHandling byte
}

// message5 is a PUBLISH received over MQTT 5, its topic alias resolved.
type message5 struct {
	p     *paho5.Publish
	topic string
	dup   bool
	acks  heldAcks
	acked atomic.Bool
}

func (m *message5) Topic() string           { return m.topic }
func (m *message5) Payload() []byte         { return m.p.Payload }
func (m *message5) Qos() byte               { return m.p.QoS }
func (m *message5) Retained() bool          { return m.p.Retain }
func (m *message5) Duplicate() bool         { return m.dup }
func (m *message5) MessageID() uint16       { return m.p.PacketID }
func (m *message5) properties() *properties { return m.p.Properties }
func (m *message5) Ack() {
	if m.p.QoS == 0 || !m.acked.CompareAndSwap(false, true) {
		return
	}
	// An error means the connection is failing; the state reports it and
	// a persistent session redelivers the message.
	_ = m.acks.release(m.p.PacketID, m.p.QoS)
}

// aliases resolves the topic aliases of one connection. It is used only
// from paho's router goroutine, which delivers PUBLISH packets in order.
type aliases map[uint16]string

// resolve returns the topic of p, recording or applying its topic alias.
func (a aliases) resolve(p *paho5.Publish) (string, error) {
	if p.Properties == nil || p.Properties.TopicAlias == nil {
		return p.Topic, nil
	}
	alias := *p.Properties.TopicAlias
	if alias == 0 {
		return "", errors.New("the broker sent topic alias 0 (MQTT 5 reason 0x94, topic alias invalid)")
	}
	if p.Topic != "" {
		a[alias] = p.Topic
		return p.Topic, nil
	}
	t, ok := a[alias]
	if !ok {
		return "", fmt.Errorf("the broker sent topic alias %d without a topic before establishing it on this connection (MQTT 5 protocol error 0x82)", alias)
	}
	return t, nil
}

// dial5 connects a fresh paho.golang client to the first broker URL that
// answers.
func (in *input) dial5(ctx context.Context, c *connection) (session, bool, error) {
	var errs []string
	for _, raw := range in.cfg.urls {
		u, err := url.Parse(raw)
		if err != nil {
			errs = append(errs, redact.Error(err).Error())
			continue
		}
		conn, err := mqttconn.OpenBuffered(u, mqttconn.DialOptions{Timeout: in.cfg.connectTimeout, TLS: in.cfg.tls})
		if err != nil {
			errs = append(errs, fmt.Sprintf("%s: %v", redact.URL(raw), redact.Error(err)))
			continue
		}
		s, present, err := in.handshake5(ctx, c, conn, u)
		if err != nil {
			return nil, false, redact.Error(fmt.Errorf("connecting to MQTT broker %s as client_id %q over MQTT 5: %w", redact.URL(raw), in.cfg.clientID, err))
		}
		return s, present, nil
	}
	return nil, false, fmt.Errorf("connecting to MQTT broker %v as client_id %q over MQTT 5: %s", redact.URLs(in.cfg.urls), in.cfg.clientID, strings.Join(errs, "; "))
}

// handshake5 sends CONNECT on conn and waits for the CONNACK.
func (in *input) handshake5(ctx context.Context, c *connection, conn net.Conn, u *url.URL) (*session5, bool, error) {
	cfg := in.cfg
	st := state.NewInMemory()
	s := &session5{acks: heldAcks{st}, conn: c}
	if !cfg.cleanSession && cfg.retainedOnResume == retainedSkip {
		s.retainHandling = 1
	}
	al := aliases{}
	var cli *paho5.Client
	cli = paho5.NewClient(paho5.ClientConfig{
		ClientID: cfg.clientID,
		// Paho writes from several goroutines (acks, pings, SUBSCRIBE).
		Conn:          packets.NewThreadSafeConn(conn),
		Session:       s.acks,
		PacketTimeout: cfg.connectTimeout,
		OnPublishReceived: []func(paho5.PublishReceived) (bool, error){
			func(pr paho5.PublishReceived) (bool, error) {
				topic, err := al.resolve(pr.Packet)
				if err != nil {
					in.lose5(s, c, "MQTT 5 protocol error from the broker, reconnecting (unacknowledged messages are redelivered): %v", err)
					go func() { _ = cli.Disconnect(&paho5.Disconnect{ReasonCode: 0x82}) }()
					return true, nil
				}
				in.handle(c, &message5{p: pr.Packet, topic: topic, dup: pr.Packet.Duplicate(), acks: s.acks})
				return true, nil
			},
		},
		OnClientError: func(err error) {
			in.lose5(s, c, "MQTT connection lost: %v", redact.Error(err))
		},
		OnServerDisconnect: func(d *paho5.Disconnect) {
			reason := ""
			if d.Properties != nil {
				reason = d.Properties.ReasonString
			}
			in.lose5(s, c, "The MQTT broker disconnected the bridge: reason code 0x%02x (%s)%s", d.ReasonCode, disconnectReason(d.ReasonCode), reasonSuffix(reason))
		},
	})
	s.client = cli

	cp := &paho5.Connect{
		ClientID:   cfg.clientID,
		KeepAlive:  uint16(cfg.keepalive / time.Second),
		CleanStart: cfg.cleanSession,
		Properties: &paho5.ConnectProperties{
			SessionExpiryInterval: ptr(cfg.sessionExpiry),
			ReceiveMaximum:        ptr(uint16(min(cfg.maxUnacked, 65535))),
			RequestProblemInfo:    true,
		},
	}
	user, pass := cfg.user, cfg.password
	if user == "" && u.User != nil {
		user = u.User.Username()
		pass, _ = u.User.Password()
	}
	if user != "" {
		cp.Username, cp.UsernameFlag = user, true
	}
	if pass != "" {
		cp.Password, cp.PasswordFlag = []byte(pass), true
	}
	if w := cfg.will; w != nil {
		cp.WillMessage = &paho5.WillMessage{Topic: w.topic, Payload: []byte(w.payload), QoS: w.qos, Retain: w.retained}
	}
	ca, err := cli.Connect(ctx, cp)
	if err != nil {
		_ = conn.Close()
		if ca != nil && ca.ReasonCode >= 0x80 {
			return nil, false, connackError(ca)
		}
		return nil, false, mqttconn.NoConnackError(err)
	}
	go func() {
		// Owned by the client: ends when the connection does.
		<-cli.Done()
		c.markLost()
		_ = st.Close()
	}()
	return s, ca.SessionPresent, nil
}

// lose5 logs why an MQTT 5 connection ended, once, and marks it lost.
func (in *input) lose5(s *session5, c *connection, format string, args ...any) {
	defer c.markLost()
	if s.closing.Load() || !s.reported.CompareAndSwap(false, true) {
		return
	}
	in.log.Warnf(format, args...)
}

// connackError explains a refused MQTT 5 connection.
func connackError(ca *paho5.Connack) error { return mqttconn.ConnackError(ca) }

// disconnectReason names a DISCONNECT reason code.
func disconnectReason(code byte) string { return mqttconn.DisconnectReason(code) }

// subscribe sends one SUBSCRIBE with Retain Handling retainHandling for
// every filter.
func (s *session5) subscribe(ctx context.Context, subs []subscription) ([]subResult, error) {
	sp := &paho5.Subscribe{}
	for _, sub := range subs {
		sp.Subscriptions = append(sp.Subscriptions, paho5.SubscribeOptions{Topic: sub.filter, QoS: sub.qos, RetainHandling: s.retainHandling})
	}
	sa, err := s.client.Subscribe(ctx, sp)
	if sa == nil {
		if err == nil {
			err = errors.New("no SUBACK")
		}
		return nil, err
	}
	if len(sa.Reasons) != len(subs) {
		return nil, fmt.Errorf("the SUBACK has %d reason codes for %d filters", len(sa.Reasons), len(subs))
	}
	reason := ""
	if sa.Properties != nil {
		reason = sa.Properties.ReasonString
	}
	out := make([]subResult, len(subs))
	for i, code := range sa.Reasons {
		out[i] = subResult{code: code}
		if code >= 0x80 {
			out[i].reason = reason
		}
	}
	return out, nil
}

func (s *session5) disconnect(bool) {
	if !s.conn.isLost() {
		s.closing.Store(true) // what follows is our doing
	}
	_ = s.client.Disconnect(&paho5.Disconnect{ReasonCode: 0})
}

func ptr[T any](v T) *T { return &v }
