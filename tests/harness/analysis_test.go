package harness

import (
	"encoding/json"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/benthos-danube/benthos-danube/internal/danube/danubetest"
)

// fakeLog is a Danube log written by the test: topic → messages in order.
type fakeLog map[string][]danubetest.Message

func (l fakeLog) Topics() []string {
	var out []string
	for k := range l {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func (l fakeLog) Messages(topic string) []danubetest.Message { return l[topic] }

// fakeWitness saw the ids in seen.
type fakeWitness struct {
	seen       map[string]bool
	violations int
}

func (w fakeWitness) Seen(id string) bool  { return w.seen[id] }
func (w fakeWitness) OrderViolations() int { return w.violations }

func msg(t *testing.T, partition int, dev string, seq int64) danubetest.Message {
	t.Helper()
	b, err := json.Marshal(Payload{ID: fmt.Sprintf("%s-%08d", dev, seq), Dev: dev, Seq: seq})
	if err != nil {
		t.Fatal(err)
	}
	return danubetest.Message{Payload: b, Partition: partition}
}

// ledger records dev's ids 1..n as published, acked unless listed in
// unacked.
func ledger(l *Ledger, dev string, n int64, unacked ...int64) {
	for s := int64(1); s <= n; s++ {
		id := fmt.Sprintf("%s-%08d", dev, s)
		l.attempt(id, dev, s)
		if !contains(unacked, s) {
			l.ack(id)
		}
	}
}

func contains(v []int64, x int64) bool {
	for _, y := range v {
		if y == x {
			return true
		}
	}
	return false
}

// TestAnalyse: on a synthetic ledger and log, Analyse counts missing ids
// (and which of them the witness missed too), duplicates, ids never
// PUBACKed, foreign and unreadable payloads, displaced messages per device
// and partition, devices split across partitions; it ignores other topics
// and the probe.
func TestAnalyse(t *testing.T) {
	l := NewLedger()
	ledger(l, "a", 5)
	ledger(l, "b", 4, 4) // b-4 never PUBACKed
	log := fakeLog{
		"/default/chaos-part-0": {
			msg(t, 0, "a", 1), msg(t, 0, "a", 3), msg(t, 0, "a", 2), // a-2 displaced
			msg(t, 0, "a", 3), // duplicate
			msg(t, 0, "probe", 1),
			{Payload: []byte("not json"), Partition: 0},
			msg(t, 0, "b", 1),
		},
		"/default/chaos-part-1": {
			msg(t, 1, "b", 2), msg(t, 1, "b", 4), // b split across partitions; b-3 missing
			msg(t, 1, "x", 9), // foreign
		},
		"/default/other": {msg(t, 0, "a", 4)}, // not the bridge's topic: a-4 counts as missing
	}
	w := fakeWitness{seen: map[string]bool{"a-00000004": true}} // a-5 and b-3 never reached it
	rep := Analyse(Analysis{Log: log, Topic: "/default/chaos", Ledger: l, Witness: w})
	want := Report{
		Attempted: 9, Published: 8,
		Deliveries:      8, // the duplicate counts; probe and unreadable do not
		Unique:          7,
		Unconfirmed:     1, // b-4
		Foreign:         1, // x-9
		Unparsable:      1,
		Duplicated:      1,
		Missing:         3, // a-4, a-5, b-3
		MissingAtBroker: 2, // a-5, b-3
		MissingSample:   []string{"a-00000004", "a-00000005", "b-00000003"},
		OrderViolations: 1,
		Inversions:      1,
		SplitDevices:    1,
	}
	if !reflect.DeepEqual(rep, want) {
		t.Errorf("Analyse:\n got %+v\nwant %+v", rep, want)
	}
	if tbl := rep.Table(); !strings.Contains(tbl, "missing (must be 0)                           3") {
		t.Errorf("the table does not show the missing count:\n%s", tbl)
	}
}

// TestAnalyseFaults: with arrival clocks, each fault's recovery is the
// first arrival after its end, fresh the first arrival of a message
// published after its end, and displaced arrivals inside a fault's window
// count for that fault rather than for the steady state.
func TestAnalyseFaults(t *testing.T) {
	base := time.Now()
	l := NewLedger()
	ledger(l, "a", 4)
	ts := func(m danubetest.Message, pub time.Time) danubetest.Message {
		p, _ := ParsePayload(m.Payload)
		p.TS = pub.UnixNano()
		m.Payload, _ = json.Marshal(p)
		return m
	}
	topic := "/default/chaos"
	log := fakeLog{topic: {
		ts(msg(t, 0, "a", 1), base),
		ts(msg(t, 0, "a", 3), base.Add(time.Second)),
		ts(msg(t, 0, "a", 2), base.Add(500*time.Millisecond)), // displaced, arrives during the fault window
		ts(msg(t, 0, "a", 4), base.Add(12*time.Second)),       // published after the fault ended
	}}
	// Log index i arrived at base + arrive[i].
	arrive := []time.Duration{100 * time.Millisecond, 1100 * time.Millisecond, 11 * time.Second, 13 * time.Second}
	clock := &IndexClock{}
	for i, d := range arrive {
		clock.upTo = append(clock.upTo, i+1)
		clock.times = append(clock.times, base.Add(d))
	}
	faults := []FaultResult{{PlannedFault: PlannedFault{Kind: FaultDanubeDown}, Start: base.Add(2 * time.Second), End: base.Add(10 * time.Second)}}
	rep := Analyse(Analysis{Log: log, Topic: topic, Ledger: l, Witness: fakeWitness{}, Clocks: map[string]*IndexClock{topic: clock}, Faults: faults})
	f := faults[0]
	if !f.Recovered || f.Recovery != time.Second {
		t.Errorf("recovery %v (%v), want 1s", f.Recovery, f.Recovered)
	}
	if !f.FreshOK || f.Fresh != 3*time.Second {
		t.Errorf("fresh %v (%v), want 3s", f.Fresh, f.FreshOK)
	}
	if f.Violations != 1 || rep.SteadyViolations != 0 || rep.OrderViolations != 1 {
		t.Errorf("violations: fault %d, steady %d, all %d; want 1, 0, 1", f.Violations, rep.SteadyViolations, rep.OrderViolations)
	}
	if rep.Missing != 0 {
		t.Errorf("missing %d", rep.Missing)
	}
}
