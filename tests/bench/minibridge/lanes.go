package main

import "sync"

// lanes runs jobs one at a time per key, in submission order, and the keys
// concurrently: one Danube send in flight per MQTT topic. A fixed set of
// worker goroutines runs them (a goroutine started per job would grow its
// stack anew for every gRPC call: runtime.copystack was 7 % of the CPU); a
// worker that finishes a job runs the next job of the same key, if any.
type lanes[T any] struct {
	mu    sync.Mutex
	wait  map[string][]T // present: a job of the key is queued or running; value: the jobs behind it
	ready chan keyed[T]
	run   func(T)
}

type keyed[T any] struct {
	key string
	j   T
}

// newLanes starts workers goroutines. The caller bounds the jobs in the
// lanes to at most workers (submit blocks beyond that); close stops them.
func newLanes[T any](workers int, run func(T)) *lanes[T] {
	l := &lanes[T]{wait: map[string][]T{}, ready: make(chan keyed[T], workers), run: run}
	for range workers {
		go l.work()
	}
	return l
}

// submit queues j behind the key's running job, or hands it to a worker.
func (l *lanes[T]) submit(key string, j T) {
	l.mu.Lock()
	if w, busy := l.wait[key]; busy {
		l.wait[key] = append(w, j)
		l.mu.Unlock()
		return
	}
	l.wait[key] = nil
	l.mu.Unlock()
	l.ready <- keyed[T]{key, j}
}

func (l *lanes[T]) close() { close(l.ready) }

func (l *lanes[T]) work() {
	var zero T
	for k := range l.ready {
		j := k.j
		for {
			l.run(j)
			l.mu.Lock()
			w := l.wait[k.key]
			if len(w) == 0 {
				delete(l.wait, k.key)
				l.mu.Unlock()
				break
			}
			j, w[0] = w[0], zero
			l.wait[k.key] = w[1:]
			l.mu.Unlock()
		}
	}
}
