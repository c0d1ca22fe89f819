package mqttout

import (
	"context"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"
	_ "github.com/redpanda-data/benthos/v4/public/components/io"
	_ "github.com/redpanda-data/benthos/v4/public/components/pure"
	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/benthos-danube/benthos-danube/internal/componenttest"
	"github.com/benthos-danube/benthos-danube/internal/leaktest"
	"github.com/benthos-danube/benthos-danube/internal/mqtttest"
)

func TestMain(m *testing.M) { leaktest.VerifyTestMain(m) }

// broker is an mqtttest broker, restartable on the same port, whose hook
// can withhold the acknowledgement of publishes (it drops them, as a broker
// that never answers would) to topics under a prefix.
type broker struct {
	*mqtttest.Server
	t    testing.TB
	hook *withholdHook
}

func newBroker(t testing.TB) *broker { t.Helper(); return newBrokerWith(t, nil) }

// newBrokerWith is newBroker with mochi capabilities (nil: the defaults).
func newBrokerWith(t testing.TB, caps *mochi.Capabilities) *broker {
	t.Helper()
	h := &withholdHook{}
	return &broker{Server: mqtttest.NewTestServer(t, mqtttest.WithHook(h, nil), mqtttest.WithCapabilities(caps)), t: t, hook: h}
}

func (b *broker) url() string { return b.URL() }

// start starts the stopped broker again, with extra listeners.
func (b *broker) start(extra ...listeners.Listener) {
	b.t.Helper()
	if err := b.Start(extra...); err != nil {
		b.t.Fatalf("%v", err)
	}
}

func (b *broker) stop() { b.Stop() }

// withholdHook lets every client in, drops (never acknowledges) publishes
// to topics starting with the prefix set in withhold, and counts what it
// dropped; its ACL denies writes to topics starting with the prefix set in
// deny (mochi then disconnects an MQTT 3.1.1 client that publishes there at
// QoS 1 or 2).
type withholdHook struct {
	mochi.HookBase
	prefix  atomic.Pointer[string]
	denied  atomic.Pointer[string]
	dropped atomic.Int64
	refused atomic.Int64
}

func (h *withholdHook) ID() string { return "withhold" }

func (h *withholdHook) Provides(b byte) bool {
	return b == mochi.OnPublish || b == mochi.OnConnectAuthenticate || b == mochi.OnACLCheck
}

func (h *withholdHook) OnConnectAuthenticate(*mochi.Client, packets.Packet) bool { return true }

func (h *withholdHook) OnACLCheck(_ *mochi.Client, topic string, write bool) bool {
	if p := h.denied.Load(); write && p != nil && *p != "" && strings.HasPrefix(topic, *p) {
		h.refused.Add(1)
		return false
	}
	return true
}

func (h *withholdHook) deny(prefix string) { h.denied.Store(&prefix) }

func (h *withholdHook) OnPublish(_ *mochi.Client, pk packets.Packet) (packets.Packet, error) {
	if p := h.prefix.Load(); p != nil && *p != "" && strings.HasPrefix(pk.TopicName, *p) {
		h.dropped.Add(1)
		return pk, packets.ErrRejectPacket
	}
	return pk, nil
}

func (h *withholdHook) withhold(prefix string) { h.prefix.Store(&prefix) }

// got is one message a subscriber received.
type got struct {
	topic    string
	payload  string
	qos      byte
	retained bool
}

// subscriber records what a paho client subscribed to filter receives.
type subscriber struct {
	mu   sync.Mutex
	msgs []got
}

func subscribe(t testing.TB, url, filter string, qos byte) *subscriber {
	t.Helper()
	s := &subscriber{}
	o := paho.NewClientOptions().AddBroker(url).SetClientID(mqtttest.RunID(t) + "-sub").SetCleanSession(true).
		SetAutoReconnect(true).SetConnectRetry(true).SetConnectRetryInterval(100 * time.Millisecond).
		SetMaxReconnectInterval(200 * time.Millisecond).SetOrderMatters(true).
		SetOnConnectHandler(func(c paho.Client) {
			c.Subscribe(filter, qos, func(_ paho.Client, m paho.Message) {
				s.mu.Lock()
				s.msgs = append(s.msgs, got{topic: m.Topic(), payload: string(m.Payload()), qos: m.Qos(), retained: m.Retained()})
				s.mu.Unlock()
			})
		})
	c := paho.NewClient(o)
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("subscriber connect to %s: %v", url, tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(100) })
	time.Sleep(100 * time.Millisecond) // the SUBACK
	return s
}

func (s *subscriber) all() []got {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]got(nil), s.msgs...)
}

func (s *subscriber) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.msgs)
}

// testStream is a stream with a batch producer func into the mqtt output.
type testStream struct {
	send   service.MessageBatchHandlerFunc
	stream *service.Stream
	done   chan error
}

// startStream runs `output: <outputYAML>` fed by a batch producer func.
// The output is registered on an isolated environment.
func startStream(t testing.TB, outputYAML string) *testStream {
	t.Helper()
	env := service.NewEnvironment()
	if err := Register(env); err != nil {
		t.Fatal(err)
	}
	b := env.NewStreamBuilder()
	if err := b.SetLoggerYAML("level: " + logLevel()); err != nil {
		t.Fatal(err)
	}
	send, err := b.AddBatchProducerFunc()
	if err != nil {
		t.Fatal(err)
	}
	if err := b.AddOutputYAML(outputYAML); err != nil {
		t.Fatal(err)
	}
	strm, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	ts := &testStream{send: send, stream: strm, done: make(chan error, 1)}
	go func() { ts.done <- strm.Run(context.Background()) }()
	t.Cleanup(func() {
		_ = strm.StopWithin(10 * time.Second)
		select {
		case <-ts.done:
		case <-time.After(5 * time.Second):
			t.Error("the stream did not stop")
		}
	})
	return ts
}

// startConfig runs a whole stream config (input and output), the output
// registered on an isolated environment.
func startConfig(t testing.TB, yaml string) *service.Stream {
	t.Helper()
	env := service.NewEnvironment()
	if err := Register(env); err != nil {
		t.Fatal(err)
	}
	b := env.NewStreamBuilder()
	if err := b.SetYAML(yaml + "\nlogger: { level: " + logLevel() + " }\n"); err != nil {
		t.Fatal(err)
	}
	strm, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- strm.Run(context.Background()) }()
	t.Cleanup(func() {
		_ = strm.StopWithin(10 * time.Second)
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Error("the stream did not stop")
		}
	})
	return strm
}

func logLevel() string {
	if os.Getenv("MQTT_OUT_TEST_LOG") != "" {
		return "debug"
	}
	return "none"
}

// msg builds a message with metadata pairs.
func msg(payload string, meta ...string) *service.Message {
	m := service.NewMessage([]byte(payload))
	for i := 0; i+1 < len(meta); i += 2 {
		m.MetaSetMut(meta[i], meta[i+1])
	}
	return m
}

// externalBrokerURL returns MQTT_TEST_URL, failing the test when it is set
// but unreachable.
func externalBrokerURL(t testing.TB) string { return mqtttest.ExternalURL(t) }

// waitFor polls cond until it holds or the timeout passes.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	componenttest.WaitFor(t, timeout, what, cond)
}
