package danubeout

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/benthos-danube/benthos-danube/internal/danube"
)

// producerKey identifies one cached producer.
type producerKey struct {
	topic      string
	partitions int
	reliable   bool
}

type producerEntry struct {
	key      producerKey
	ready    chan struct{} // closed once producer/err is set
	producer *danube.Producer
	err      error
	refs     int
	lastUsed time.Time
}

// producerCache holds at most max producers, created lazily and closed after
// being idle (no reference held) for idle. Its reaper goroutine is stopped by
// close.
type producerCache struct {
	max    int
	idle   time.Duration
	create func(context.Context, producerKey) (*danube.Producer, error)
	onOpen func(n int)
	// refusal reports a creation error that is permanent for the topic (a
	// missing namespace or topic, a refusal). Such errors are remembered
	// for refusalTTL, so the messages behind the first one fail at once
	// instead of each paying the broker's round trips and retries.
	refusal func(error) bool
	refused map[producerKey]refusedEntry

	mu       sync.Mutex
	entries  map[producerKey]*producerEntry
	released chan struct{} // closed and replaced when a reference is released and someone waits
	waiters  int
	closed   bool

	stop chan struct{}
	done chan struct{}
}

var errCacheClosed = errors.New("producer cache closed")

// refusalTTL is how long a permanent creation error is remembered: the time
// an operator's fix (creating the namespace, say) takes to be seen.
const refusalTTL = 5 * time.Second

type refusedEntry struct {
	err   error
	until time.Time
}

func newProducerCache(max int, idle time.Duration, create func(context.Context, producerKey) (*danube.Producer, error), onOpen func(int)) *producerCache {
	c := &producerCache{
		max:      max,
		idle:     idle,
		create:   create,
		onOpen:   onOpen,
		entries:  map[producerKey]*producerEntry{},
		released: make(chan struct{}),
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
	}
	go c.reaper()
	return c
}

// acquire returns the ready producer for k, creating it if needed. The caller
// must release it.
func (c *producerCache) acquire(ctx context.Context, k producerKey) (*producerEntry, error) {
	for {
		c.mu.Lock()
		if c.closed {
			c.mu.Unlock()
			return nil, errCacheClosed
		}
		if r, ok := c.refused[k]; ok {
			if time.Now().Before(r.until) {
				c.mu.Unlock()
				return nil, r.err
			}
			delete(c.refused, k)
		}
		if e, ok := c.entries[k]; ok {
			e.refs++
			c.mu.Unlock()
			select {
			case <-e.ready:
			case <-ctx.Done():
				c.release(e)
				return nil, fmt.Errorf("waiting for producer: %w", ctx.Err())
			}
			if e.err != nil {
				c.release(e)
				return nil, e.err
			}
			return e, nil
		}
		if len(c.entries) >= c.max && !c.evictOneLocked() {
			wait := c.released
			c.waiters++
			c.mu.Unlock()
			select {
			case <-wait:
				c.mu.Lock()
				c.waiters--
				c.mu.Unlock()
				continue
			case <-ctx.Done():
				c.mu.Lock()
				c.waiters--
				c.mu.Unlock()
				return nil, fmt.Errorf("all %d producers (max_producers) are busy: %w", c.max, ctx.Err())
			}
		}
		e := &producerEntry{key: k, ready: make(chan struct{}), refs: 1}
		c.entries[k] = e
		c.mu.Unlock()

		p, err := c.create(ctx, k)

		c.mu.Lock()
		e.producer, e.err = p, err
		if err != nil {
			// Forget the failed entry so that the next message retries.
			if c.entries[k] == e {
				delete(c.entries, k)
			}
			if c.refusal != nil && c.refusal(err) {
				if c.refused == nil {
					c.refused = map[producerKey]refusedEntry{}
				}
				c.refused[k] = refusedEntry{err: err, until: time.Now().Add(refusalTTL)}
			}
		} else if c.closed {
			_ = p.Close()
			e.producer, e.err = nil, errCacheClosed
		}
		close(e.ready)
		c.notifyOpenLocked()
		c.mu.Unlock()
		if e.err != nil {
			c.release(e)
			return nil, e.err
		}
		return e, nil
	}
}

// release drops a reference taken by acquire.
func (c *producerCache) release(e *producerEntry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e.refs--
	e.lastUsed = time.Now()
	if c.waiters > 0 {
		close(c.released)
		c.released = make(chan struct{})
	}
}

// evictOneLocked closes the least recently used idle producer.
func (c *producerCache) evictOneLocked() bool {
	var victim *producerEntry
	for _, e := range c.entries {
		if e.refs > 0 || e.producer == nil {
			continue
		}
		if victim == nil || e.lastUsed.Before(victim.lastUsed) {
			victim = e
		}
	}
	if victim == nil {
		return false
	}
	delete(c.entries, victim.key)
	_ = victim.producer.Close()
	c.notifyOpenLocked()
	return true
}

func (c *producerCache) notifyOpenLocked() {
	n := 0
	for _, e := range c.entries {
		if e.producer != nil {
			n++
		}
	}
	if c.onOpen != nil {
		c.onOpen(n)
	}
}

func (c *producerCache) reaper() {
	defer close(c.done)
	interval := c.idle / 2
	if interval < 10*time.Millisecond {
		interval = 10 * time.Millisecond
	}
	if interval > 30*time.Second {
		interval = 30 * time.Second
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-c.stop:
			return
		case now := <-t.C:
			c.reap(now)
		}
	}
}

// reap closes producers idle for longer than c.idle.
func (c *producerCache) reap(now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	changed := false
	for k, e := range c.entries {
		if e.refs == 0 && e.producer != nil && now.Sub(e.lastUsed) >= c.idle {
			delete(c.entries, k)
			_ = e.producer.Close()
			changed = true
		}
	}
	if changed {
		c.notifyOpenLocked()
	}
}

// close stops the reaper and closes every producer.
func (c *producerCache) close() {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.closed = true
	for k, e := range c.entries {
		delete(c.entries, k)
		if e.producer != nil {
			_ = e.producer.Close()
		}
	}
	close(c.released)
	c.released = make(chan struct{})
	c.mu.Unlock()
	close(c.stop)
	<-c.done
}
