package mqtt

import (
	"sync"
)

// tracked is a QoS 1/2 message whose broker acknowledgement goes through
// the ackReleaser of the connection it arrived on.
type tracked struct {
	message
	rel *ackReleaser
	seq uint64
}

// ackReleaser sends the PUBACKs/PUBRECs of one connection in the order the
// messages arrived on it, as MQTT 3.1.1 [MQTT-4.6.0-2] requires. Mosquitto
// relies on it: acknowledged out of order, it delivers later messages of a
// topic before earlier ones. A message acknowledged by the pipeline waits here
// until every earlier message of the connection was acknowledged too; their
// number is bounded by the broker's in-flight window.
//
// The releaser of a lost connection is simply abandoned: paho drops
// acknowledgements for an earlier connection, and a persistent session
// redelivers those messages.
type ackReleaser struct {
	mu      sync.Mutex
	nextIn  uint64             // sequence number of the next arrival
	nextOut uint64             // sequence number of the next ack to send
	done    map[uint64]message // acknowledged by the pipeline, waiting
	sent    func(n int)        // called with the number of acks sent
}

func newAckReleaser(sent func(n int)) *ackReleaser {
	return &ackReleaser{done: map[uint64]message{}, sent: sent}
}

// track wraps a message in arrival order. It must be called from the
// connection's router goroutine, which delivers messages in arrival order.
func (r *ackReleaser) track(m message) *tracked {
	r.mu.Lock()
	seq := r.nextIn
	r.nextIn++
	r.mu.Unlock()
	return &tracked{message: m, rel: r, seq: seq}
}

// complete records that the pipeline acknowledged m and sends every
// acknowledgement that is now in order.
func (r *ackReleaser) complete(m *tracked) {
	r.mu.Lock()
	if m.seq == r.nextOut && len(r.done) == 0 {
		// The common case: nothing is held back and m is next.
		r.nextOut++
		m.message.Ack()
		r.mu.Unlock()
		if r.sent != nil {
			r.sent(1)
		}
		return
	}
	r.done[m.seq] = m.message
	var ready []message
	for {
		next, ok := r.done[r.nextOut]
		if !ok {
			break
		}
		delete(r.done, r.nextOut)
		r.nextOut++
		ready = append(ready, next)
	}
	// Ack under the lock so that concurrent completions cannot overtake
	// each other between the decision and the write to paho's queue.
	for _, p := range ready {
		p.Ack()
	}
	r.mu.Unlock()
	if len(ready) > 0 && r.sent != nil {
		r.sent(len(ready))
	}
}

// waiting returns the number of acknowledgements held back.
func (r *ackReleaser) waiting() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.done)
}
