package ordering

import (
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestSequencerOrdersAcrossCalls(t *testing.T) {
	s := NewSequencer[string]()
	var got []int64
	done := make(chan struct{}, 10)
	mk := func(seq int64) Item[string] {
		return Item[string]{Seq: seq, Domain: "k", Job: Func(func() { got = append(got, seq); done <- struct{}{} })}
	}
	// Arrival order 3, 2, 4(skip), 1: admission restores 1, 2, 3.
	s.Submit(mk(3))
	s.Submit(mk(2))
	s.Skip(4)
	assert.Empty(t, got)
	s.Submit(mk(1))
	for range 3 {
		<-done
	}
	assert.Equal(t, []int64{1, 2, 3}, got)
	// A retried (old) stamp is admitted at once.
	s.Submit(mk(2))
	<-done
	s.Close()
}

// TestSequencerWorkers: at most maxBusyWorkers domains run at once, the
// others wait their turn and all run; finished workers park, and Close stops
// them.
func TestSequencerWorkers(t *testing.T) {
	before := runtime.NumGoroutine()
	s := NewSequencer[int]()
	release := make(chan struct{})
	var running, peak atomic.Int64
	var wg sync.WaitGroup
	const n = maxBusyWorkers + 40
	wg.Add(n)
	for i := range n {
		job := Func(func() {
			defer wg.Done()
			r := running.Add(1)
			for p := peak.Load(); r > p && !peak.CompareAndSwap(p, r); p = peak.Load() {
			}
			<-release
			running.Add(-1)
		})
		if i%2 == 0 {
			s.Submit(Item[int]{Domain: i, Job: job}) // unstamped: admitted at once
		} else {
			s.Go(job)
		}
	}
	require.Eventually(t, func() bool { return running.Load() == maxBusyWorkers }, 5*time.Second, time.Millisecond)
	time.Sleep(20 * time.Millisecond)
	assert.Equal(t, int64(maxBusyWorkers), peak.Load(), "domains run at once")
	close(release)
	wg.Wait()
	assert.Equal(t, int64(maxBusyWorkers), peak.Load(), "domains run at once")
	// Parked workers are kept for the next domains, then Close stops them.
	require.Eventually(t, func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return len(s.idle) == maxIdleWorkers && s.busy == 0
	}, 5*time.Second, time.Millisecond)
	s.Close()
	// Polled here, not with require.Eventually, whose own goroutines count.
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		t.Fatalf("workers left after Close: %d goroutines, %d before", n, before)
	}
}
