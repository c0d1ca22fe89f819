package harness

import (
	"context"
	"sort"
	"sync"
	"time"
)

// IndexClock follows one Danube topic's log through a wait function (such as
// danubetest.Server.WaitForMessages) and records when each log index was
// first seen, so that per-message arrival times can be computed afterwards.
type IndexClock struct {
	mu    sync.Mutex
	upTo  []int       // counts observed, increasing
	times []time.Time // when each count was observed
}

// Follow records arrivals until ctx is done. wait blocks until the log holds
// at least n messages; count returns the current length.
func (c *IndexClock) Follow(ctx context.Context, wait func(ctx context.Context, n int) error, count func() int) {
	have := count()
	for {
		if err := wait(ctx, have+1); err != nil {
			return
		}
		now := time.Now()
		n := count()
		c.mu.Lock()
		c.upTo = append(c.upTo, n)
		c.times = append(c.times, now)
		c.mu.Unlock()
		have = n
	}
}

// At returns when log index i (0-based) was first seen.
func (c *IndexClock) At(i int) (time.Time, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	k := sort.Search(len(c.upTo), func(k int) bool { return c.upTo[k] > i })
	if k == len(c.upTo) {
		return time.Time{}, false
	}
	return c.times[k], true
}

// Window returns the first and last observation times and the last count.
func (c *IndexClock) Window() (first, last time.Time, n int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.times) == 0 {
		return time.Time{}, time.Time{}, 0
	}
	return c.times[0], c.times[len(c.times)-1], c.upTo[len(c.upTo)-1]
}

// Reset forgets the observations.
func (c *IndexClock) Reset() {
	c.mu.Lock()
	c.upTo, c.times = nil, nil
	c.mu.Unlock()
}

func sortDurations(d []time.Duration) { sort.Slice(d, func(i, j int) bool { return d[i] < d[j] }) }
