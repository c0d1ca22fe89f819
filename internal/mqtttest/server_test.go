package mqtttest_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	paho5 "github.com/eclipse/paho.golang/paho"
	paho "github.com/eclipse/paho.mqtt.golang"
	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/benthos-danube/benthos-danube/internal/mqtttest"
)

// connect connects a paho client, or returns the connect error.
func connect(t *testing.T, url, id string, clean bool, h paho.MessageHandler) (paho.Client, error) {
	t.Helper()
	o := paho.NewClientOptions().AddBroker(url).SetClientID(id).SetCleanSession(clean).
		SetConnectTimeout(3 * time.Second).SetAutoReconnect(false).SetDefaultPublishHandler(h)
	c := paho.NewClient(o)
	tok := c.Connect()
	if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		return nil, tok.Error()
	}
	t.Cleanup(func() { c.Disconnect(50) })
	return c, nil
}

func mustConnect(t *testing.T, url, id string, clean bool, h paho.MessageHandler) paho.Client {
	t.Helper()
	c, err := connect(t, url, id, clean, h)
	if err != nil {
		t.Fatalf("connect %s: %v", id, err)
	}
	return c
}

func wait(t *testing.T, tok paho.Token) {
	t.Helper()
	if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("token: %v", tok.Error())
	}
}

