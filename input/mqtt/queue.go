package mqtt

import (
	"sync"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// queue is the hand-off between paho's router goroutine (push, which must
// never block) and Read (pop). QoS 1/2 messages are always accepted: their
// number is bounded by the broker's in-flight window, because each one holds
// a slot until we acknowledge it. QoS 0 messages are accepted only while
// fewer than maxQoS0 of them are waiting; the caller counts the drops.
type queue struct {
	mu      sync.Mutex
	items   []queued
	head    int
	qos0    int
	maxQoS0 int
	notify  chan struct{} // capacity 1: "something was pushed"
}

// queued is a received message and when it arrived (unix nanoseconds).
type queued struct {
	m  paho.Message
	at int64
}

func newQueue(maxQoS0 int) *queue {
	return &queue{maxQoS0: maxQoS0, notify: make(chan struct{}, 1)}
}

// push appends m and reports false when a QoS 0 message was dropped because
// the QoS 0 bound was reached.
func (q *queue) push(m paho.Message, at int64) bool {
	q.mu.Lock()
	if m.Qos() == 0 {
		if q.qos0 >= q.maxQoS0 {
			q.mu.Unlock()
			return false
		}
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
