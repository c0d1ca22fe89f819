// Package ordering restores pipeline order across the concurrent
// WriteBatch calls of a Benthos output.
//
// Benthos runs max_in_flight writer goroutines that race each other, so the
// order in which WriteBatch is entered is not the order in which the pipeline
// emitted the messages. An output that must keep an order appends a stamping
// batch processor to its batching policy (BatchPolicy, stamp.go): Benthos
// runs batch processors in the output's single batching goroutine, so the
// stamp is the pipeline order. WriteBatch then reports every stamped message
// to a Sequencer, which admits them strictly in stamp order into one FIFO
// queue per domain (a Danube producer and key, an MQTT connection), each run
// one at a time on a worker goroutine; finished workers park for the next
// domain, and at most maxBusyWorkers domains run at once. The danube and
// mqtt outputs use it.
package ordering

import (
	"sync"
	"time"
)

// gapTimeout bounds how long admission waits for a missing sequence number.
// Gaps normally last microseconds (the time between Benthos handing a batch to
// a writer goroutine and that goroutine entering WriteBatch); the timeout only
// protects against a stamped batch that never reaches WriteBatch.
const gapTimeout = 2 * time.Second

// Job is the work of one message, run on its domain's goroutine.
type Job interface{ Run() }

// Func is a Job that calls itself.
type Func func()

// Run calls f.
func (f Func) Run() { f() }

// Item is one message waiting for its turn. D identifies a domain: items of
// a domain run one at a time, in admission order. A comparable struct works
// as well as a string and needs no concatenation per message.
type Item[D comparable] struct {
	Seq    int64 // pipeline order stamp; 0 = unstamped (admitted at once)
	Domain D
	Job    Job
}

type domainQueue[D comparable] struct {
	name      D
	anonymous bool // Go's queue: not in the domains map
	q         []Item[D]
}

// maxIdleWorkers bounds the worker goroutines kept parked for the next
// domain. A goroutine started per domain activation (one per message when
// keys rarely repeat within a batch) grows its stack anew for every gRPC
// call: runtime.copystack and newstack were about 10 % of the output
// benchmark's CPU. Parked workers keep theirs. Past the bound a finished
// worker exits, and a new one is started when none is idle, so concurrency
// is never capped: one slow domain never holds up another.
const maxIdleWorkers = 128

// maxBusyWorkers bounds the domains run at once; the others wait their turn
// in arrival order. Thousands of keys in a batch (a fleet of devices, natural
// batches of 256 under max_in_flight 64) would otherwise have thousands of
// sends in flight on one connection, far more than a broker serves any
// faster. It is well above the concurrency a broker rewards, so a few slow
// domains do not hold up the others.
const maxBusyWorkers = 256

// arrival is a reported stamp waiting for admission: an item, or a skip.
type arrival[D comparable] struct {
	it      Item[D]
	skipped bool
}

// Sequencer restores pipeline order across concurrent WriteBatch calls.
//
// Every stamped message is reported exactly once per WriteBatch call, either
// with Submit (messages to order) or Skip (everything else). Admission happens
// strictly in stamp order: a message is admitted once every smaller stamp has
// been reported. Admitted messages join the FIFO queue of their domain, whose
// worker goroutine runs them one after the other. Domains are independent and
// run concurrently.
type Sequencer[D comparable] struct {
	mu      sync.Mutex
	next    int64                // smallest stamp not yet reported
	arrived map[int64]arrival[D] // reported stamps >= next
	domains map[D]*domainQueue[D]
	gapNext int64
	timer   *time.Timer
	closed  bool
	idle    []chan *domainQueue[D] // parked workers, each on its own channel
	busy    int                    // workers running a domain
	ready   []*domainQueue[D]      // domains waiting for a worker (busy at maxBusyWorkers)
}

// NewSequencer returns a Sequencer expecting stamp 1 first.
func NewSequencer[D comparable]() *Sequencer[D] {
	return &Sequencer[D]{next: 1, arrived: map[int64]arrival[D]{}, domains: map[D]*domainQueue[D]{}}
}

// Submit reports a message to order. Its Job runs exactly once, on the
// domain's goroutine.
func (s *Sequencer[D]) Submit(it Item[D]) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, dup := s.arrived[it.Seq]; it.Seq <= 0 || it.Seq < s.next || dup {
		// Unstamped, or written again (Benthos retries a batch after
		// ErrNotConnected with the same stamps): no predecessor to wait for.
		s.admit(it)
		return
	}
	s.arrived[it.Seq] = arrival[D]{it: it}
	s.drain()
}

