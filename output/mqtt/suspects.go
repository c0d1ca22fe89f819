package mqttout

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/benthos-danube/benthos-danube/internal/deadletter"
)

// An MQTT 3.1.1 broker that refuses a PUBLISH can only drop it or close the
// connection. mochi closes the connection of a 3.1.1 client whose QoS 1/2
// publish its ACL denies, HiveMQ does the same, EMQX can be configured to,
// and Mosquitto closes it for a packet over max_packet_size. Retried as a
// transient failure, such a message would close every new connection and
// take the messages in flight with it, for ever.
//
// So every message that was in flight when a connection was lost becomes a
// suspect. A suspect is published in isolation: once nothing else is in
// flight on the connection, alone, and nothing after it is published until
// it was acknowledged, the connection was lost, or write_timeout passed. A
// suspect acknowledged is cleared. A suspect whose connection is lost while
// it is published alone gets a strike; after isolatedStrikes strikes it is
// refused: dead-lettered with reason `rejected`. An unrelated outage (a
// broker restart) costs the messages in flight one isolated publish each.

const (
	// isolatedStrikes is how many lost connections, each while the message
	// was published alone, make it a refusal.
	isolatedStrikes = 2
	// maxSuspects bounds the suspect set; beyond it the oldest entries are
	// forgotten (they are then published normally).
	maxSuspects = 100_000
	// idlePoll is how often an isolated publish checks that nothing else is
	// in flight.
	idlePoll = time.Millisecond
)

// suspectKey identifies a message: its topic and the digest of its payload.
func suspectKey(p publication) string {
	return p.topic + "\x00" + deadletter.Digest(p.payload)
}

// suspects is the set of suspect messages with their strikes.
type suspects struct {
	n     atomic.Int64 // len(m), read without mu
	mu    sync.Mutex
	m     map[string]int
	order []string // insertion order, for the bound
}

func newSuspects() *suspects { return &suspects{m: map[string]int{}} }

// any reports whether there is a suspect at all (cheap: no key needed).
func (s *suspects) any() bool { return s.n.Load() > 0 }

// add makes key a suspect (keeping its strikes if it is one).
func (s *suspects) add(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.m[key]; ok {
		return
	}
	for len(s.m) >= maxSuspects && len(s.order) > 0 {
		delete(s.m, s.order[0]) // a no-op for a key already cleared
		s.order = s.order[1:]
	}
	if len(s.order) > 2*len(s.m)+1024 {
		// Drop the cleared keys from the insertion order.
		kept := s.order[:0]
		for _, k := range s.order {
			if _, ok := s.m[k]; ok {
				kept = append(kept, k)
			}
		}
		s.order = kept
	}
	s.m[key] = 0
	s.order = append(s.order, key)
	s.n.Store(int64(len(s.m)))
}

// strikes returns key's strikes, and whether it is a suspect.
func (s *suspects) strikes(key string) (int, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n, ok := s.m[key]
	return n, ok
}

// strike adds a strike to key.
func (s *suspects) strike(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.m[key]; ok {
		s.m[key]++
	}
}

// clear forgets key (acknowledged, or dead-lettered).
func (s *suspects) clear(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.m[key]; !ok {
		return
	}
	delete(s.m, key)
	s.n.Store(int64(len(s.m)))
}

// publishAlone publishes a suspect once nothing else is in flight on the
// connection and waits for its outcome, so that nothing after it is
// published meanwhile (it runs on the sequencer's goroutine). A connection
// lost while it was alone is a strike (suspects.go).
func (o *output) publishAlone(ctx context.Context, lc *live, p *pending) {
	t := lc.t
	deadline := time.NewTimer(o.writeTimeout)
	defer deadline.Stop()
	tick := time.NewTicker(idlePoll)
	defer tick.Stop()
	for lc.inflight.Load() > 0 {
		select {
		case <-t.lost():
			p.err = errConnLost // not alone yet: no strike
			return
		case <-ctx.Done():
			p.err = fmt.Errorf("publishing to %q: %w", p.pub.topic, ctx.Err())
			return
		case <-deadline.C:
			p.err = o.timeoutErr(p)
			return
		case <-tick.C:
		}
	}
	select {
	case <-t.lost():
		p.err = errNotSent // lost before its turn: no strike
		return
	default:
	}
	del := t.publish(p.pub)
	// A strike: the connection was lost after this message, alone, was
	// written (not when it was never sent).
	struck := func() bool { return isConnErr(p.err) && !errors.Is(p.err, errNotSent) }
	select {
	case <-del.Done():
		p.err = del.Error()
		if struck() {
			o.sus.strike(p.key)
		}
	case <-t.lost():
		select {
		case <-del.Done():
			p.err = del.Error()
		default:
			p.err = errConnLost
		}
		if struck() {
			o.sus.strike(p.key)
		}
	case <-ctx.Done():
		p.err = fmt.Errorf("publishing to %q: %w", p.pub.topic, ctx.Err())
	case <-deadline.C:
		p.err = o.timeoutErr(p)
	}
}
