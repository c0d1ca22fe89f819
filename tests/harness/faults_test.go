package harness

import (
	"math/rand"
	"reflect"
	"testing"
	"time"
)

// TestPlanFaults: a plan holds every kind, in order, inside the load window
// (after the warm-up), with the documented holds; the same seed gives the
// same plan and another seed another order.
func TestPlanFaults(t *testing.T) {
	for _, c := range []struct {
		name    string
		d       time.Duration
		minLen  int
		warm    time.Duration
		downMin time.Duration
		downMax time.Duration
	}{
		{"short run", 60 * time.Second, 6, 3 * time.Second, 10 * time.Second, 10 * time.Second},
		{"long run", 10 * time.Minute, 7, 10 * time.Second, 10 * time.Second, 30 * time.Second},
	} {
		t.Run(c.name, func(t *testing.T) {
			plan := PlanFaults(rand.New(rand.NewSource(1)), c.d)
			if len(plan) < c.minLen {
				t.Fatalf("%d faults, want at least %d", len(plan), c.minLen)
			}
			seen := map[FaultKind]bool{}
			for i, f := range plan {
				seen[f.Kind] = true
				if f.At < c.warm || f.At >= c.d {
					t.Errorf("fault %d (%s) at %v, outside [%v, %v)", i, f.Kind, f.At, c.warm, c.d)
				}
				if i > 0 && f.At <= plan[i-1].At {
					t.Errorf("fault %d at %v not after fault %d at %v", i, f.At, i-1, plan[i-1].At)
				}
				switch f.Kind {
				case FaultDanubeDown:
					if f.Hold < c.downMin || f.Hold > c.downMax {
						t.Errorf("danube down for %v, want %v..%v", f.Hold, c.downMin, c.downMax)
					}
				case FaultDanubeSlow:
					if f.Latency < 50*time.Millisecond || f.Latency > 200*time.Millisecond || f.Hold <= 0 {
						t.Errorf("danube slow %+v", f)
					}
				default:
					if f.Hold != 0 || f.Latency != 0 {
						t.Errorf("%s with hold %v latency %v", f.Kind, f.Hold, f.Latency)
					}
				}
			}
			for _, k := range FaultKinds() {
				if !seen[k] {
					t.Errorf("kind %s not planned", k)
				}
			}
			if again := PlanFaults(rand.New(rand.NewSource(1)), c.d); !reflect.DeepEqual(plan, again) {
				t.Errorf("seed 1 gave two plans:\n%v\n%v", plan, again)
			}
			if other := PlanFaults(rand.New(rand.NewSource(2)), c.d); reflect.DeepEqual(plan, other) {
				t.Errorf("seeds 1 and 2 gave the same plan %v", plan)
			}
		})
	}
}
