package harness

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/benthos-danube/benthos-danube/internal/danube/danubetest"
)

// DanubeLog is the part of danubetest.Server that Analyse reads.
type DanubeLog interface {
	Topics() []string
	Messages(topic string) []danubetest.Message
}

// Witness is what Analyse asks the MQTT witness (a Subscriber): which ids
// the MQTT broker delivered, and how many out of order.
type Witness interface {
	Seen(id string) bool
	OrderViolations() int
}

// Analysis is the input of Analyse.
type Analysis struct {
	Log DanubeLog
	// Topic is the bridge's Danube topic; its partitions ("<Topic>-part-N")
	// count too, every other topic is ignored.
	Topic   string
	Ledger  *Ledger
	Witness Witness
	// Clocks (optional) tell when each log index of a topic arrived; with
	// them Analyse fills in each fault's recovery times and sorts order
	// violations into near a fault and steady state.
	Clocks map[string]*IndexClock
	// Faults (optional) are updated in place.
	Faults []FaultResult
}

// Report is the chaos soak's result: what Analyse found, plus the run's
// parameters and the bridge's figures, which the caller fills in.
type Report struct {
	Duration                        time.Duration
	Rate                            float64
	Seed                            int64
	Probe                           int
	DeadLettered                    int // records on the dead-letter topic
	Attempted, Published, Retries   int
	Deliveries, Unique, Unconfirmed int
	Missing, MissingAtBroker        int
	MissingSample                   []string
	Duplicated                      int
	OrderViolations                 int
	Inversions                      int
	SteadyViolations                int
	WitnessViolations               int
	SplitDevices                    int
	Unparsable, Foreign             int
	Drain                           time.Duration
	Faults                          []FaultResult
	Peak                            ProcMem
	Starts                          int
	Unexpected                      []string
}

// Analyse compares Danube's log with the ledger: missing ids (PUBACKed but
// never in Danube, and whether the witness saw them), duplicates, ids never
// PUBACKed, foreign and unreadable payloads, per-device order (Displaced, in
// each partition; probe messages are skipped) and devices split across
// partitions.
func Analyse(a Analysis) Report {
	var rep Report
	// nearFault returns the latest fault whose window (1 s before its start to
	// 15 s after its end) holds at, or nil.
	nearFault := func(at time.Time) *FaultResult {
		var hit *FaultResult
		for k := range a.Faults {
			f := &a.Faults[k]
			if !at.Before(f.Start.Add(-time.Second)) && !at.After(f.End.Add(15*time.Second)) {
				hit = f
			}
		}
		return hit
	}
	entries := a.Ledger.Snapshot()
	rep.Attempted, rep.Published, rep.Retries = a.Ledger.Counts()
	rep.WitnessViolations = a.Witness.OrderViolations()
	seen := map[string]int{}
	devPart := map[string]map[int]bool{}
	type delivery struct {
		seq int64
		at  time.Time
	}
	order := map[string][]delivery{} // partition/device → first deliveries in log order
	for _, topic := range a.Log.Topics() {
		if topic != a.Topic && !strings.HasPrefix(topic, a.Topic+"-part-") {
			continue
		}
		maxSeq := map[string]int64{}
		clock := a.Clocks[topic]
		for i, m := range a.Log.Messages(topic) {
			p, err := ParsePayload(m.Payload)
			if err != nil || p.ID == "" {
				rep.Unparsable++
				continue
			}
			if p.Dev == "probe" {
				continue
			}
			var at time.Time
			if clock != nil {
				at, _ = clock.At(i)
			}
			if !at.IsZero() {
				for k := range a.Faults {
					f := &a.Faults[k]
					if f.End.IsZero() || !at.After(f.End) {
						continue
					}
					if d := at.Sub(f.End); !f.Recovered || d < f.Recovery {
						f.Recovery, f.Recovered = d, true
					}
					if p.TS > f.End.UnixNano() {
						if d := at.Sub(f.End); !f.FreshOK || d < f.Fresh {
							f.Fresh, f.FreshOK = d, true
						}
					}
				}
			}
			rep.Deliveries++
			if seen[p.ID] > 0 {
				seen[p.ID]++
				continue // duplicates do not count for order
			}
			seen[p.ID]++
			if devPart[p.Dev] == nil {
				devPart[p.Dev] = map[int]bool{}
			}
			devPart[p.Dev][m.Partition] = true
			if p.Seq < maxSeq[p.Dev] {
				rep.Inversions++
			} else {
				maxSeq[p.Dev] = p.Seq
			}
			key := fmt.Sprintf("%d/%s", m.Partition, p.Dev)
			order[key] = append(order[key], delivery{p.Seq, at})
		}
	}
	for _, ds := range order {
		seqs := make([]int64, len(ds))
		for i, d := range ds {
			seqs[i] = d.seq
		}
		for i, displaced := range Displaced(seqs) {
			if !displaced {
				continue
			}
			rep.OrderViolations++
			if at := ds[i].at; !at.IsZero() {
				if f := nearFault(at); f != nil {
					f.Violations++
				} else {
					rep.SteadyViolations++
				}
			}
		}
	}
	for _, parts := range devPart {
		if len(parts) > 1 {
			rep.SplitDevices++
		}
	}
	for id, n := range seen {
		e, ok := entries[id]
		switch {
		case !ok:
			rep.Foreign++
		case !e.Acked:
			rep.Unconfirmed++
		}
		rep.Unique++
		rep.Duplicated += n - 1
	}
	var missing []string
	for id, e := range entries {
		if e.Acked && seen[id] == 0 {
			missing = append(missing, id)
			if !a.Witness.Seen(id) {
				rep.MissingAtBroker++
			}
		}
	}
	sort.Strings(missing)
	rep.Missing = len(missing)
	if len(missing) > 10 {
		missing = missing[:10]
	}
	rep.MissingSample = missing
	return rep
}

