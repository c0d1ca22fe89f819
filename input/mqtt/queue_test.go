package mqtt

import (
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// qos0Msg is a QoS 0 paho message for queue tests.
type qos0Msg struct {
	paho.Message
	qos byte
}

func (m qos0Msg) Qos() byte { return m.qos }

// TestQueueQoS0BackPressure: a full queue holds a QoS 0 push until the
// pipeline takes a message; when it takes none for maxBlock the push drops
// its message and later pushes drop at once (shedding) until one is taken.
// QoS 1 pushes are never held.
func TestQueueQoS0BackPressure(t *testing.T) {
	q := newQueue(2)
	q.maxBlock = 200 * time.Millisecond
	stop := make(chan struct{})
	for range 2 {
		if !q.push(qos0Msg{}, 0, stop) {
			t.Fatal("push into a queue with room failed")
		}
	}
	// Held until a pop makes room.
	done := make(chan bool)
	go func() { done <- q.push(qos0Msg{}, 0, stop) }()
	select {
	case <-done:
		t.Fatal("push into a full queue did not wait")
	case <-time.After(50 * time.Millisecond):
	}
	if _, ok := q.pop(); !ok {
		t.Fatal("pop")
	}
	select {
	case ok := <-done:
		if !ok {
			t.Fatal("the held push dropped its message although room was made")
		}
	case <-time.After(time.Second):
		t.Fatal("the held push was not released by the pop")
	}
	// QoS 1 is never held.
	start := time.Now()
	if !q.push(qos0Msg{qos: 1}, 0, stop) || time.Since(start) > 50*time.Millisecond {
		t.Fatal("a QoS 1 push was held or dropped")
	}
	// Nothing taken for maxBlock: drop, then shed at once.
	start = time.Now()
	if q.push(qos0Msg{}, 0, stop) {
		t.Fatal("push into a stalled full queue kept its message")
	}
	if d := time.Since(start); d < q.maxBlock {
		t.Fatalf("dropped after %v, before maxBlock", d)
	}
	start = time.Now()
	if q.push(qos0Msg{}, 0, stop) || time.Since(start) > 50*time.Millisecond {
		t.Fatal("shedding push waited or kept its message")
	}
	// A pop of a QoS 0 message ends shedding.
	for {
		e, ok := q.pop()
		if !ok {
			t.Fatal("no QoS 0 message to pop")
		}
		if e.m.Qos() == 0 {
			break
		}
	}
	if !q.push(qos0Msg{}, 0, stop) {
		t.Fatal("push after the pipeline took a message dropped it")
	}
	// stop releases a held push.
	go func() { done <- q.push(qos0Msg{}, 0, stop) }()
	time.Sleep(20 * time.Millisecond)
	close(stop)
	select {
	case ok := <-done:
		if ok {
			t.Fatal("a push released by stop kept its message")
		}
	case <-time.After(time.Second):
		t.Fatal("stop did not release the held push")
	}
}
