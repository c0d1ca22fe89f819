package mqttout

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eclipse/paho.golang/packets"
	paho5 "github.com/eclipse/paho.golang/paho"
	"github.com/eclipse/paho.golang/paho/session"
	"github.com/eclipse/paho.golang/paho/session/state"

	"github.com/benthos-danube/benthos-danube/internal/mqttconn"
	"github.com/benthos-danube/benthos-danube/internal/redact"
)

// transport5 is an MQTT 5 connection on paho.golang, dialled as the mqtt
// input's MQTT 5 transport is (mqttconn.OpenBuffered, a fresh client and
// session state per connection), with Clean Start and a session expiry of
// 0: nothing is kept for a publisher between connections.
//
// Order and completion. paho.golang's Publish blocks until the PUBACK
// (PUBCOMP), so calling it from a goroutine per message would lose the call
// order. Its PublishMethod_AsyncSend mode adds the PUBLISH to the session
// (packet identifier, Receive Maximum slot) and writes it before returning,
// in call order, but reports no outcome: the session state paho routes the
// PUBACK/PUBREC/PUBCOMP through is wrapped (capturingState), and its
// AddToSession swaps in a response channel of ours, which one goroutine per
// message in flight waits on, together with the connection's loss.
//
// Flow control. paho.golang's session keeps at most the broker's Receive
// Maximum (CONNACK; 65535 when absent) QoS 1/2 publications in flight:
// AddToSession blocks for a slot, so publish blocks while the window is
// full, for at most write_timeout (PacketTimeout), then fails the message
// (retried). QoS 0 is written at once.
type transport5 struct {
	client *paho5.Client
	st     *capturingState

	mu sync.Mutex // serialises publish: call order is write order

	maxQoS    byte
	retainOK  bool
	maxPacket uint32 // 0: no limit announced

	// gone is closed when the connection ended; lostCh (lost()) only
	// once every delivery of the connection has its outcome (pending), so
	// a caller that sees lost() sees the PUBACK paho had read before the
	// end (publishAlone's strike depends on it).
	gone     chan struct{}
	pending  sync.WaitGroup
	lostCh   chan struct{}
	lostOnce sync.Once
	closing  atomic.Bool
	onLost   func(error)
	reported atomic.Bool
}

// capturingState is paho's in-memory session state; AddToSession for a
// PUBLISH keeps the response channel for transport5.publish (above).
type capturingState struct {
	*state.State
	next chan packets.ControlPacket // set by AddToSession, under transport5.mu
}

func (c *capturingState) AddToSession(ctx context.Context, p session.Packet, resp chan<- packets.ControlPacket) error {
	if p.Type() != packets.PUBLISH {
		return c.State.AddToSession(ctx, p, resp)
	}
	ch := make(chan packets.ControlPacket, 1)
	if err := c.State.AddToSession(ctx, p, ch); err != nil {
		return err
	}
	c.next = ch
	return nil
}

func dial5(ctx context.Context, c connConfig) (transport, error) {
	var errs []string
	for _, raw := range c.urls {
		u, err := url.Parse(raw)
		if err != nil {
			errs = append(errs, redact.Error(err).Error())
			continue
		}
		conn, err := mqttconn.OpenBuffered(u, mqttconn.DialOptions{Timeout: c.connectTimeout, TLS: c.tls, QuickAck: true})
		if err != nil {
			errs = append(errs, fmt.Sprintf("%s: %v", redact.URL(raw), redact.Error(err)))
			continue
		}
		t, err := handshake5(ctx, c, conn, u)
		if err != nil {
			return nil, redact.Error(fmt.Errorf("connecting to MQTT broker %s as client_id %q over MQTT 5: %w", redact.URL(raw), c.clientID, err))
		}
		return t, nil
	}
	return nil, fmt.Errorf("connecting to MQTT broker %v as client_id %q over MQTT 5: %s", redact.URLs(c.urls), c.clientID, strings.Join(errs, "; "))
}

