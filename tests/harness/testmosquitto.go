package harness

import (
	"context"
	"os"
	"testing"
	"time"
)

// NewTestMosquitto starts a private Mosquitto for t (StartMosquitto, with
// opts.Dir defaulting to a fresh t.TempDir()) and closes it when t ends,
// logging the tail of its log if t failed. Without a mosquitto binary on
// PATH it skips t, except in CI (MQTT_TEST_URL set), where it fails t: the
// real-broker suites must not pass by skipping there.
func NewTestMosquitto(t testing.TB, opts MosquittoOptions) *Mosquitto {
	t.Helper()
	if !MosquittoAvailable() {
		if os.Getenv("MQTT_TEST_URL") != "" {
			t.Fatal("MQTT_TEST_URL is set (CI) but no mosquitto binary is on PATH")
		}
		t.Skip("no mosquitto binary on PATH")
	}
	if opts.Dir == "" {
		opts.Dir = t.TempDir()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	m, err := StartMosquitto(ctx, opts)
	if err != nil {
		t.Fatalf("starting mosquitto: %v", err)
	}
	t.Cleanup(func() {
		m.Close()
		if t.Failed() {
			t.Logf("mosquitto log (tail):\n%s", TailFile(m.LogPath(), 6000))
		}
	})
	return m
}
