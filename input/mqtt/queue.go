package mqtt

import (
	"sync"
	"time"
)

// queue is the hand-off between paho's router goroutine (push) and ReadBatch
// (pop). QoS 1/2 messages are always accepted at once: their number is
// bounded by the broker's in-flight window, because each one holds a slot
// until we acknowledge it.
//
// QoS 0 has no window, so its back-pressure is the socket: when maxQoS0 QoS 0
// messages wait, push blocks paho's router until the pipeline takes one. paho
// then stops reading the connection, TCP flow control holds the flood in the
// MQTT broker (where MQTT puts QoS 0 loss), and nothing is read only to be
// dropped. The block is bounded: paho reads PINGRESP on the same goroutine
// chain, so a reader blocked for longer than the ping timeout (10 s) loses the
// connection. A push that waited maxBlock without the pipeline taking
// anything drops its message, and so does every QoS 0 push after it until the
// pipeline takes a message again (shedding); the caller counts the drops.
type queue struct {
	mu       sync.Mutex
	items    []queued
	head     int
	qos0     int
	maxQoS0  int
	maxBlock time.Duration
	shedding bool          // a QoS 0 push timed out and nothing was taken since
	notify   chan struct{} // capacity 1: "something was pushed"
	space    chan struct{} // capacity 1: "a QoS 0 message was taken"
}

// qos0MaxBlock bounds how long push holds paho's reader for one QoS 0
// message when the pipeline takes nothing: half of paho's 10 s ping timeout.
const qos0MaxBlock = 5 * time.Second

// queued is a received message and when it arrived (unix nanoseconds).
type queued struct {
	m  message
	at int64
}

func newQueue(maxQoS0 int) *queue {
	return &queue{maxQoS0: maxQoS0, maxBlock: qos0MaxBlock, notify: make(chan struct{}, 1), space: make(chan struct{}, 1)}
}

// push appends m. A QoS 0 message waits for room (see queue) until stop is
// closed or maxBlock passes without the pipeline taking anything; push
// reports false when it was dropped.
func (q *queue) push(m message, at int64, stop <-chan struct{}) bool {
	q.mu.Lock()
	if m.Qos() == 0 {
		var timer *time.Timer
		for q.qos0 >= q.maxQoS0 {
			if q.shedding {
				q.mu.Unlock()
				stopTimer(timer)
				return false
			}
			q.mu.Unlock()
			if timer == nil {
				timer = time.NewTimer(q.maxBlock)
			}
			select {
			case <-q.space:
			case <-stop:
				stopTimer(timer)
				return false
			case <-timer.C:
				q.mu.Lock()
				if q.qos0 >= q.maxQoS0 {
					q.shedding = true
					q.mu.Unlock()
					return false
				}
				q.mu.Unlock()
			}
			q.mu.Lock()
		}
		stopTimer(timer)
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
		q.shedding = false
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
