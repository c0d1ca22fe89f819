package chaos

import (
	"context"
	"flag"
	"fmt"
	"math/rand"
	"os"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/benthos-danube/benthos-danube/internal/danube/danubetest"
	"github.com/benthos-danube/benthos-danube/internal/deadletter"
	"github.com/benthos-danube/benthos-danube/tests/harness"
)

var (
	flagDuration   = flag.Duration("chaos.duration", 0, "load duration of the chaos soak (0 = skip unless CHAOS=1, which means 60s)")
	flagRate       = flag.Float64("chaos.rate", 200, "total publish rate, messages per second")
	flagSeed       = flag.Int64("chaos.seed", 1, "seed of the fault schedule")
	flagPublishers = flag.Int("chaos.publishers", 4, "number of MQTT publishers")
	flagDevices    = flag.Int("chaos.devices", 3, "devices per publisher")
	flagPartitions = flag.Int("chaos.partitions", 4, "partitions of the Danube topic")
	flagDrain      = flag.Duration("chaos.drain", 60*time.Second, "how long to wait for stragglers after the load stops")
	flagLogDir     = flag.String("chaos.logdir", "", "keep broker and bridge logs here (default: a temp dir)")
	flagReport     = flag.String("chaos.report", "", "also write the result table to this file")
)

const (
	danubeTopic = "/default/chaos"
	bridgeID    = "chaos-bridge"
)

type faultKind string

const (
	faultMQTTRestart   faultKind = "mqtt-broker-restart"
	faultDanubeRestart faultKind = "danube-restart"
	faultDanubeDown    faultKind = "danube-unavailable"
	faultDanubeSlow    faultKind = "danube-slow"
	faultBridgeKill    faultKind = "bridge-sigkill"
	faultBridgeTerm    faultKind = "bridge-sigterm"
)

var allKinds = []faultKind{faultMQTTRestart, faultDanubeRestart, faultDanubeDown, faultDanubeSlow, faultBridgeKill, faultBridgeTerm}

type plannedFault struct {
	kind    faultKind
	at      time.Duration // offset from the start of the load
	hold    time.Duration // outage/slowdown length
	latency time.Duration // for danube-slow
}

type faultResult struct {
	plannedFault
	start, end time.Time
	detail     string
	err        error
	recovery   time.Duration // to the next message accepted by Danube
	recovered  bool
	fresh      time.Duration // to the first message published after the fault ended
	freshOK    bool
	violations int // order violations within its window
}