// Skip reports a stamp that needs no ordering (no key, or failed early).
func (s *Sequencer[D]) Skip(seq int64) {
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
	s.arrived[seq] = arrival[D]{skipped: true}
	s.drain()
}

// drain admits everything contiguous from next. Called with mu held.
func (s *Sequencer[D]) drain() {
	for {
		a, ok := s.arrived[s.next]
		if !ok {
			break
		}
		delete(s.arrived, s.next)
		s.next++
		if !a.skipped {
			s.admit(a.it)
		}
	}
	if len(s.arrived) > 0 && !s.closed && (s.timer == nil || s.gapNext != s.next) {
		s.armGapTimer()
	}
}

// armGapTimer (re)starts the gap timer for the current gap. Called with mu held.
func (s *Sequencer[D]) armGapTimer() {
	s.gapNext = s.next
	if s.timer != nil {
		s.timer.Stop()
	}
	gap := s.next
	s.timer = time.AfterFunc(gapTimeout, func() { s.gapExpired(gap) })
}

// gapExpired skips a gap that persisted for gapTimeout.
func (s *Sequencer[D]) gapExpired(gap int64) {
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

// admit appends it to its domain queue, handing the domain to a worker if
// it was idle. Called with mu held.
func (s *Sequencer[D]) admit(it Item[D]) {
	d, ok := s.domains[it.Domain]
	if ok {
		d.q = append(d.q, it)
		return
	}
	d = &domainQueue[D]{name: it.Domain, q: []Item[D]{it}}
	s.domains[it.Domain] = d
	s.startLocked(d)
}

// Go runs j on one of the sequencer's workers, unordered: for the messages
// that need no order, so that they too run on a worker with a grown stack.
func (s *Sequencer[D]) Go(j Job) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.startLocked(&domainQueue[D]{anonymous: true, q: []Item[D]{{Job: j}}})
}

// startLocked hands d to a parked worker, or to a new one when none is
// idle, or queues it when maxBusyWorkers already run. Called with mu held.
func (s *Sequencer[D]) startLocked(d *domainQueue[D]) {
	if s.busy >= maxBusyWorkers {
		s.ready = append(s.ready, d)
		return
	}
	s.busy++
	if n := len(s.idle); n > 0 {
		w := s.idle[n-1]
		s.idle[n-1] = nil
		s.idle = s.idle[:n-1]
		w <- d // capacity 1, and the worker is parked on it: never blocks
		return
	}
	go s.work(d)
}

// work runs domain queues until none is handed to it or the sequencer is
// closed.
func (s *Sequencer[D]) work(d *domainQueue[D]) {
	var wake chan *domainQueue[D]
	for {
		for {
			s.mu.Lock()
			if len(d.q) == 0 {
				break // still locked
			}
			it := d.q[0]
			d.q[0] = Item[D]{}
			d.q = d.q[1:]
			s.mu.Unlock()
			it.Job.Run()
		}
		if !d.anonymous {
			delete(s.domains, d.name)
		}
		if len(s.ready) > 0 {
			d = s.ready[0]
			s.ready[0] = nil
			s.ready = s.ready[1:]
			s.mu.Unlock()
			continue
		}
		s.busy--
		if s.closed || len(s.idle) >= maxIdleWorkers {
			s.mu.Unlock()
			return
		}
		if wake == nil {
			wake = make(chan *domainQueue[D], 1)
		}
		s.idle = append(s.idle, wake)
		s.mu.Unlock()
		var ok bool
		if d, ok = <-wake; !ok {
			return
		}
	}
}

// Close stops the gap timer and the parked workers, and admits every
// waiting item so that their WriteBatch calls return (their contexts are
// cancelled by then); the workers that run them exit when done.
func (s *Sequencer[D]) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	if s.timer != nil {
		s.timer.Stop()
		s.timer = nil
	}
	for _, w := range s.idle {
		close(w) // parked workers exit
	}
	s.idle = nil
	for k, a := range s.arrived {
		delete(s.arrived, k)
		if !a.skipped {
			s.admit(a.it)
		}
	}
}