// TestServerRestartsOnItsPort: messages flow, and after Restart the broker
// is back on the same address.
func TestServerRestartsOnItsPort(t *testing.T) {
	mq := mqtttest.NewTestServer(t)
	addr := mq.Addr()
	if err := mq.Start(); err == nil {
		t.Fatal("Start of a running broker succeeded")
	}
	got := make(chan string, 4)
	for round := 0; round < 2; round++ {
		sub := mustConnect(t, mq.URL(), "sub", true, nil)
		wait(t, sub.Subscribe("a/b", 1, func(_ paho.Client, m paho.Message) { got <- string(m.Payload()) }))
		pub := mustConnect(t, mq.URL(), "pub", true, nil)
		wait(t, pub.Publish("a/b", 1, false, "hello"))
		select {
		case m := <-got:
			if m != "hello" {
				t.Fatalf("got %q", m)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("round %d: no message", round)
		}
		if err := mq.Restart(); err != nil {
			t.Fatal(err)
		}
		if mq.Addr() != addr {
			t.Fatalf("restarted on %s, want %s", mq.Addr(), addr)
		}
	}
}

// denyHook refuses clients with the user name "bad" and allows the rest.
type denyHook struct{ mochi.HookBase }

func (*denyHook) ID() string { return "deny" }
func (*denyHook) Provides(b byte) bool {
	return b == mochi.OnConnectAuthenticate || b == mochi.OnACLCheck
}
func (*denyHook) OnConnectAuthenticate(_ *mochi.Client, pk packets.Packet) bool {
	return string(pk.Connect.Username) != "bad"
}
func (*denyHook) OnACLCheck(*mochi.Client, string, bool) bool { return true }

// TestHookTakesOverAuth: a hook that authenticates replaces the default
// allow-all hook.
func TestHookTakesOverAuth(t *testing.T) {
	mq := mqtttest.NewTestServer(t, mqtttest.WithHook(&denyHook{}, nil))
	mustConnect(t, mq.URL(), "good", true, nil)
	c := paho.NewClient(paho.NewClientOptions().AddBroker(mq.URL()).SetClientID("bad").SetUsername("bad").
		SetConnectTimeout(3 * time.Second).SetAutoReconnect(false))
	tok := c.Connect()
	if tok.WaitTimeout(5*time.Second) && tok.Error() == nil {
		c.Disconnect(50)
		t.Fatal("the hook's refusal was overridden")
	}
}

// TestPublisher5: an MQTT 5 publisher's message reaches a 3.1.1 subscriber,
// and Connect5 reports a broker that is not there.
func TestPublisher5(t *testing.T) {
	mq := mqtttest.NewTestServer(t)
	got := make(chan string, 1)
	sub := mustConnect(t, mq.URL(), "sub", true, nil)
	wait(t, sub.Subscribe("v5/x", 1, func(_ paho.Client, m paho.Message) { got <- string(m.Payload()) }))
	pub := mqtttest.NewPublisher5(t, mq.URL(), "pub5")
	pub.Publish(t, &paho5.Publish{Topic: "v5/x", QoS: 1, Payload: []byte("five")})
	select {
	case m := <-got:
		if m != "five" {
			t.Fatalf("got %q", m)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no message")
	}
	addr := mq.Addr()
	mq.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if _, err := mqtttest.Connect5(ctx, "tcp://"+addr, "nobody"); err == nil {
		t.Fatal("Connect5 to a stopped broker succeeded")
	}
}

// TestStopDoesNotWaitForStuckClients: Stop returns although one connection
// never sent CONNECT and another stopped reading while the broker was
// writing to it. mochi alone waits for both for ever.
func TestStopDoesNotWaitForStuckClients(t *testing.T) {
	for _, tc := range []struct {
		name  string
		stuck func(t *testing.T, mq *mqtttest.Server) net.Conn
	}{
		{"silent connection", func(t *testing.T, mq *mqtttest.Server) net.Conn {
			c, err := net.Dial("tcp", mq.Addr())
			if err != nil {
				t.Fatalf("dial: %v", err)
			}
			time.Sleep(200 * time.Millisecond) // let the broker accept it
			return c
		}},
		{"client not reading", func(t *testing.T, mq *mqtttest.Server) net.Conn {
			c := rawSubscriber(t, mq.Addr(), "flood")
			pub := mustConnect(t, mq.URL(), "pub", true, nil)
			big := make([]byte, 64<<10)
			for i := 0; i < 256; i++ { // 16 MiB, more than the socket buffers hold
				wait(t, pub.Publish("flood", 0, false, big))
			}
			time.Sleep(200 * time.Millisecond) // let the broker's writer block
			return c
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mq, err := mqtttest.NewServer()
			if err != nil {
				t.Fatal(err)
			}
			c := tc.stuck(t, mq)
			stopped := make(chan error, 1)
			go func() { stopped <- mq.Stop() }()
			select {
			case err := <-stopped:
				if err != nil {
					t.Fatalf("Stop: %v", err)
				}
			case <-time.After(10 * time.Second):
				_ = c.Close() // unblock the broker so the test can end
				<-stopped
				t.Fatal("Stop waited more than 10 s for a stuck client")
			}
			_ = c.Close()
		})
	}
}

// stuckHook keeps mochi from finishing with a client that disconnects until
// release is closed.
type stuckHook struct {
	mochi.HookBase
	release chan struct{}
}

func (h *stuckHook) ID() string { return "stuck" }

func (h *stuckHook) Provides(b byte) bool { return b == mochi.OnDisconnect }

func (h *stuckHook) OnDisconnect(*mochi.Client, error, bool) { <-h.release }

// TestStopGivesUpOnAStuckBroker: when mochi is stuck on something other than
// a connection, Stop returns an error naming where, after WithStopTimeout's
// time, instead of waiting for ever.
func TestStopGivesUpOnAStuckBroker(t *testing.T) {
	h := &stuckHook{release: make(chan struct{})}
	t.Cleanup(func() { close(h.release) }) // lets the left-behind goroutines end
	mq, err := mqtttest.NewServer(mqtttest.WithHook(h, nil), mqtttest.WithStopTimeout(300*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	mustConnect(t, mq.URL(), "stuck", true, nil)
	start := time.Now()
	err = mq.Stop()
	if err == nil {
		t.Fatal("Stop returned no error although mochi was stuck")
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("Stop took %s", took)
	}
	for _, want := range []string{"mochi did not finish closing 300ms", "stuckHook).OnDisconnect"} {
		if !strings.Contains(err.Error(), want) {
			t.Fatalf("Stop's error does not say %q:\n%v", want, err)
		}
	}
}

// rawSubscriber connects over a bare TCP connection (keepalive 0, so the
// broker sets no deadline), subscribes to topic at QoS 0 and returns the
// connection, which nobody reads from then on.
func rawSubscriber(t *testing.T, addr, topic string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	send := func(pk packets.Packet, encode func(*packets.Packet, *bytes.Buffer) error) {
		t.Helper()
		var buf bytes.Buffer
		if err := encode(&pk, &buf); err != nil {
			t.Fatalf("encode %v: %v", pk.FixedHeader.Type, err)
		}
		if _, err := c.Write(buf.Bytes()); err != nil {
			t.Fatalf("write %v: %v", pk.FixedHeader.Type, err)
		}
	}
	r := bufio.NewReader(c)
	expect := func(kind byte) {
		t.Helper()
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		var fh packets.FixedHeader
		b, err := r.ReadByte()
		if err != nil {
			t.Fatalf("reading packet type: %v", err)
		}
		if err := fh.Decode(b); err != nil || fh.Type != kind {
			t.Fatalf("got packet type %d (%v), want %d", fh.Type, err, kind)
		}
		n, _, err := packets.DecodeLength(r)
		if err != nil {
			t.Fatalf("reading length: %v", err)
		}
		if _, err := io.CopyN(io.Discard, r, int64(n)); err != nil {
			t.Fatalf("reading body: %v", err)
		}
		_ = c.SetReadDeadline(time.Time{})
	}
	send(packets.Packet{
		FixedHeader:     packets.FixedHeader{Type: packets.Connect},
		ProtocolVersion: 4,
		Connect: packets.ConnectParams{
			ProtocolName: []byte("MQTT"), Clean: true, ClientIdentifier: "stuck",
		},
	}, (*packets.Packet).ConnectEncode)
	expect(packets.Connack)
	send(packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Subscribe, Qos: 1},
		PacketID:    1,
		Filters:     packets.Subscriptions{{Filter: topic}},
	}, (*packets.Packet).SubscribeEncode)
	expect(packets.Suback)
	return c
}

// TestFloodWithAcksKeepsFlowing: four publishers flood an MQTT 5 subscriber
// that acknowledges every message, and every message arrives. Without
// flowHook mochi 2.7.9 strands the messages it held back for a small
// Receive Maximum (20 of 6,000 arrive), and with a large one it can
// deadlock (the publishers' acknowledgements stop; within ten runs here).
func TestFloodWithAcksKeepsFlowing(t *testing.T) {
	for _, receiveMax := range []uint16{10, 1000} {
		t.Run(fmt.Sprintf("receive_maximum=%d", receiveMax), func(t *testing.T) { testFlood(t, receiveMax) })
	}
}

func testFlood(t *testing.T, receiveMax uint16) {
	const publishers, each = 4, 1500
	mq := mqtttest.NewTestServer(t)
	got := make(chan struct{}, publishers*each)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := net.Dial("tcp", mq.Addr())
	if err != nil {
		t.Fatal(err)
	}
	sub := paho5.NewClient(paho5.ClientConfig{ClientID: "flood-sub", Conn: conn,
		OnPublishReceived: []func(paho5.PublishReceived) (bool, error){
			func(paho5.PublishReceived) (bool, error) { got <- struct{}{}; return true, nil },
		}})
	if _, err := sub.Connect(ctx, &paho5.Connect{ClientID: "flood-sub", CleanStart: true, KeepAlive: 30,
		Properties: &paho5.ConnectProperties{ReceiveMaximum: &receiveMax}}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Disconnect(&paho5.Disconnect{}) })
	if _, err := sub.Subscribe(ctx, &paho5.Subscribe{Subscriptions: []paho5.SubscribeOptions{{Topic: "flood/#", QoS: 1}}}); err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, publishers)
	for p := range publishers {
		pub := mustConnect(t, mq.URL(), fmt.Sprintf("flood-pub-%d", p), true, nil)
		go func() {
			toks := make([]paho.Token, 0, 100)
			for i := range each {
				toks = append(toks, pub.Publish(fmt.Sprintf("flood/%d", p), 1, false, []byte(strconv.Itoa(i))))
				if len(toks) < cap(toks) && i < each-1 {
					continue
				}
				for _, tok := range toks {
					if !tok.WaitTimeout(10 * time.Second) {
						errs <- fmt.Errorf("publisher %d: message %d not acknowledged within 10 s: the broker stopped", p, i)
						return
					}
					if err := tok.Error(); err != nil {
						errs <- fmt.Errorf("publisher %d: %w", p, err)
						return
					}
				}
				toks = toks[:0]
			}
			errs <- nil
		}()
	}
	for range publishers {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.After(10 * time.Second)
	for n := 0; n < publishers*each; n++ {
		select {
		case <-got:
		case <-deadline:
			t.Fatalf("the subscriber got %d of %d messages", n, publishers*each)
		}
	}
}
