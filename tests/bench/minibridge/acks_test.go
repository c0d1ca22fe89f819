package main

import (
	"slices"
	"testing"
)

type rec struct {
	id  int
	log *[]int
}

func (r rec) Ack() { *r.log = append(*r.log, r.id) }

func TestAckQueueReleasesInArrivalOrder(t *testing.T) {
	// Each step either adds the next arrival ("+") or finishes arrival n;
	// want is the acks sent by that step.
	type step struct {
		add  bool
		done int
		want []int
	}
	add := step{add: true}
	fin := func(n int, want ...int) step { return step{done: n, want: want} }
	cases := []struct {
		name  string
		steps []step
	}{
		{"in order", []step{add, add, add, fin(0, 0), fin(1, 1), fin(2, 2)}},
		{"reverse", []step{add, add, add, fin(2), fin(1), fin(0, 0, 1, 2)}},
		{"middle first", []step{add, add, add, fin(1), fin(0, 0, 1), fin(2, 2)}},
		{"gap held", []step{add, add, add, add, fin(3), fin(0, 0), fin(2), fin(1, 1, 2, 3)}},
		{"arrivals after a release", []step{add, add, fin(1), fin(0, 0, 1), add, add, fin(3), fin(2, 2, 3)}},
		{"arrivals while held", []step{add, add, fin(1), add, fin(2), fin(0, 0, 1, 2)}},
		{"single", []step{add, fin(0, 0)}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var q ackQueue
			var log []int
			next := 0
			for i, s := range tc.steps {
				if s.add {
					if n := q.add(rec{id: next, log: &log}); n != uint64(next) {
						t.Fatalf("step %d: add numbered %d, want %d", i, n, next)
					}
					next++
					continue
				}
				before := len(log)
				q.done(uint64(s.done))
				if got := log[before:]; !slices.Equal(got, s.want) && (len(got) != 0 || len(s.want) != 0) {
					t.Fatalf("step %d (done %d): acked %v, want %v", i, s.done, got, s.want)
				}
			}
			if q.waiting() != 0 {
				t.Fatalf("%d arrivals never acked", q.waiting())
			}
		})
	}
}

// TestAckQueueLongRun finishes arrivals out of order within windows of 64,
// long enough to go through the compaction of the pending slice.
func TestAckQueueLongRun(t *testing.T) {
	var q ackQueue
	var log []int
	const n, window = 80 * 64, 64
	for base := 0; base < n; base += window {
		for i := base; i < base+window; i++ {
			q.add(rec{id: i, log: &log})
		}
		// Leave the first of each window for the next one, so that
		// arrivals pile up.
		for i := base + window - 1; i > base; i-- {
			q.done(uint64(i))
		}
		if base > 0 {
			q.done(uint64(base - window))
		}
	}
	q.done(uint64(n - window))
	if q.waiting() != 0 || len(log) != n {
		t.Fatalf("waiting %d, acked %d of %d", q.waiting(), len(log), n)
	}
	for i, id := range log {
		if id != i {
			t.Fatalf("ack %d was arrival %d", i, id)
		}
	}
}
