package mqttconn

import (
	"math/rand/v2"
	"time"
)

// Reconnect back-off bounds of the mqtt input and output.
const (
	BackoffMin = 500 * time.Millisecond
	BackoffMax = 30 * time.Second
)

// Backoff is the reconnect policy the mqtt input and output share: the wait
// after a failed attempt starts at BackoffMin and doubles per consecutive
// failure up to BackoffMax, with ±20 % jitter so that a fleet does not
// reconnect in lockstep. The zero value is ready; it is not safe for
// concurrent use (the components call it under their Connect lock).
type Backoff struct {
	failures  int
	connected bool // a connection succeeded before
}

// Failed records a failed attempt and returns how long to wait before the next.
func (b *Backoff) Failed() time.Duration {
	b.failures++
	d := min(BackoffMin<<min(b.failures-1, 10), BackoffMax)
	return time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
}

// Succeeded records a connection and reports whether it is a reconnect (one
// succeeded before it).
func (b *Backoff) Succeeded() (reconnect bool) {
	b.failures = 0
	reconnect, b.connected = b.connected, true
	return reconnect
}
