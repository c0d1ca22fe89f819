package danubeout

import (
	"sync"
	"time"
)

// gapTimeout bounds how long admission waits for a missing sequence number.
// Gaps normally last microseconds (the time between Benthos handing a batch to
// a writer goroutine and that goroutine entering WriteBatch); the timeout only
// protects against a stamped batch that never reaches WriteBatch.
const gapTimeout = 2 * time.Second

// seqItem is one keyed message waiting for its turn.
type seqItem struct {
	seq    int64  // pipeline order stamp; 0 = unstamped (admitted at once)
	domain string // producer + routing key: items of a domain run one at a time
	run    func()
}

type domainQueue struct {
	q []*seqItem
}

// sequencer restores pipeline order across concurrent WriteBatch calls.
//
// Every stamped message is reported exactly once per WriteBatch call, either
// with submit (keyed messages) or skip (everything else). Admission happens
// strictly in stamp order: a message is admitted once every smaller stamp has
// been reported. Admitted messages join the FIFO queue of their domain, whose
// worker goroutine runs them one after the other. Domains are independent and
// run concurrently.
type sequencer struct {
	mu      sync.Mutex
	next    int64              // smallest stamp not yet reported
	arrived map[int64]*seqItem // reported stamps >= next; nil value = skipped
	domains map[string]*domainQueue
	gapNext int64
	timer   *time.Timer
	closed  bool
}

func newSequencer() *sequencer {
	return &sequencer{next: 1, arrived: map[int64]*seqItem{}, domains: map[string]*domainQueue{}}
}

// submit reports a keyed message. Its run func is called exactly once.
func (s *sequencer) submit(it *seqItem) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, dup := s.arrived[it.seq]; it.seq <= 0 || it.seq < s.next || dup {
		// Unstamped, or written again (Benthos retries a batch after
		// ErrNotConnected with the same stamps): no predecessor to wait for.
		s.admit(it)
		return
	}
	s.arrived[it.seq] = it
	s.drain()
}

// skip reports a stamp that needs no ordering (no key, or failed early).
func (s *sequencer) skip(seq int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if seq < s.next {
		return
	}
	if seq == s.next && len(s.arrived) == 0 {
		s.next++ // fast path: in order, nothing waiting
		return
	}
	if _, dup := s.arrived[seq]; dup {
		return
	}
	s.arrived[seq] = nil
	s.drain()
}

// drain admits everything contiguous from next. Called with mu held.
func (s *sequencer) drain() {
	for {
		it, ok := s.arrived[s.next]
		if !ok {
			break
		}
		delete(s.arrived, s.next)
		s.next++
		if it != nil {
			s.admit(it)
		}
	}
	if len(s.arrived) > 0 && !s.closed && (s.timer == nil || s.gapNext != s.next) {
		s.armGapTimer()
	}
}

// armGapTimer (re)starts the gap timer for the current gap. Called with mu held.
func (s *sequencer) armGapTimer() {
	s.gapNext = s.next
	if s.timer != nil {
		s.timer.Stop()
	}
	gap := s.next
	s.timer = time.AfterFunc(gapTimeout, func() { s.gapExpired(gap) })
}

// gapExpired skips a gap that persisted for gapTimeout.
func (s *sequencer) gapExpired(gap int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.timer = nil
	if s.closed || len(s.arrived) == 0 {
		return
	}
	if s.next == gap {
		lowest := int64(-1)
		for k := range s.arrived {
			if lowest < 0 || k < lowest {
				lowest = k
			}
		}
		s.next = lowest
	}
	s.drain()
}

// admit appends it to its domain queue, starting the domain worker if idle.
// Called with mu held.
func (s *sequencer) admit(it *seqItem) {
	d, ok := s.domains[it.domain]
	if ok {
		d.q = append(d.q, it)
		return
	}
	d = &domainQueue{q: []*seqItem{it}}
	s.domains[it.domain] = d
	go s.runDomain(it.domain, d)
}

func (s *sequencer) runDomain(name string, d *domainQueue) {
	for {
		s.mu.Lock()
		if len(d.q) == 0 {
			delete(s.domains, name)
			s.mu.Unlock()
			return
		}
		it := d.q[0]
		d.q[0] = nil
		d.q = d.q[1:]
		s.mu.Unlock()
		it.run()
	}
}

// close stops the gap timer and admits every waiting item so that their
// WriteBatch calls return (their contexts are cancelled by then).
func (s *sequencer) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	if s.timer != nil {
		s.timer.Stop()
		s.timer = nil
	}
	for k, it := range s.arrived {
		delete(s.arrived, k)
		if it != nil {
			s.admit(it)
		}
	}
}