// Table renders the report for the soak's output.
func (r Report) Table() string {
	var b strings.Builder
	w := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	w("\n=== chaos soak: duration %v, rate %.0f msg/s, seed %d ===\n", r.Duration, r.Rate, r.Seed)
	w("%-34s %12s\n", "metric", "value")
	w("%-34s %12d\n", "published (PUBACKed ids)", r.Published)
	w("%-34s %12d\n", "  ids attempted", r.Attempted)
	w("%-34s %12d\n", "  publisher re-sends", r.Retries)
	w("%-34s %12d\n", "delivered to Danube (unique ids)", r.Unique)
	w("%-34s %12d\n", "  of them never PUBACKed", r.Unconfirmed)
	w("%-34s %12d\n", "missing (must be 0)", r.Missing)
	w("%-34s %12d\n", "  missing at the MQTT witness too", r.MissingAtBroker)
	w("%-34s %12d\n", "dead-lettered (must be 0)", r.DeadLettered)
	w("%-34s %12d\n", "duplicated deliveries", r.Duplicated)
	w("%-34s %12d\n", "out-of-order messages (per device)", r.OrderViolations)
	w("%-34s %12d\n", "  of them away from any fault", r.SteadyViolations)
	w("%-34s %12d\n", "  at the MQTT witness (upstream)", r.WitnessViolations)
	w("%-34s %12d\n", "  naive: behind an earlier max seq", r.Inversions)
	w("%-34s %12d\n", "devices split across partitions", r.SplitDevices)
	w("%-34s %12d\n", "unreadable / foreign payloads", r.Unparsable+r.Foreign)
	w("%-34s %12s\n", "drain after load stop", r.Drain.Round(100*time.Millisecond))
	w("%-34s %12s\n", "bridge peak RSS (VmHWM)", MiB(r.Peak.HWM))
	w("%-34s %12d\n", "bridge processes started", r.Starts)
	w("%-34s %12d\n", "unexpected bridge exits", len(r.Unexpected))
	w("\n%-3s %-20s %8s %-28s %10s %10s %10s\n", "#", "fault", "at", "detail", "recovery", "fresh msg", "order viol")
	var start time.Time
	if len(r.Faults) > 0 {
		start = r.Faults[0].Start.Add(-r.Faults[0].At)
	}
	for i, f := range r.Faults {
		rec, fresh := "none", "none"
		if f.Recovered {
			rec = f.Recovery.Round(time.Millisecond).String()
		}
		if f.FreshOK {
			fresh = f.Fresh.Round(time.Millisecond).String()
		}
		d := f.Detail
		if f.Err != nil {
			d = "ERROR: " + f.Err.Error()
		}
		w("%-3d %-20s %7.1fs %-28s %10s %10s %10d\n", i+1, f.Kind, f.Start.Sub(start).Seconds(), d, rec, fresh, f.Violations)
	}
	w("recovery = from the end of the fault to the next message accepted by Danube;\n")
	w("fresh msg = from the end of the fault to the first message published after it accepted by Danube\n")
	w("out-of-order = first deliveries of a device (in its partition) outside the longest in-order subsequence,\n")
	w("i.e. the fewest messages that would have to move; attributed to the fault whose window\n")
	w("[start-1s, end+15s] holds the arrival (order viol column)\n\n")
	return b.String()
}
