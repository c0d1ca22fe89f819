package harness

import (
	"context"
	"fmt"
	"math/rand"
	"syscall"
	"time"

	"github.com/benthos-danube/benthos-danube/internal/danube/danubetest"
)

// FaultKind names a fault the chaos soak injects.
type FaultKind string

// The faults of the chaos soak.
const (
	FaultMQTTRestart   FaultKind = "mqtt-broker-restart"
	FaultDanubeRestart FaultKind = "danube-restart"
	FaultDanubeDown    FaultKind = "danube-unavailable"
	FaultDanubeSlow    FaultKind = "danube-slow"
	FaultBridgeKill    FaultKind = "bridge-sigkill"
	FaultBridgeTerm    FaultKind = "bridge-sigterm"
)

// FaultKinds lists every fault kind; each plan holds each at least once.
func FaultKinds() []FaultKind {
	return []FaultKind{FaultMQTTRestart, FaultDanubeRestart, FaultDanubeDown, FaultDanubeSlow, FaultBridgeKill, FaultBridgeTerm}
}

// PlannedFault is one fault of a plan.
type PlannedFault struct {
	Kind    FaultKind
	At      time.Duration // offset from the start of the load
	Hold    time.Duration // outage/slowdown length
	Latency time.Duration // for danube-slow
}

// FaultResult is a fault as it was injected, with what Analyse found about
// the recovery after it.
type FaultResult struct {
	PlannedFault
	Start, End time.Time
	Detail     string
	Err        error
	Recovery   time.Duration // to the next message accepted by Danube
	Recovered  bool
	Fresh      time.Duration // to the first message published after the fault ended
	FreshOK    bool
	Violations int // order violations within its window
}

// PlanFaults spreads faults over a load window of length d: every kind once
// first (in a seeded random order), then, on runs of 3 minutes or more, more
// random kinds while they fit (about one per 30 s), with the slack
// distributed randomly between them. The same rng seed gives the same plan.
func PlanFaults(rng *rand.Rand, d time.Duration) []PlannedFault {
	short := d < 3*time.Minute
	warm, tail := 3*time.Second, 5*time.Second
	minGap, action := 4*time.Second, 2*time.Second
	if !short {
		warm, tail, minGap = 10*time.Second, 15*time.Second, 10*time.Second
	}
	mk := func(k FaultKind) PlannedFault {
		f := PlannedFault{Kind: k}
		switch k {
		case FaultDanubeDown:
			f.Hold = 10 * time.Second
			if !short {
				f.Hold = time.Duration(10+rng.Intn(21)) * time.Second
			}
		case FaultDanubeSlow:
			f.Hold = 4 * time.Second
			if !short {
				f.Hold = time.Duration(3+rng.Intn(8)) * time.Second
			}
			f.Latency = time.Duration(50+rng.Intn(151)) * time.Millisecond
		}
		return f
	}
	cost := func(f PlannedFault) time.Duration { return f.Hold + action + minGap }
	kinds := FaultKinds()
	var plan []PlannedFault
	var used time.Duration
	for _, i := range rng.Perm(len(kinds)) {
		f := mk(kinds[i])
		plan = append(plan, f)
		used += cost(f)
	}
	avail := d - warm - tail
	if !short {
		// About one fault per 30 s on long runs.
		for used < avail {
			f := mk(kinds[rng.Intn(len(kinds))])
			if used+cost(f) > avail || time.Duration(len(plan)+1)*30*time.Second > avail {
				break
			}
			plan = append(plan, f)
			used += cost(f)
		}
	}
	slack := avail - used
	if slack < 0 {
		slack = 0
	}
	w := make([]float64, len(plan))
	sum := 0.0
	for i := range w {
		w[i] = 0.2 + rng.Float64()
		sum += w[i]
	}
	at := warm
	for i := range plan {
		at += time.Duration(float64(slack) * w[i] / sum / 2) // half the slack before...
		plan[i].At = at
		at += cost(plan[i]) + time.Duration(float64(slack)*w[i]/sum/2) // ...half after
	}
	return plan
}

// RunFaults injects the plan, each fault at loadStart+At, into the MQTT
// broker, the Danube test broker and the bridge, logging each with logf, and
// returns what happened. It stops early when ctx is done.
func RunFaults(ctx context.Context, logf func(format string, args ...any), loadStart time.Time, plan []PlannedFault,
	mq *Mosquitto, srv *danubetest.Server, bridge *Bridge) []FaultResult {
	var out []FaultResult
	for _, f := range plan {
		at := loadStart.Add(f.At)
		if d := time.Until(at); d > 0 {
			select {
			case <-ctx.Done():
				return out
			case <-time.After(d):
			}
		}
		r := FaultResult{PlannedFault: f, Start: time.Now()}
		switch f.Kind {
		case FaultMQTTRestart:
			r.Err = mq.Restart(ctx)
		case FaultDanubeRestart:
			srv.Restart()
		case FaultDanubeDown:
			srv.Stop()
			time.Sleep(f.Hold)
			r.Err = srv.Start()
			r.Detail = fmt.Sprintf("down %v", f.Hold)
		case FaultDanubeSlow:
			srv.SetLatency(f.Latency)
			time.Sleep(f.Hold)
			srv.SetLatency(0)
			r.Detail = fmt.Sprintf("+%v for %v", f.Latency, f.Hold)
		case FaultBridgeKill:
			_, _, r.Err = bridge.Restart(syscall.SIGKILL, 5*time.Second)
		case FaultBridgeTerm:
			took, forced, err := bridge.Restart(syscall.SIGTERM, 20*time.Second)
			r.Err = err
			r.Detail = fmt.Sprintf("exit took %v", took.Round(time.Millisecond))
			if forced {
				r.Detail += " (forced)"
			}
		}
		r.End = time.Now()
		logf("fault %-20s at %6.1fs took %v %s err=%v", f.Kind, r.Start.Sub(loadStart).Seconds(),
			r.End.Sub(r.Start).Round(time.Millisecond), r.Detail, r.Err)
		out = append(out, r)
	}
	return out
}