// planFaults spreads faults over the load window: every kind once first (in a
// seeded random order), then more random kinds while they fit, with the slack
// distributed randomly between them.
func planFaults(rng *rand.Rand, d time.Duration) []plannedFault {
	short := d < 3*time.Minute
	warm, tail := 3*time.Second, 5*time.Second
	minGap, action := 4*time.Second, 2*time.Second
	if !short {
		warm, tail, minGap = 10*time.Second, 15*time.Second, 10*time.Second
	}
	mk := func(k faultKind) plannedFault {
		f := plannedFault{kind: k}
		switch k {
		case faultDanubeDown:
			f.hold = 10 * time.Second
			if !short {
				f.hold = time.Duration(10+rng.Intn(21)) * time.Second
			}
		case faultDanubeSlow:
			f.hold = 4 * time.Second
			if !short {
				f.hold = time.Duration(3+rng.Intn(8)) * time.Second
			}
			f.latency = time.Duration(50+rng.Intn(151)) * time.Millisecond
		}
		return f
	}
	cost := func(f plannedFault) time.Duration { return f.hold + action + minGap }
	var plan []plannedFault
	var used time.Duration
	for _, i := range rng.Perm(len(allKinds)) {
		f := mk(allKinds[i])
		plan = append(plan, f)
		used += cost(f)
	}
	avail := d - warm - tail
	if !short {
		// About one fault per 30 s on long runs.
		for used < avail {
			f := mk(allKinds[rng.Intn(len(allKinds))])
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
		plan[i].at = at
		at += cost(plan[i]) + time.Duration(float64(slack)*w[i]/sum/2) // ...half after
	}
	return plan
}

func TestChaosSoak(t *testing.T) {
	dur := *flagDuration
	if dur == 0 {
		if os.Getenv("CHAOS") != "1" {
			t.Skip("chaos soak: set CHAOS=1 or -chaos.duration to run")
		}
		dur = 60 * time.Second
	}
	if !harness.MosquittoAvailable() {
		t.Fatal("chaos soak needs mosquitto on PATH")
	}
	logDir := *flagLogDir
	if logDir == "" {
		logDir = t.TempDir()
	} else if err := os.MkdirAll(logDir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Logf("logs in %s", logDir)

	ctx, cancel := context.WithTimeout(context.Background(), dur+*flagDrain+5*time.Minute)
	defer cancel()

	bctx, bcancel := context.WithTimeout(ctx, 5*time.Minute)
	bin, err := harness.BuildBinary(bctx, t.TempDir())
	bcancel()
	if err != nil {
		t.Fatal(err)
	}

	// Danube test broker, owned by the test.
	srv, err := danubetest.NewServer()
	if err != nil {
		t.Fatalf("danube test broker: %v", err)
	}
	t.Cleanup(srv.Close)

	// Mosquitto with persistence.
	mqDir := t.TempDir()
	mq, err := harness.StartMosquitto(ctx, harness.MosquittoOptions{Dir: mqDir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		mq.Close()
		if logDir != "" {
			_ = copyFile(mq.LogPath(), logDir+"/mosquitto.log")
		}
	})

	httpPort, err := harness.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf(`http:
  enabled: true
  address: 127.0.0.1:%d
  debug_endpoints: true
logger:
  level: info
  format: logfmt
shutdown_timeout: 5s
input:
  mqtt:
    urls: [ %q ]
    client_id: %s
    clean_session: false
    keepalive: 5s
    connect_timeout: 3s
    topic_mappings:
      - mqtt_topic: chaos/+/data
        danube_topic: %s
        qos: 1
        partitions: %d
output:
  danube:
    url: %q
    send_timeout: 5s
`, httpPort, mq.URL(), bridgeID, danubeTopic, *flagPartitions, srv.URL())
	bridge, err := harness.NewBridge(bin, logDir, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(bridge.Close)

	// The witness: a persistent paho subscriber on the same filter, which
	// shows what the MQTT broker itself delivered.
	witness, err := harness.NewSubscriber(harness.SubscriberConfig{URL: mq.URL(), ClientID: "chaos-witness",
		Filter: "chaos/+/data", QoS: 1, Clean: false, Parse: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(witness.Close)

	if err := bridge.Start(); err != nil {
		t.Fatal(err)
	}
	// Wait until the bridge's session exists at the broker (its first
	// message arrives in Danube) before counting: publish a probe.
	ledger := harness.NewLedger()
	var pubs []*harness.Publisher
	for i := 0; i < *flagPublishers; i++ {
		var devs []string
		for j := 0; j < *flagDevices; j++ {
			devs = append(devs, fmt.Sprintf("p%dd%d", i, j))
		}
		p, err := harness.NewPublisher(harness.PublisherConfig{URL: mq.URL(), ClientID: fmt.Sprintf("chaos-pub-%d", i),
			Topic: func(dev string) string { return "chaos/" + dev + "/data" }, Devices: devs,
			Rate: *flagRate / float64(*flagPublishers), QoS: 1, Clean: false,
			RetryAfter: 60 * time.Second, MaxInFlight: 20000, Ledger: ledger})
		if err != nil {
			t.Fatal(err)
		}
		pubs = append(pubs, p)
	}
	t.Cleanup(func() {
		for _, p := range pubs {
			p.Close()
		}
	})
	if err := waitBridgeSession(ctx, mq, srv); err != nil {
		t.Fatalf("bridge never delivered a probe message: %v\nbridge log:\n%s", err, harness.TailFile(bridge.LogPath(), 4000))
	}
	probeCount := srv.TotalMessages()

	trackCtx, stopTrack := context.WithCancel(ctx)
	defer stopTrack()
	clocks := map[string]*harness.IndexClock{}
	for _, name := range partitionNames() {
		c := &harness.IndexClock{}
		clocks[name] = c
		go c.Follow(trackCtx, func(ctx context.Context, n int) error { return srv.WaitForMessages(ctx, name, n) },
			func() int { return srv.MessageCount(name) })
	}
	superCtx, stopSuper := context.WithCancel(ctx)
	defer stopSuper()
	go bridge.Supervise(superCtx)

	rng := rand.New(rand.NewSource(*flagSeed))
	plan := planFaults(rng, dur)
	for _, f := range plan {
		t.Logf("planned: %-20s at %5.1fs hold %v latency %v", f.kind, f.at.Seconds(), f.hold, f.latency)
	}

	// Load.
	loadStart := time.Now()
	loadCtx, stopLoad := context.WithDeadline(ctx, loadStart.Add(dur))
	defer stopLoad()
	var pubWG sync.WaitGroup
	for _, p := range pubs {
		pubWG.Add(1)
		go func() { defer pubWG.Done(); p.Run(loadCtx) }()
	}

	// Faults.
	results := runFaults(t, ctx, loadStart, plan, mq, srv, bridge)
	pubWG.Wait()
	loadEnd := time.Now()
	attempted, _, _ := ledger.Counts()
	t.Logf("load stopped after %v: %d ids published", loadEnd.Sub(loadStart).Round(time.Millisecond), attempted)

	// Drain: publishers finish their retries, then Danube catches up.
	drainCtx, drainCancel := context.WithTimeout(ctx, *flagDrain)
	defer drainCancel()
	for _, p := range pubs {
		p.Flush(drainCtx)
	}
	var rep report
	for {
		rep = analyse(srv, ledger, witness, nil, nil)
		_, acked, _ := ledger.Counts()
		if rep.missing == 0 && acked == attempted {
			break
		}
		select {
		case <-drainCtx.Done():
		case <-time.After(2 * time.Second):
			continue
		}
		break
	}
	drainTook := time.Since(loadEnd)
	stopSuper()
	if bridge.Running() {
		if _, forced, err := bridge.Stop(syscall.SIGTERM, 15*time.Second); err == nil && forced {
			t.Logf("final bridge SIGTERM did not finish in 15s")
		}
	}
	stopTrack()
	rep = analyse(srv, ledger, witness, clocks, results)
	rep.probe = probeCount
	rep.deadLettered = srv.MessageCount(deadletter.DefaultTopic)
	rep.duration, rep.rate, rep.seed = dur, *flagRate, *flagSeed
	rep.drain = drainTook
	rep.faults = results // analyse filled in the recovery times
	rep.peak = bridge.Peak()
	rep.starts = bridge.Starts()
	rep.unexpected = bridge.Unexpected()
	table := rep.table()
	fmt.Print(table)
	if *flagReport != "" {
		_ = os.WriteFile(*flagReport, []byte(table), 0o644)
	}

	// Verdict.
	if rep.missing > 0 {
		t.Errorf("%d published messages missing in Danube (%d of them also never reached the MQTT witness); first: %v",
			rep.missing, rep.missingAtBroker, rep.missingSample)
	}
	injected := map[faultKind]bool{}
	for _, r := range results {
		if r.err == nil && !r.end.IsZero() {
			injected[r.kind] = true
		} else if r.err != nil {
			t.Errorf("fault %s at %v failed: %v", r.kind, r.start.Sub(loadStart).Round(time.Millisecond), r.err)
		}
	}
	for _, k := range allKinds {
		if !injected[k] {
			t.Errorf("fault kind %s was not injected", k)
		}
	}
	for _, u := range rep.unexpected {
		t.Errorf("unexpected bridge exit: %s", u)
	}
	for _, l := range mq.PersistenceErrors() {
		t.Errorf("mosquitto persistence error: %s", l)
	}
	if rep.deadLettered > 0 {
		// Every fault here is transient: none may dead-letter a message.
		t.Errorf("%d messages were dead-lettered during transient faults; first reasons: %v", rep.deadLettered, deadLetterReasons(srv, 5))
	}
	if rep.unparsable > 0 {
		t.Errorf("%d messages in Danube had an unreadable payload", rep.unparsable)
	}
	if t.Failed() {
		t.Logf("latest bridge log tail:\n%s", harness.TailFile(bridge.LogPath(), 4000))
	}
}

// waitBridgeSession publishes probe messages until one arrives in Danube, so
// that the bridge's persistent session exists before the counted load.
func waitBridgeSession(ctx context.Context, mq *harness.Mosquitto, srv *danubetest.Server) error {
	p, err := harness.NewPublisher(harness.PublisherConfig{URL: mq.URL(), ClientID: "chaos-probe",
		Topic: func(string) string { return "chaos/probe/data" }, Devices: []string{"probe"}, QoS: 1, Clean: true,
		Rate: 5, Limit: 1000})
	if err != nil {
		return err
	}
	defer p.Close()
	ctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	pctx, stop := context.WithCancel(ctx)
	defer stop()
	go p.Run(pctx)
	for srv.TotalMessages() == 0 {
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for the first probe in Danube: %w", ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
	return nil
}

func runFaults(t *testing.T, ctx context.Context, loadStart time.Time, plan []plannedFault,
	mq *harness.Mosquitto, srv *danubetest.Server, bridge *harness.Bridge) []faultResult {
	var out []faultResult
	for _, f := range plan {
		at := loadStart.Add(f.at)
		if d := time.Until(at); d > 0 {
			select {
			case <-ctx.Done():
				return out
			case <-time.After(d):
			}
		}
		r := faultResult{plannedFault: f, start: time.Now()}
		switch f.kind {
		case faultMQTTRestart:
			r.err = mq.Restart(ctx)
		case faultDanubeRestart:
			srv.Restart()
		case faultDanubeDown:
			srv.Stop()
			time.Sleep(f.hold)
			r.err = srv.Start()
			r.detail = fmt.Sprintf("down %v", f.hold)
		case faultDanubeSlow:
			srv.SetLatency(f.latency)
			time.Sleep(f.hold)
			srv.SetLatency(0)
			r.detail = fmt.Sprintf("+%v for %v", f.latency, f.hold)
		case faultBridgeKill:
			_, _, r.err = bridge.Restart(syscall.SIGKILL, 5*time.Second)
		case faultBridgeTerm:
			took, forced, err := bridge.Restart(syscall.SIGTERM, 20*time.Second)
			r.err = err
			r.detail = fmt.Sprintf("exit took %v", took.Round(time.Millisecond))
			if forced {
				r.detail += " (forced)"
			}
		}
		r.end = time.Now()
		t.Logf("fault %-20s at %6.1fs took %v %s err=%v", f.kind, r.start.Sub(loadStart).Seconds(),
			r.end.Sub(r.start).Round(time.Millisecond), r.detail, r.err)
		out = append(out, r)
	}
	return out
}

type report struct {
	duration                        time.Duration
	rate                            float64
	seed                            int64
	probe                           int
	deadLettered                    int // records on the dead-letter topic
	attempted, published, retries   int
	deliveries, unique, unconfirmed int
	missing, missingAtBroker        int
	missingSample                   []string
	duplicated                      int
	orderViolations                 int
	inversions                      int
	steadyViolations                int
	witnessViolations               int
	splitDevices                    int
	unparsable, foreign             int
	drain                           time.Duration
	faults                          []faultResult
	peak                            harness.ProcMem
	starts                          int
	unexpected                      []string
}

// partitionNames lists the Danube topic names the bridge writes to.
func partitionNames() []string {
	if *flagPartitions == 0 {
		return []string{danubeTopic}
	}
	var out []string
	for i := 0; i < *flagPartitions; i++ {
		out = append(out, fmt.Sprintf("%s-part-%d", danubeTopic, i))
	}
	return out
}

// analyse compares Danube's logs with the ledger. With clocks and faults it
// also computes each fault's recovery times and classifies order violations
// as near a fault or in steady state.
func analyse(srv *danubetest.Server, ledger *harness.Ledger, witness *harness.Subscriber,
	clocks map[string]*harness.IndexClock, faults []faultResult) report {
	var rep report
	// nearFault returns the latest fault whose window (1 s before its start to
	// 15 s after its end) holds at, or nil.
	nearFault := func(at time.Time) *faultResult {
		var hit *faultResult
		for k := range faults {
			f := &faults[k]
			if !at.Before(f.start.Add(-time.Second)) && !at.After(f.end.Add(15*time.Second)) {
				hit = f
			}
		}
		return hit
	}
	entries := ledger.Snapshot()
	rep.attempted, rep.published, rep.retries = ledger.Counts()
	rep.witnessViolations = witness.OrderViolations()
	seen := map[string]int{}
	devPart := map[string]map[int]bool{}
	type delivery struct {
		seq int64
		at  time.Time
	}
	order := map[string][]delivery{} // partition/device → first deliveries in log order
	for _, topic := range srv.Topics() {
		if topic != danubeTopic && !strings.HasPrefix(topic, danubeTopic+"-part-") {
			continue
		}
		maxSeq := map[string]int64{}
		clock := clocks[topic]
		for i, m := range srv.Messages(topic) {
			p, err := harness.ParsePayload(m.Payload)
			if err != nil || p.ID == "" {
				rep.unparsable++
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
				for k := range faults {
					f := &faults[k]
					if f.end.IsZero() || !at.After(f.end) {
						continue
					}
					if d := at.Sub(f.end); !f.recovered || d < f.recovery {
						f.recovery, f.recovered = d, true
					}
					if p.TS > f.end.UnixNano() {
						if d := at.Sub(f.end); !f.freshOK || d < f.fresh {
							f.fresh, f.freshOK = d, true
						}
					}
				}
			}
			rep.deliveries++
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
				rep.inversions++
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
		for i, displaced := range harness.Displaced(seqs) {
			if !displaced {
				continue
			}
			rep.orderViolations++
			if at := ds[i].at; !at.IsZero() {
				if f := nearFault(at); f != nil {
					f.violations++
				} else {
					rep.steadyViolations++
				}
			}
		}
	}
	for _, parts := range devPart {
		if len(parts) > 1 {
			rep.splitDevices++
		}
	}
	for id, n := range seen {
		e, ok := entries[id]
		switch {
		case !ok:
			rep.foreign++
		case !e.Acked:
			rep.unconfirmed++
		}
		rep.unique++
		rep.duplicated += n - 1
	}
	var missing []string
	for id, e := range entries {
		if e.Acked && seen[id] == 0 {
			missing = append(missing, id)
			if !witness.Seen(id) {
				rep.missingAtBroker++
			}
		}
	}
	sort.Strings(missing)
	rep.missing = len(missing)
	if len(missing) > 10 {
		missing = missing[:10]
	}
	rep.missingSample = missing
	return rep
}

func (r report) table() string {
	var b strings.Builder
	w := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	w("\n=== chaos soak: duration %v, rate %.0f msg/s, seed %d ===\n", r.duration, r.rate, r.seed)
	w("%-34s %12s\n", "metric", "value")
	w("%-34s %12d\n", "published (PUBACKed ids)", r.published)
	w("%-34s %12d\n", "  ids attempted", r.attempted)
	w("%-34s %12d\n", "  publisher re-sends", r.retries)
	w("%-34s %12d\n", "delivered to Danube (unique ids)", r.unique)
	w("%-34s %12d\n", "  of them never PUBACKed", r.unconfirmed)
	w("%-34s %12d\n", "missing (must be 0)", r.missing)
	w("%-34s %12d\n", "  missing at the MQTT witness too", r.missingAtBroker)
	w("%-34s %12d\n", "dead-lettered (must be 0)", r.deadLettered)
	w("%-34s %12d\n", "duplicated deliveries", r.duplicated)
	w("%-34s %12d\n", "out-of-order messages (per device)", r.orderViolations)
	w("%-34s %12d\n", "  of them away from any fault", r.steadyViolations)
	w("%-34s %12d\n", "  at the MQTT witness (upstream)", r.witnessViolations)
	w("%-34s %12d\n", "  naive: behind an earlier max seq", r.inversions)
	w("%-34s %12d\n", "devices split across partitions", r.splitDevices)
	w("%-34s %12d\n", "unreadable / foreign payloads", r.unparsable+r.foreign)
	w("%-34s %12s\n", "drain after load stop", r.drain.Round(100*time.Millisecond))
	w("%-34s %12s\n", "bridge peak RSS (VmHWM)", harness.MiB(r.peak.HWM))
	w("%-34s %12d\n", "bridge processes started", r.starts)
	w("%-34s %12d\n", "unexpected bridge exits", len(r.unexpected))
	w("\n%-3s %-20s %8s %-28s %10s %10s %10s\n", "#", "fault", "at", "detail", "recovery", "fresh msg", "order viol")
	var start time.Time
	if len(r.faults) > 0 {
		start = r.faults[0].start.Add(-r.faults[0].at)
	}
	for i, f := range r.faults {
		rec, fresh := "none", "none"
		if f.recovered {
			rec = f.recovery.Round(time.Millisecond).String()
		}
		if f.freshOK {
			fresh = f.fresh.Round(time.Millisecond).String()
		}
		d := f.detail
		if f.err != nil {
			d = "ERROR: " + f.err.Error()
		}
		w("%-3d %-20s %7.1fs %-28s %10s %10s %10d\n", i+1, f.kind, f.start.Sub(start).Seconds(), d, rec, fresh, f.violations)
	}
	w("recovery = from the end of the fault to the next message accepted by Danube;\n")
	w("fresh msg = from the end of the fault to the first message published after it accepted by Danube\n")
	w("out-of-order = first deliveries of a device (in its partition) outside the longest in-order subsequence,\n")
	w("i.e. the fewest messages that would have to move; attributed to the fault whose window\n")
	w("[start-1s, end+15s] holds the arrival (order viol column)\n\n")
	return b.String()
}

// deadLetterReasons returns the reasons and errors of the first n
// dead-letter records.
func deadLetterReasons(srv *danubetest.Server, n int) []string {
	var out []string
	for _, m := range srv.Messages(deadletter.DefaultTopic) {
		if len(out) == n {
			break
		}
		out = append(out, m.Attributes[deadletter.Reason]+": "+m.Attributes[deadletter.Error])
	}
	return out
}

func copyFile(src, dst string) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return os.WriteFile(dst, b, 0o644)
}
