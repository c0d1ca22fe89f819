package mqtt

import (
	"sync"
	"time"
)

// queue is the hand-off between paho's router goroutine (push) and ReadBatch
// (pop). It holds at most limit messages; a push into a full queue waits
// until the pipeline has taken half of them. paho then stops reading the connection, TCP
// flow control holds the flood in the MQTT broker, and nothing is read only
// to wait in memory. Without this bound a flood at QoS 1 fills the queue
// too: the broker's in-flight window does not hold once acknowledgements
// flow (Mosquitto 2.0 kept more than 400,000 QoS 1 messages in flight to a
// bridge that acknowledged slower than they arrived; see
// TestQueueBoundsAFloodAtQoS1), and the garbage collector then scans all of
// them over and over.
//
// The wait is bounded: paho reads PINGRESP on the same goroutine chain, so a
// reader held for longer than the ping timeout (10 s) loses the connection.
// When a push waited maxBlock without the pipeline taking anything, the
// pipeline is stalled, and until it takes a message again no push waits:
//   - a QoS 0 message is dropped (shed); the caller counts the drops. MQTT
//     puts QoS 0 loss in the broker; this is the last resort.
//   - a QoS 1/2 message is kept over the bound. It is never dropped: its
//     acknowledgement is withheld, so a stalled pipeline also stops the
//     broker's window, and keep-alive pings go on.
type queue struct {
	mu       sync.Mutex
	items    []queued
	head     int
	qos0     int
	limit    int
	maxBlock time.Duration
	lowWater int           // a waiting push is woken once the queue drained to this
	pops     uint64        // messages taken so far: progress, for the stall check
	stalled  bool          // a push timed out and nothing was taken since
	waiting  int           // pushes waiting for room
	notify   chan struct{} // capacity 1: "something was pushed"
	space    chan struct{} // capacity 1: "a message was taken"
}

// qos0MaxBlock bounds how long push holds paho's reader for one message when
// the pipeline takes nothing: half of paho's 10 s ping timeout.
const qos0MaxBlock = 5 * time.Second

// maxBlockFor is the queue's bound on holding the reader for cfg's
// connection. paho.mqtt.golang (MQTT 3.1.1) waits 10 s for a PINGRESP;
// paho.golang (MQTT 5) waits one keep-alive interval, so a short keepalive
// gets a shorter pause there: half of it.
func maxBlockFor(cfg *config) time.Duration {
	if cfg.protocol == protocol5 && cfg.keepalive > 0 {
		return min(qos0MaxBlock, cfg.keepalive/2)
	}
	return qos0MaxBlock
}

// queued is a received message and when it arrived (unix nanoseconds).
type queued struct {
	m  message
	at int64
}

func newQueue(limit int, maxBlock time.Duration) *queue {
	limit = max(1, limit)
	return &queue{limit: limit, lowWater: limit / 2, maxBlock: maxBlock, notify: make(chan struct{}, 1), space: make(chan struct{}, 1)}
}

// push appends m, first waiting for room (see queue) until stop is closed
// or maxBlock passes without the pipeline taking anything. It reports false
// when m was not queued: a QoS 0 message shed, or any message when stop was
// closed (the connection is gone; a QoS 1/2 message is then redelivered by
// the session).
func (q *queue) push(m message, at int64, stop <-chan struct{}) bool {
	q.mu.Lock()
	qos0 := m.Qos() == 0
	var timer *time.Timer
	var pops0 uint64 // q.pops when the wait began or last made progress
	for len(q.items)-q.head >= q.limit {
		if q.stalled {
			if qos0 {
				q.mu.Unlock()
				stopTimer(timer)
				return false
			}
			break
		}
		if timer == nil {
			timer = time.NewTimer(q.maxBlock)
			pops0 = q.pops
		}
		q.waiting++
		q.mu.Unlock()
		var timedOut bool
		select {
		case <-q.space:
		case <-stop:
			q.mu.Lock()
			q.waiting--
			q.mu.Unlock()
			stopTimer(timer)
			return false
		case <-timer.C:
			timedOut = true
		}
		q.mu.Lock()
		q.waiting--
		if !timedOut || len(q.items)-q.head < q.limit {
			continue
		}
		if q.pops != pops0 {
			// Taken from, just not down to the low-water mark yet: not
			// a stall.
			pops0 = q.pops
			timer.Reset(q.maxBlock)
			continue
		}
		q.stalled = true
		if qos0 {
			q.mu.Unlock()
			return false
		}
		break
	}
	stopTimer(timer)
	if qos0 {
		q.qos0++
	}
	q.items = append(q.items, queued{m: m, at: at})
	q.mu.Unlock()
	select {
	case q.notify <- struct{}{}:
	default:
	}
	return true
}

// pop removes the oldest message, if any.
func (q *queue) pop() (queued, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.head == len(q.items) {
		return queued{}, false
	}
	m := q.items[q.head]
	q.items[q.head] = queued{}
	q.head++
	switch {
	case q.head == len(q.items):
		q.items, q.head = q.items[:0], 0
	case q.head >= 1024 && q.head*2 >= len(q.items):
		n := copy(q.items, q.items[q.head:])
		clear(q.items[n:])
		q.items, q.head = q.items[:n], 0
	}
	if m.m.Qos() == 0 {
		q.qos0--
	}
	q.stalled = false
	q.pops++
	// Wake a waiting push only once the queue drained to the low-water
	// mark: it then pushes a run of messages without waiting, instead of
	// being woken for every message taken.
	if q.waiting > 0 && len(q.items)-q.head <= q.lowWater {
		select {
		case q.space <- struct{}{}:
		default:
		}
	}
	return m, true
}

// oldest returns the arrival time of the oldest waiting message.
func (q *queue) oldest() (int64, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.head == len(q.items) {
		return 0, false
	}
	return q.items[q.head].at, true
}

// len returns the number of waiting messages.
func (q *queue) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.items) - q.head
}
