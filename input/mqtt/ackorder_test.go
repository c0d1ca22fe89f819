package mqtt

import (
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// fakeMessage records the order in which Ack is called. Only Ack and
// MessageID are used by the releaser.
type fakeMessage struct {
	paho.Message
	id   uint16
	mu   *sync.Mutex
	acks *[]uint16
}

func (m *fakeMessage) MessageID() uint16 { return m.id }

func (m *fakeMessage) Ack() {
	m.mu.Lock()
	*m.acks = append(*m.acks, m.id)
	m.mu.Unlock()
}

func TestAckReleaserSendsInArrivalOrder(t *testing.T) {
	for _, tc := range []struct {
		name       string
		n          int
		concurrent bool
	}{
		{name: "sequential shuffled completions", n: 200},
		{name: "concurrent shuffled completions", n: 2000, concurrent: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var mu sync.Mutex
			var acks []uint16
			var sent atomic.Int64
			r := newAckReleaser(func(n int) { sent.Add(int64(n)) })
			msgs := make([]*tracked, tc.n)
			for i := range msgs {
				msgs[i] = r.track(&fakeMessage{id: uint16(i), mu: &mu, acks: &acks})
			}
			rand.Shuffle(len(msgs), func(i, j int) { msgs[i], msgs[j] = msgs[j], msgs[i] })
			if tc.concurrent {
				var wg sync.WaitGroup
				for _, m := range msgs {
					wg.Add(1)
					go func() {
						defer wg.Done()
						r.complete(m)
					}()
				}
				wg.Wait()
			} else {
				for _, m := range msgs {
					r.complete(m)
				}
			}
			if len(acks) != tc.n {
				t.Fatalf("%d acks sent, want %d", len(acks), tc.n)
			}
			for i, id := range acks {
				if int(id) != i {
					t.Fatalf("ack %d is for message %d: acks left arrival order", i, id)
				}
			}
			if r.waiting() != 0 {
				t.Fatalf("%d acks still held back", r.waiting())
			}
			if sent.Load() != int64(tc.n) {
				t.Fatalf("sent callback counted %d, want %d", sent.Load(), tc.n)
			}
		})
	}
}

func TestAckReleaserHoldsBackBehindAGap(t *testing.T) {
	var mu sync.Mutex
	var acks []uint16
	r := newAckReleaser(nil)
	a := r.track(&fakeMessage{id: 1, mu: &mu, acks: &acks})
	b := r.track(&fakeMessage{id: 2, mu: &mu, acks: &acks})
	c := r.track(&fakeMessage{id: 3, mu: &mu, acks: &acks})
	r.complete(c)
	r.complete(b)
	if len(acks) != 0 || r.waiting() != 2 {
		t.Fatalf("acks %v sent before the first message was acknowledged", acks)
	}
	r.complete(a)
	if len(acks) != 3 || acks[0] != 1 || acks[1] != 2 || acks[2] != 3 {
		t.Fatalf("acks = %v, want [1 2 3]", acks)
	}
}
