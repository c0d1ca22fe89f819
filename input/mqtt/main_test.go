package mqtt

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	_ "github.com/redpanda-data/benthos/v4/public/components/pure"
	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/benthos-danube/benthos-danube/internal/leaktest"
	"github.com/benthos-danube/benthos-danube/internal/mqtttest"
)

func TestMain(m *testing.M) { leaktest.VerifyTestMain(m) }

// runID makes topics and client ids unique per test run, so tests against a
// shared external broker do not see each other's messages or sessions.
func runID(t testing.TB) string { return mqtttest.RunID(t) }

// publisher is a paho client publishing test messages.
type publisher struct {
	c paho.Client
}

func newPublisher(t testing.TB, url, clientID string, clean bool) *publisher {
	t.Helper()
	o := paho.NewClientOptions().AddBroker(url).SetClientID(clientID).SetCleanSession(clean).
		SetAutoReconnect(true).SetConnectRetry(true).SetConnectRetryInterval(100 * time.Millisecond).
		SetMaxReconnectInterval(200 * time.Millisecond).SetKeepAlive(30 * time.Second).SetOrderMatters(false).
		SetStore(mqtttest.NewPahoStore())
	c := paho.NewClient(o)
	tok := c.Connect()
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("publisher connect to %s: %v", url, tok.Error())
	}
	p := &publisher{c: c}
	t.Cleanup(func() { c.Disconnect(100) })
	return p
}

func (p *publisher) publish(t testing.TB, topic string, qos byte, payload string) paho.Token {
	return p.c.Publish(topic, qos, false, payload)
}

func (p *publisher) publishWait(t testing.TB, topic string, qos byte, payload string) {
	t.Helper()
	tok := p.publish(t, topic, qos, payload)
	if !tok.WaitTimeout(30*time.Second) || tok.Error() != nil {
		t.Fatalf("publish %s: %v", topic, tok.Error())
	}
}

// received records what a consumer func saw, by payload.
type received struct {
	mu    sync.Mutex
	msgs  map[string][]*service.Message
	total int
}

func newReceived() *received { return &received{msgs: map[string][]*service.Message{}} }

func (r *received) add(m *service.Message) {
	b, _ := m.AsBytes()
	r.mu.Lock()
	r.msgs[string(b)] = append(r.msgs[string(b)], m)
	r.total++
	r.mu.Unlock()
}

func (r *received) unique() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.msgs)
}

func (r *received) get(id string) []*service.Message {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.msgs[id]
}

// duplicates returns how many deliveries were repeats of an earlier one.
func (r *received) duplicates() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.total - len(r.msgs)
}

// missing lists the ids in want that were never received (first few only).
func (r *received) missing(want []string) (n int, sample []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, id := range want {
		if _, ok := r.msgs[id]; !ok {
			n++
			if len(sample) < 10 {
				sample = append(sample, id)
			}
		}
	}
	return n, sample
}

// testStream is a running stream with the mqtt input and a consumer func.
type testStream struct {
	strm    *service.Stream
	in      *input
	metrics *metricsCapture // the stream's metrics, unless setup set others
	done    chan error
}

// startStream builds and runs a stream with the given mqtt input YAML (the
// body under `mqtt:`), registered on an isolated environment, with consume
// as the output.
func startStream(t testing.TB, inputYAML string, consume func(context.Context, *service.Message) error) *testStream {
	t.Helper()
	return startStreamWith(t, inputYAML, consume, nil)
}

