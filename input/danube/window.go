package danubein

import (
	"context"
	"sync"
)

// window counts the max_unacked slots: acquire takes as many free slots as
// a batch may use in one step (not one channel operation per slot), release
// gives them back. Only one goroutine acquires at a time (Benthos' read
// loop); any goroutine releases.
type window struct {
	mu    sync.Mutex
	size  int
	free  int
	freed chan struct{} // signalled by release; buffered 1
}

func newWindow(size int) *window {
	return &window{size: size, free: size, freed: make(chan struct{}, 1)}
}

// acquire waits until a slot is free, then takes up to max free slots and
// returns how many it took.
func (w *window) acquire(ctx context.Context, max int) (int, error) {
	for {
		w.mu.Lock()
		if w.free > 0 {
			n := min(w.free, max)
			w.free -= n
			w.mu.Unlock()
			return n, nil
		}
		w.mu.Unlock()
		select {
		case <-w.freed:
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
}

// release frees n slots.
func (w *window) release(n int) {
	if n <= 0 {
		return
	}
	w.mu.Lock()
	w.free += n
	w.mu.Unlock()
	select {
	case w.freed <- struct{}{}:
	default:
	}
}

// inUse returns the number of slots taken.
func (w *window) inUse() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.size - w.free
}