func handshake5(ctx context.Context, c connConfig, conn net.Conn, u *url.URL) (*transport5, error) {
	t := &transport5{gone: make(chan struct{}), lostCh: make(chan struct{}), onLost: c.onLost, st: &capturingState{State: state.NewInMemory()}}
	t.client = paho5.NewClient(paho5.ClientConfig{
		ClientID: c.clientID,
		// paho writes from several goroutines (PUBREL, pings, publish).
		Conn:          packets.NewThreadSafeConn(conn),
		Session:       t.st,
		PacketTimeout: c.writeTimeout, // bounds the wait for a Receive Maximum slot
		OnClientError: func(err error) {
			t.lose(fmt.Errorf("%w", redact.Error(err)))
		},
		OnServerDisconnect: func(d *paho5.Disconnect) {
			reason := ""
			if d.Properties != nil {
				reason = d.Properties.ReasonString
			}
			t.lose(fmt.Errorf("the MQTT broker disconnected the bridge: reason code 0x%02x (%s)%s", d.ReasonCode, mqttconn.DisconnectReason(d.ReasonCode), mqttconn.ReasonSuffix(reason)))
		},
	})
	cp := &paho5.Connect{
		ClientID:   c.clientID,
		KeepAlive:  uint16(c.keepalive / time.Second),
		CleanStart: true,
		Properties: &paho5.ConnectProperties{RequestProblemInfo: true}, // session expiry 0
	}
	user, pass := c.user, c.password
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
	cctx, cancel := context.WithTimeout(ctx, c.connectTimeout)
	defer cancel()
	ca, err := t.client.Connect(cctx, cp)
	if err != nil {
		_ = conn.Close()
		_ = t.st.Close()
		if ca != nil && ca.ReasonCode >= 0x80 {
			return nil, mqttconn.ConnackError(ca)
		}
		return nil, mqttconn.NoConnackError(err)
	}
	t.maxQoS, t.retainOK = 2, true
	if p := ca.Properties; p != nil {
		if p.MaximumQoS != nil {
			t.maxQoS = *p.MaximumQoS
		}
		t.retainOK = p.RetainAvailable
		if p.MaximumPacketSize != nil {
			t.maxPacket = *p.MaximumPacketSize
		}
	}
	go func() {
		// Owned by the client: ends when the connection does.
		<-t.client.Done()
		t.markLost()
		_ = t.st.Close()
	}()
	return t, nil
}

// lose reports why the connection ended, once, unless we closed it.
func (t *transport5) lose(err error) {
	defer t.markLost()
	if t.closing.Load() || !t.reported.CompareAndSwap(false, true) {
		return
	}
	if t.onLost != nil {
		t.onLost(err)
	}
}

func (t *transport5) markLost() {
	t.lostOnce.Do(func() {
		t.mu.Lock() // publish adds to pending under mu, after checking gone
		close(t.gone)
		t.mu.Unlock()
		go func() { // ends when the deliveries do, which gone ends
			t.pending.Wait()
			close(t.lostCh)
		}()
	})
}

func (t *transport5) lost() <-chan struct{} { return t.lostCh }

func (t *transport5) close(time.Duration) {
	t.closing.Store(true)
	_ = t.client.Disconnect(&paho5.Disconnect{ReasonCode: 0})
	t.markLost()
}

// delivery5 is the outcome of one publication.
type delivery5 struct {
	done chan struct{}
	err  error
}

func (d *delivery5) Done() <-chan struct{} { return d.done }
func (d *delivery5) Error() error          { return d.err }

func finished(err error) *delivery5 {
	d := &delivery5{done: make(chan struct{}), err: err}
	close(d.done)
	return d
}