// startStreamWith is startStream with a hook that can register plugins and
// set stream options before the stream is built. The stream's metrics go to
// ts.metrics unless setup sets other metrics.
func startStreamWith(t testing.TB, inputYAML string, consume func(context.Context, *service.Message) error, setup func(*service.Environment, *service.StreamBuilder)) *testStream {
	t.Helper()
	env := service.NewEnvironment()
	inCh := make(chan *input, 1)
	err := env.RegisterBatchInput(Name, Spec(), func(conf *service.ParsedConfig, mgr *service.Resources) (service.BatchInput, error) {
		in, err := newInput(conf, mgr)
		if err != nil {
			return nil, err
		}
		inCh <- in
		return in, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	b := env.NewStreamBuilder()
	if err := b.SetLoggerYAML("level: " + logLevel()); err != nil {
		t.Fatal(err)
	}
	metrics := newMetricsCapture()
	if err := env.RegisterMetricsExporter("test_capture", service.NewConfigSpec(),
		func(*service.ParsedConfig, *service.Logger) (service.MetricsExporter, error) { return metrics, nil }); err != nil {
		t.Fatal(err)
	}
	if err := b.SetMetricsYAML("test_capture: {}"); err != nil {
		t.Fatal(err)
	}
	if err := b.AddInputYAML("mqtt:\n" + indent(inputYAML, "  ")); err != nil {
		t.Fatalf("input yaml: %v", err)
	}
	if consume != nil { // nil: setup adds the consumer
		if err := b.AddConsumerFunc(consume); err != nil {
			t.Fatal(err)
		}
	}
	if setup != nil {
		setup(env, b)
	}
	strm, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	ts := &testStream{strm: strm, metrics: metrics, done: make(chan error, 1)}
	go func() { ts.done <- strm.Run(context.Background()) }()
	select {
	case ts.in = <-inCh:
	case err := <-ts.done:
		t.Fatalf("stream ended before the input was built: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("input not constructed within 10s")
	}
	t.Cleanup(func() { ts.stop(t, 10*time.Second) })
	return ts
}

var stopped sync.Map

// stop stops the stream within d and waits for Run to return.
func (ts *testStream) stop(t testing.TB, d time.Duration) {
	if _, dup := stopped.LoadOrStore(ts, true); dup {
		return
	}
	_ = ts.strm.StopWithin(d)
	select {
	case <-ts.done:
	case <-time.After(d + 10*time.Second):
		t.Errorf("stream did not stop")
	}
}

// connected waits until the input has an active connection.
func (ts *testStream) waitConnected(t testing.TB) {
	t.Helper()
	waitFor(t, 15*time.Second, "the mqtt input to connect", func() bool {
		c := ts.in.conn.Load()
		return c != nil && !c.isLost()
	})
}

// logLevel is the Benthos log level of test streams: MQTT_TEST_LOG, or none.
func logLevel() string {
	if l := os.Getenv("MQTT_TEST_LOG"); l != "" {
		return l
	}
	return "none"
}

func indent(s, pre string) string {
	lines := strings.Split(strings.Trim(s, "\n"), "\n")
	for i, l := range lines {
		lines[i] = pre + l
	}
	return strings.Join(lines, "\n") + "\n"
}

func ids(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s-%06d", prefix, i)
	}
	return out
}

// metricsCapture is a metrics exporter that keeps the total of every counter
// (over all label values) and the last value of every gauge, for tests to
// read the input's metrics as Benthos exports them.
type metricsCapture struct {
	mu       sync.Mutex
	counters map[string]*atomic.Int64
	gauges   map[string]int64
}

func newMetricsCapture() *metricsCapture {
	return &metricsCapture{counters: map[string]*atomic.Int64{}, gauges: map[string]int64{}}
}

// counter returns the total of counter name (0 before it was created).
func (m *metricsCapture) counter(name string) int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	if c, ok := m.counters[name]; ok {
		return c.Load()
	}
	return 0
}

// gauge returns the last value of gauge name, and whether it was ever set.
func (m *metricsCapture) gauge(name string) (int64, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	v, ok := m.gauges[name]
	return v, ok
}

type captureCounter struct{ v *atomic.Int64 }

func (c captureCounter) Incr(n int64) { c.v.Add(n) }

type captureGauge struct {
	m    *metricsCapture
	name string
}

func (g captureGauge) Set(v int64) {
	g.m.mu.Lock()
	g.m.gauges[g.name] = v
	g.m.mu.Unlock()
}

type nopTimer struct{}

func (nopTimer) Timing(int64) {}

func (m *metricsCapture) NewCounterCtor(name string, _ ...string) service.MetricsExporterCounterCtor {
	m.mu.Lock()
	c, ok := m.counters[name]
	if !ok {
		c = &atomic.Int64{}
		m.counters[name] = c
	}
	m.mu.Unlock()
	return func(...string) service.MetricsExporterCounter { return captureCounter{c} }
}

func (m *metricsCapture) NewTimerCtor(string, ...string) service.MetricsExporterTimerCtor {
	return func(...string) service.MetricsExporterTimer { return nopTimer{} }
}

func (m *metricsCapture) NewGaugeCtor(name string, _ ...string) service.MetricsExporterGaugeCtor {
	return func(...string) service.MetricsExporterGauge { return captureGauge{m: m, name: name} }
}

func (m *metricsCapture) Close(context.Context) error { return nil }
