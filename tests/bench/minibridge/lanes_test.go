package main

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestLanesOneAtATimePerKeyInOrder(t *testing.T) {
	type item struct {
		key string
		n   int
	}
	cases := []struct{ keys, perKey int }{{1, 50}, {3, 20}, {20, 5}}
	for _, tc := range cases {
		t.Run(fmt.Sprintf("%dx%d", tc.keys, tc.perKey), func(t *testing.T) {
			var mu sync.Mutex
			running := map[string]int{}
			got := map[string][]int{}
			var concurrent, maxConcurrent atomic.Int64
			var wg sync.WaitGroup
			l := newLanes(4, func(it item) {
				defer wg.Done()
				mu.Lock()
				running[it.key]++
				if running[it.key] > 1 {
					t.Errorf("key %s: two jobs at once", it.key)
				}
				got[it.key] = append(got[it.key], it.n)
				mu.Unlock()
				c := concurrent.Add(1)
				for m := maxConcurrent.Load(); c > m && !maxConcurrent.CompareAndSwap(m, c); m = maxConcurrent.Load() {
				}
				time.Sleep(time.Millisecond)
				concurrent.Add(-1)
				mu.Lock()
				running[it.key]--
				mu.Unlock()
			})
			for n := 0; n < tc.perKey; n++ {
				for k := 0; k < tc.keys; k++ {
					wg.Add(1)
					l.submit(fmt.Sprint(k), item{key: fmt.Sprint(k), n: n})
				}
			}
			wg.Wait()
			defer l.close()
			for k := 0; k < tc.keys; k++ {
				seq := got[fmt.Sprint(k)]
				if len(seq) != tc.perKey {
					t.Fatalf("key %d: %d jobs ran, want %d", k, len(seq), tc.perKey)
				}
				for i, n := range seq {
					if n != i {
						t.Fatalf("key %d: job %d ran in place %d", k, n, i)
					}
				}
			}
			if tc.keys > 1 && maxConcurrent.Load() < 2 {
				t.Errorf("keys never ran concurrently")
			}
			// The lanes of finished keys are gone (polling: the last
			// drain returns just after its job's Done).
			deadline := time.Now().Add(time.Second)
			for {
				l.mu.Lock()
				n := len(l.wait)
				l.mu.Unlock()
				if n == 0 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("%d lanes left", n)
				}
				time.Sleep(time.Millisecond)
			}
		})
	}
}
