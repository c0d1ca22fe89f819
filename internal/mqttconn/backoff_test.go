package mqttconn

import (
	"testing"
	"time"
)

func TestBackoff(t *testing.T) {
	var b Backoff
	for i, base := range []time.Duration{500 * time.Millisecond, time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 16 * time.Second, BackoffMax, BackoffMax} {
		d := b.Failed()
		if lo, hi := time.Duration(0.8*float64(base)), time.Duration(1.2*float64(base)); d < lo || d > hi {
			t.Errorf("failure %d: waited %v, want %v ±20 %%", i+1, d, base)
		}
	}
	if b.Succeeded() {
		t.Error("the first connection counts as a reconnect")
	}
	if d := b.Failed(); d > time.Duration(1.2*float64(BackoffMin)) {
		t.Errorf("after a success the wait starts again at %v, got %v", BackoffMin, d)
	}
	if !b.Succeeded() {
		t.Error("the second connection is not a reconnect")
	}
}