func (t *transport5) publish(p publication) delivery {
	// What the broker announced it cannot take is refused here, with the
	// reason code the broker would disconnect with (MQTT 5 §3.3.4).
	if p.qos > t.maxQoS {
		return finished(&refusedError{code: 0x9B, reason: fmt.Sprintf("QoS not supported: the broker's Maximum QoS is %d", t.maxQoS)})
	}
	if p.retained && !t.retainOK {
		return finished(&refusedError{code: 0x9A, reason: "retain not supported by the broker"})
	}
	pub := &paho5.Publish{QoS: p.qos, Retain: p.retained, Topic: p.topic, Payload: p.payload, Properties: pahoProperties(p.props)}
	if t.maxPacket > 0 {
		if n := packetSize(pub); n > int(t.maxPacket) {
			return finished(&refusedError{code: 0x95, reason: fmt.Sprintf("packet too large: %d bytes, over the broker's Maximum Packet Size %d", n, t.maxPacket)})
		}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	select {
	case <-t.gone:
		return finished(errNotSent)
	default:
	}
	if p.qos == 0 {
		if _, err := t.client.PublishWithOptions(context.Background(), pub, paho5.PublishOptions{}); err != nil {
			return finished(fmt.Errorf("%w (%v)", errConnLost, err))
		}
		return finished(nil)
	}
	t.st.next = nil
	_, err := t.client.PublishWithOptions(context.Background(), pub, paho5.PublishOptions{Method: paho5.PublishMethod_AsyncSend})
	ch := t.st.next
	t.st.next = nil
	if ch == nil { // not added to the session
		switch {
		case err == nil:
			return finished(errors.New("paho.golang accepted the publish without a session entry"))
		case errors.Is(err, session.ErrNoConnection):
			return finished(errNotSent)
		case errors.Is(err, context.DeadlineExceeded):
			return finished(fmt.Errorf("the broker's Receive Maximum window stayed full for write_timeout: %w", err))
		}
		return finished(fmt.Errorf("publishing over MQTT 5: %w", err))
	}
	// In the session: ch gets the final answer; a write error
	// (paho.ErrNetworkErrorAfterStored) ends the connection.
	d := &delivery5{done: make(chan struct{})}
	t.pending.Add(1)
	go func() {
		defer t.pending.Done()
		defer close(d.done)
		select {
		case resp := <-ch:
			d.err = outcome(resp)
		case <-t.gone:
			select {
			case resp := <-ch:
				d.err = outcome(resp)
			default:
				d.err = errConnLost
			}
		}
	}()
	return d
}

// outcome reads the broker's final answer to a QoS 1/2 PUBLISH.
func outcome(resp packets.ControlPacket) error {
	refused := func(code byte, name string, props *packets.Properties) error {
		reason := name
		if props != nil && props.ReasonString != "" {
			reason = props.ReasonString
		}
		return &refusedError{code: code, reason: reason}
	}
	switch pk := resp.Content.(type) {
	case *packets.Puback:
		if pk.ReasonCode >= 0x80 {
			return refused(pk.ReasonCode, pk.Reason(), pk.Properties)
		}
		return nil
	case *packets.Pubrec:
		if pk.ReasonCode >= 0x80 {
			return refused(pk.ReasonCode, pk.Reason(), pk.Properties)
		}
		return fmt.Errorf("%w (PUBREC without PUBCOMP)", errConnLost)
	case *packets.Pubcomp:
		if pk.ReasonCode >= 0x80 {
			// 0x92 packet identifier not found: the broker lost the
			// exchange; retried (a duplicate if it had delivered it).
			return fmt.Errorf("the broker ended the QoS 2 exchange with PUBCOMP reason code 0x%02x; it is retried", pk.ReasonCode)
		}
		return nil
	case nil:
		// paho's empty answer: the exchange left the session (shutdown).
		return errConnLost
	}
	return fmt.Errorf("unexpected answer %s to a PUBLISH", resp.PacketType())
}

// pahoProperties converts the publication's properties.
func pahoProperties(p *properties5) *paho5.PublishProperties {
	if p == nil {
		return nil
	}
	out := &paho5.PublishProperties{ContentType: p.contentType, ResponseTopic: p.responseTopic, CorrelationData: p.correlationData}
	for _, u := range p.user {
		out.User = append(out.User, paho5.UserProperty{Key: u.key, Value: u.value})
	}
	return out
}

// packetSize is the size of pub on the wire (MQTT 5 §2.1: the fixed
// header, one byte and the Remaining Length, then the rest).
func packetSize(pub *paho5.Publish) int {
	n := 0
	for _, b := range pub.Packet().Buffers() {
		n += len(b)
	}
	vbi := 1
	for rest := n; rest >= 128; rest >>= 7 {
		vbi++
	}
	return 1 + vbi + n
}
