// Package drain is the close gate of an output: it counts the calls in
// flight (writes, connects), refuses new ones once Close began, and lets
// Close wait for the running ones for a bounded time.
package drain

import (
	"context"
	"sync"
	"time"
)

// Gate counts calls in flight. The zero value is open.
type Gate struct {
	mu     sync.RWMutex
	closed bool
	wg     sync.WaitGroup
}

// Enter counts one call in flight; the caller runs done when it is over. It
// reports false, and counts nothing, once Close began.
func (g *Gate) Enter() (done func(), ok bool) {
	g.mu.RLock()
	defer g.mu.RUnlock()
	if g.closed {
		return nil, false
	}
	g.wg.Add(1)
	return g.wg.Done, true
}

// Closed reports whether Close began.
func (g *Gate) Closed() bool {
	g.mu.RLock()
	defer g.mu.RUnlock()
	return g.closed
}

// Close refuses further calls and returns a channel closed once every call in
// flight is over. first is false when Close had begun already.
func (g *Gate) Close() (drained <-chan struct{}, first bool) {
	g.mu.Lock()
	first = !g.closed
	g.closed = true
	g.mu.Unlock()
	ch := make(chan struct{})
	go func() {
		g.wg.Wait()
		close(ch)
	}()
	return ch, first
}

// Wait waits for drained, at most until ctx is done or bound has passed.
func Wait(ctx context.Context, drained <-chan struct{}, bound time.Duration) {
	timer := time.NewTimer(bound)
	defer timer.Stop()
	select {
	case <-drained:
	case <-ctx.Done():
	case <-timer.C:
	}
}
