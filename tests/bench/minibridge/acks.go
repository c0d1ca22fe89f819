package main

import "sync"

// acker is what ackQueue releases: a paho.Message in the bridge.
type acker interface{ Ack() }

// ackQueue sends the acknowledgements of one MQTT connection in the order
// the messages arrived on it, as MQTT 3.1.1 [MQTT-4.6.0-2] requires, whatever
// the order their Danube sends finish in. Arrivals are numbered by add (from
// paho's router goroutine, which sees them in arrival order); done marks one
// finished and acknowledges the longest finished prefix.
//
// The pending arrivals sit in a slice from head on: no map and no allocation
// per message once the slice has grown to the in-flight window.
type ackQueue struct {
	mu   sync.Mutex
	base uint64 // arrival number of pend[head]
	head int
	pend []pendingAck
}

type pendingAck struct {
	a    acker
	done bool
}

// add numbers the next arrival.
func (q *ackQueue) add(a acker) uint64 {
	q.mu.Lock()
	n := q.base + uint64(len(q.pend)-q.head)
	q.pend = append(q.pend, pendingAck{a: a})
	q.mu.Unlock()
	return n
}

// done records that arrival n was delivered and acknowledges every arrival
// that is now in order. The acks are sent under the lock so that two
// completions cannot overtake each other on their way to paho.
func (q *ackQueue) done(n uint64) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.pend[q.head+int(n-q.base)].done = true
	for q.head < len(q.pend) && q.pend[q.head].done {
		q.pend[q.head].a.Ack()
		q.pend[q.head] = pendingAck{}
		q.head++
		q.base++
	}
	switch {
	case q.head == len(q.pend):
		q.pend, q.head = q.pend[:0], 0
	case q.head >= 256 && 2*q.head >= len(q.pend):
		k := copy(q.pend, q.pend[q.head:])
		clear(q.pend[k:])
		q.pend, q.head = q.pend[:k], 0
	}
}

// waiting is the number of arrivals not acknowledged yet.
func (q *ackQueue) waiting() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.pend) - q.head
}
