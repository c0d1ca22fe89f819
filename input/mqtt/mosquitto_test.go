package mqtt

import (
	"context"
	"testing"
	"time"

	"github.com/benthos-danube/benthos-danube/tests/harness"
)

// mosquittoBroker is a Mosquitto process of the test's own (never the shared
// broker of MQTT_TEST_URL, harness.StartMosquitto), on a free loopback port,
// with persistence in a temporary directory so sessions survive a graceful
// restart.
type mosquittoBroker struct {
	t testing.TB
	*harness.Mosquitto
}

// newMosquitto starts Mosquitto (harness.NewTestMosquitto: skipped without a
// mosquitto binary, except in CI).
func newMosquitto(t testing.TB) *mosquittoBroker {
	t.Helper()
	return &mosquittoBroker{t: t, Mosquitto: harness.NewTestMosquitto(t, harness.MosquittoOptions{MaxInflight: 20})}
}

func (b *mosquittoBroker) url() string { return b.URL() }

// start runs the stopped Mosquitto again and waits until it accepts
// connections.
func (b *mosquittoBroker) start() {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := b.Start(ctx); err != nil {
		b.t.Fatal(err)
	}
}

// stop shuts Mosquitto down gracefully (SIGTERM: it saves its persistence
// file) and waits for the process to exit.
func (b *mosquittoBroker) stop() {
	if !b.Stop(15 * time.Second) {
		b.t.Errorf("mosquitto did not exit within 15s of SIGTERM; killed")
	}
}

func (b *mosquittoBroker) logText() string { return harness.TailFile(b.LogPath(), 1<<20) }

// TestBrokerRestartMosquitto restarts a real Mosquitto (persistence on, a
// graceful SIGTERM) mid-stream while a persistent-session QoS 1 publisher
// publishes 3000 messages and the bridge consumes them with a persistent
// session: the input reconnects, resubscribes and nothing is missing.
func TestBrokerRestartMosquitto(t *testing.T) {
	for _, protocol := range []string{protocol311, protocol5} {
		t.Run("mqtt"+protocol, func(t *testing.T) { testBrokerRestartMosquitto(t, protocol) })
	}
}

func testBrokerRestartMosquitto(t *testing.T, protocol string) {
	b := newMosquitto(t)
	const n = 3000
	_, ts, rec, all, done := startRestartLoad(t, b.url(), n, protocol)
	b.stop()
	atStop := rec.unique()
	b.start()
	select {
	case <-done:
	case <-time.After(40 * time.Second):
		t.Fatalf("publishing not finished 40s after the restart (%d of %d received); mosquitto log:\n%s", rec.unique(), n, b.logText())
	}
	deadline := time.Now().Add(15 * time.Second)
	for rec.unique() < n && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if missing, s := rec.missing(all); missing > 0 {
		t.Fatalf("%d missing after the Mosquitto restart (%d received before it): %v; reconnects %d; mosquitto log:\n%s",
			missing, atStop, s, ts.metrics.counter(metricReconnects), b.logText())
	}
	if r := ts.metrics.counter(metricReconnects); r < 1 {
		t.Errorf("reconnects = %d, want >= 1", r)
	}
	t.Logf("restart after %d unique; %d delivered, %d duplicates, %d reconnects", atStop, rec.total, rec.duplicates(), ts.metrics.counter(metricReconnects))
}
