package bench

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/benthos-danube/benthos-danube/internal/danube"
	"github.com/benthos-danube/benthos-danube/internal/danube/danubetest"
	"github.com/benthos-danube/benthos-danube/tests/chaos/harness"
)

var (
	flagRun        = flag.Bool("bench.e2e", false, "run the end-to-end benchmark (or BENCH=1)")
	flagN          = flag.Int("bench.n", 50000, "messages per throughput phase")
	flagRounds     = flag.Int("bench.rounds", 3, "rounds of the throughput phases (the median is reported)")
	flagPublishers = flag.Int("bench.publishers", 4, "publishers")
	flagDevices    = flag.Int("bench.devices", 25, "devices (MQTT topics, hence Danube routing keys) per publisher")
	flagLatRate    = flag.Float64("bench.latrate", 1000, "rate of the latency phase, msg/s")
	flagLatDur     = flag.Duration("bench.latdur", 20*time.Second, "length of the latency phase")
	flagStallRate  = flag.Float64("bench.stallrate", 5000, "rate of the stall phase, msg/s")
	flagSteadyDur  = flag.Duration("bench.steadydur", 20*time.Second, "steady part of the stall phase")
	flagStallDur   = flag.Duration("bench.stalldur", 60*time.Second, "how long Danube stalls")
	flagInflight   = flag.Int("bench.inflight", 0, "mosquitto max_inflight_messages (0 = its default, 20)")
	flagProfDir    = flag.String("bench.profdir", "", "write a CPU profile of the bridge during a QoS 1 run here")
	flagReport     = flag.String("bench.report", "", "also write the result table to this file")
	flagLogDir     = flag.String("bench.logdir", "", "keep logs here")
	flagOnly       = flag.String("bench.only", "", `run only one part: "throughput" (skips latency and stall)`)
	flagProfQoS    = flag.Int("bench.profqos", 1, "QoS of the load while profiling")
	flagOutInFl    = flag.Int("bench.maxinflight", 64, "max_in_flight of the danube output")
	flagBridgeEnv  = flag.String("bench.bridgeenv", "", "extra environment of the bridge, comma separated (e.g. GOGC=400)")
)

type env struct {
	t        *testing.T
	ctx      context.Context
	mq       *harness.Mosquitto
	srv      *danubetest.Server
	bridge   *harness.Bridge
	httpPort int
	// bridge CPU time per delivered message (µs), per QoS, per round
	cpuPerMsg map[byte][]float64
}

func TestEndToEndBenchmark(t *testing.T) {
	if !*flagRun && os.Getenv("BENCH") != "1" {
		t.Skip("end-to-end benchmark: set BENCH=1 or -bench.e2e to run")
	}
	if !harness.MosquittoAvailable() {
		t.Fatal("the benchmark needs mosquitto on PATH")
	}
	logDir := *flagLogDir
	if logDir == "" {
		logDir = t.TempDir()
	} else if err := os.MkdirAll(logDir, 0o755); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	bctx, bcancel := context.WithTimeout(ctx, 5*time.Minute)
	bin, err := harness.BuildBinary(bctx, t.TempDir())
	bcancel()
	if err != nil {
		t.Fatal(err)
	}
	srv, err := danubetest.NewServer()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	mq, err := harness.StartMosquitto(ctx, harness.MosquittoOptions{Dir: t.TempDir(), MaxInflight: *flagInflight})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(mq.Close)
	httpPort, err := harness.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf(`http:
  enabled: true
  address: 127.0.0.1:%d
  debug_endpoints: true
logger:
  level: warn
  format: logfmt
shutdown_timeout: 5s
input:
  mqtt:
    urls: [ %q ]
    client_id: bench-bridge
    clean_session: false
    keepalive: 10s
    topic_mappings:
      - { mqtt_topic: "bench/q0/+", danube_topic: /default/tp_q0, qos: 0 }
      - { mqtt_topic: "bench/q1/+", danube_topic: /default/tp_q1, qos: 1 }
      - { mqtt_topic: "bench/prof/+", danube_topic: /default/prof, qos: %d }
      - { mqtt_topic: "bench/lat/+", danube_topic: /default/lat, qos: 1 }
      - { mqtt_topic: "bench/stall/+", danube_topic: /default/stall, qos: 1 }
output:
  danube:
    url: %q
    max_in_flight: %d
`, httpPort, mq.URL(), *flagProfQoS, srv.URL(), *flagOutInFl)
	bridge, err := harness.NewBridge(bin, logDir, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(bridge.Close)
	if *flagBridgeEnv != "" {
		bridge.Env = strings.Split(*flagBridgeEnv, ",")
	}
	if err := bridge.Start(); err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, ctx: ctx, mq: mq, srv: srv, bridge: bridge, httpPort: httpPort, cpuPerMsg: map[byte][]float64{}}
	if err := e.waitReady(); err != nil {
		t.Fatalf("bridge not ready: %v\n%s", err, harness.TailFile(bridge.LogPath(), 3000))
	}

	var rows []string
	row := func(format string, a ...any) { rows = append(rows, fmt.Sprintf(format, a...)) }
	row("%-36s %12s %12s %8s %8s %6s", "measure", "raw paho", "bridge", "ratio", "goal", "result")

	// (a) throughput, side by side, median of rounds.
	for _, qos := range []byte{0, 1} {
		var raws, brs, pubs []float64
		var rawFrac, brFrac []float64
		for r := 0; r < *flagRounds; r++ {
			rr, rf, pr := e.rawThroughput(qos, r)
			br, bf, _ := e.bridgeThroughput(qos, r)
			raws, brs, pubs = append(raws, rr), append(brs, br), append(pubs, pr)
			rawFrac, brFrac = append(rawFrac, rf), append(brFrac, bf)
			t.Logf("round %d QoS %d: raw %.0f msg/s (%.1f%% delivered), bridge %.0f msg/s (%.1f%%), publisher %.0f msg/s",
				r, qos, rr, rf*100, br, bf*100, pr)
		}
		raw, br := median(raws), median(brs)
		goal := 0.7
		if qos == 1 {
			goal = 0.5
		}
		ratio := br / raw
		row("%-36s %12.0f %12.0f %8.2f %8s %6s", fmt.Sprintf("throughput QoS %d (msg/s)", qos), raw, br, ratio,
			fmt.Sprintf(">=%.1f", goal), passMiss(ratio >= goal))
		row("%-36s %11.1f%% %11.1f%% %8s %8s %6s", fmt.Sprintf("  delivered QoS %d", qos), median(rawFrac)*100, median(brFrac)*100, "", "", "")
		row("%-36s %12.0f %12s", fmt.Sprintf("  publisher rate QoS %d (msg/s)", qos), median(pubs), "")
		row("%-36s %12s %12.1f", fmt.Sprintf("  bridge CPU per message QoS %d (µs)", qos), "", median(e.cpuPerMsg[qos]))
	}
	if *flagProfDir != "" {
		e.profile(bin)
	}
	// The Danube side's own ceiling: the client alone, max_in_flight sends
	// in flight, against the same test broker (one unary RPC per message).
	cl := e.clientCeiling(*flagOutInFl)
	row("%-36s %12s %12.0f", fmt.Sprintf("  Danube client alone, %d in flight", *flagOutInFl), "", cl)

	if *flagOnly == "throughput" {
		e.print(rows)
		return
	}

	// (b) latency at 1,000 msg/s, (c) RSS at steady state.
	lat := e.latency()
	row("%-36s %12s %12s %8s %8s %6s", "latency p50 publish->Danube ack", lat.rawP50.Round(10*time.Microsecond), lat.p50.Round(10*time.Microsecond), "", "", "")
	row("%-36s %12s %12s %8s %8s %6s", "latency p99", lat.rawP99.Round(10*time.Microsecond), lat.p99.Round(10*time.Microsecond), "", "", "")
	row("%-36s %12s %12d", "  samples", "", lat.n)
	row("%-36s %12s %12s", fmt.Sprintf("RSS steady @%.0f msg/s QoS 1", *flagLatRate), "", harness.MiB(lat.rss))

	st := e.stall()
	row("%-36s %12s %12s", fmt.Sprintf("RSS steady @%.0f msg/s QoS 1", *flagStallRate), "", harness.MiB(st.steadyRSS))
	bounded := st.peakRSS <= max(2*st.steadyRSS, st.steadyRSS+64<<20) && st.growthLastHalf < 16<<20
	row("%-36s %12s %12s %8s %8s %6s", fmt.Sprintf("RSS peak, Danube stalled %v", *flagStallDur), "", harness.MiB(st.peakRSS), "", "bounded", passMiss(bounded))
	row("%-36s %12s %12s", "  RSS growth, 2nd half of stall", "", harness.MiB(st.growthLastHalf))
	row("%-36s %12s %12d", "  published during stall phase", "", st.published)
	row("%-36s %12s %12s %8s %8s %6s", "  backlog drained after stall", "", st.drain.Round(100*time.Millisecond).String(), "", "0 miss", passMiss(st.missing == 0))
	row("%-36s %12s %12s", "  missing / duplicated", "", fmt.Sprintf("%d / %d", st.missing, st.duplicated))
	row("%-36s %12s %12d %8s %8s %6s", "  bridge MQTT disconnects in stall", "", st.disconnects, "", "0", passMiss(st.disconnects == 0))

	e.print(rows)
}

func (e *env) print(rows []string) {
	table := fmt.Sprintf("\n=== end-to-end benchmark: mosquitto %s, max_inflight %s, %d msgs/phase, %d publishers x %d devices, median of %d rounds ===\n%s\n",
		e.mq.Addr(), inflightText(), *flagN, *flagPublishers, *flagDevices, *flagRounds, strings.Join(rows, "\n"))
	fmt.Print(table)
	if *flagReport != "" {
		_ = os.WriteFile(*flagReport, []byte(table), 0o644)
	}
	if u := e.bridge.Unexpected(); len(u) > 0 {
		e.t.Errorf("bridge exited on its own: %v", u)
	}
}

// devices names the devices of one publisher.
func devices(prefix string) []string {
	var out []string
	for j := 0; j < max(1, *flagDevices); j++ {
		out = append(out, fmt.Sprintf("%sd%d", prefix, j))
	}
	return out
}

func inflightText() string {
	if *flagInflight == 0 {
		return "20 (default)"
	}
	return fmt.Sprint(*flagInflight)
}

func passMiss(ok bool) string {
	if ok {
		return "pass"
	}
	return "MISS"
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	sort.Float64s(s)
	return s[len(s)/2]
}

// waitReady publishes probes on the latency mapping until one reaches Danube.
func (e *env) waitReady() error {
	ctx, cancel := context.WithTimeout(e.ctx, 90*time.Second)
	defer cancel()
	pp, err := harness.NewPublisher(harness.PublisherConfig{URL: e.mq.URL(), ClientID: "bench-probe2",
		Topic: func(string) string { return "bench/prof/probe" }, Devices: []string{"probe"}, QoS: 1, Clean: true, Rate: 10})
	if err != nil {
		return err
	}
	defer pp.Close()
	go pp.Run(ctx)
	for e.srv.MessageCount("/default/prof") == 0 {
		select {
		case <-ctx.Done():
			return fmt.Errorf("no probe reached Danube: %w", ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
	return nil
}

// publishN publishes n messages as fast as possible over the publishers and
// returns the publish rate (until the last token completed).
func (e *env) publishN(topicPrefix string, qos byte, n int, idPrefix string) float64 {
	k := *flagPublishers
	var wg sync.WaitGroup
	start := time.Now()
	for i := 0; i < k; i++ {
		lim := n / k
		if i == 0 {
			lim += n % k
		}
		p, err := harness.NewPublisher(harness.PublisherConfig{URL: e.mq.URL(), ClientID: fmt.Sprintf("%s-pub-%d", idPrefix, i),
			Topic: func(dev string) string { return topicPrefix + dev }, Devices: devices(fmt.Sprintf("%s%d", idPrefix, i)),
			QoS: qos, Clean: true, MaxInFlight: 1000, Limit: int64(lim)})
		if err != nil {
			e.t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.Run(e.ctx)
			fctx, cancel := context.WithTimeout(e.ctx, 60*time.Second)
			p.Flush(fctx)
			cancel()
			p.Close()
		}()
	}
	wg.Wait()
	return float64(n) / time.Since(start).Seconds()
}

// rawThroughput: a paho subscriber (auto ack) receives n messages.
func (e *env) rawThroughput(qos byte, round int) (rate, frac, pubRate float64) {
	id := fmt.Sprintf("rawq%dr%d", qos, round)
	sub, err := harness.NewSubscriber(harness.SubscriberConfig{URL: e.mq.URL(), ClientID: id + "-sub",
		Filter: fmt.Sprintf("raw/%s/+", id), QoS: qos, Clean: true})
	if err != nil {
		e.t.Fatal(err)
	}
	defer sub.Close()
	pubRate = e.publishN(fmt.Sprintf("raw/%s/", id), qos, *flagN, id)
	waitStable(e.ctx, func() int { return int(sub.Count()) }, *flagN, 5*time.Second)
	first, last := sub.Window()
	n := sub.Count()
	return float64(n) / last.Sub(first).Seconds(), float64(n) / float64(*flagN), pubRate
}

// bridgeThroughput: the same load through the bridge into Danube.
func (e *env) bridgeThroughput(qos byte, round int) (rate, frac, pubRate float64) {
	topic := fmt.Sprintf("/default/tp_q%d", qos)
	base := e.srv.MessageCount(topic)
	var clock harness.IndexClock
	cctx, cancel := context.WithCancel(e.ctx)
	defer cancel()
	go clock.Follow(cctx, func(ctx context.Context, n int) error { return e.srv.WaitForMessages(ctx, topic, n) },
		func() int { return e.srv.MessageCount(topic) })
	time.Sleep(50 * time.Millisecond)
	id := fmt.Sprintf("brq%dr%d", qos, round)
	cpu0, _ := harness.ReadProcCPU(e.bridge.PID())
	pubRate = e.publishN(fmt.Sprintf("bench/q%d/", qos), qos, *flagN, id)
	waitStable(e.ctx, func() int { return e.srv.MessageCount(topic) - base }, *flagN, 5*time.Second)
	cancel()
	cpu1, _ := harness.ReadProcCPU(e.bridge.PID())
	first, _ := clock.At(base)
	_, last, n := clock.Window()
	got := n - base
	if got > 0 {
		e.cpuPerMsg[qos] = append(e.cpuPerMsg[qos], float64(cpu1-cpu0)/float64(time.Microsecond)/float64(got))
	}
	return float64(got) / last.Sub(first).Seconds(), float64(got) / float64(*flagN), pubRate
}

// waitStable waits until count reaches want or stops moving for quiet.
func waitStable(ctx context.Context, count func() int, want int, quiet time.Duration) {
	last, since := -1, time.Now()
	for {
		n := count()
		if n >= want {
			return
		}
		if n != last {
			last, since = n, time.Now()
		} else if time.Since(since) > quiet {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(20 * time.Millisecond):
		}
	}
}

type latResult struct {
	p50, p99, rawP50, rawP99 time.Duration
	n                        int
	rss                      int64
}

// latency publishes at flagLatRate for flagLatDur and measures publish ->
// accepted by Danube (raw: publish -> received by a paho subscriber).
func (e *env) latency() latResult {
	const topic = "/default/lat"
	base := e.srv.MessageCount(topic)
	var clock harness.IndexClock
	cctx, cancel := context.WithCancel(e.ctx)
	defer cancel()
	go clock.Follow(cctx, func(ctx context.Context, n int) error { return e.srv.WaitForMessages(ctx, topic, n) },
		func() int { return e.srv.MessageCount(topic) })
	sub, err := harness.NewSubscriber(harness.SubscriberConfig{URL: e.mq.URL(), ClientID: "lat-raw",
		Filter: "bench/lat/+", QoS: 1, Clean: true, Parse: true})
	if err != nil {
		e.t.Fatal(err)
	}
	defer sub.Close()
	p, err := harness.NewPublisher(harness.PublisherConfig{URL: e.mq.URL(), ClientID: "lat-pub",
		Topic: func(dev string) string { return "bench/lat/" + dev }, Devices: []string{"lat"},
		QoS: 1, Clean: true, Rate: *flagLatRate})
	if err != nil {
		e.t.Fatal(err)
	}
	var rss int64
	sctx, stopS := context.WithCancel(e.ctx)
	go func() {
		for {
			if m, err := harness.ReadProcMem(e.bridge.PID()); err == nil && m.RSS > rss {
				rss = m.RSS
			}
			select {
			case <-sctx.Done():
				return
			case <-time.After(250 * time.Millisecond):
			}
		}
	}()
	lctx, stop := context.WithTimeout(e.ctx, *flagLatDur)
	p.Run(lctx)
	stop()
	want := int(p.Sent())
	waitStable(e.ctx, func() int { return e.srv.MessageCount(topic) - base }, want, 10*time.Second)
	stopS()
	p.Close()
	var lats []time.Duration
	for i, m := range e.srv.Messages(topic) {
		if i < base {
			continue
		}
		pl, err := harness.ParsePayload(m.Payload)
		if err != nil || pl.TS == 0 {
			continue
		}
		at, ok := clock.At(i)
		if !ok {
			continue
		}
		lats = append(lats, at.Sub(time.Unix(0, pl.TS)))
	}
	slices.Sort(lats)
	raw := sub.Latencies()
	return latResult{p50: harness.Percentile(lats, 50), p99: harness.Percentile(lats, 99),
		rawP50: harness.Percentile(raw, 50), rawP99: harness.Percentile(raw, 99), n: len(lats), rss: rss}
}

type stallResult struct {
	steadyRSS, peakRSS, growthLastHalf int64
	published                          int
	missing, duplicated                int
	drain                              time.Duration
	disconnects                        int
}

// stall runs flagStallRate msg/s at QoS 1; after flagSteadyDur Danube stalls
// (every RPC hangs) for flagStallDur while the load goes on; then it recovers
// and the backlog drains.
func (e *env) stall() stallResult {
	const topic = "/default/stall"
	var res stallResult
	ledger := harness.NewLedger()
	k := *flagPublishers
	var pubs []*harness.Publisher
	for i := 0; i < k; i++ {
		p, err := harness.NewPublisher(harness.PublisherConfig{URL: e.mq.URL(), ClientID: fmt.Sprintf("stall-pub-%d", i),
			Topic: func(dev string) string { return "bench/stall/" + dev }, Devices: devices(fmt.Sprintf("s%d", i)),
			QoS: 1, Clean: true, Rate: *flagStallRate / float64(k), MaxInFlight: 5000, Ledger: ledger})
		if err != nil {
			e.t.Fatal(err)
		}
		pubs = append(pubs, p)
	}
	type sample struct {
		at  time.Time
		rss int64
	}
	var mu sync.Mutex
	var samples []sample
	sctx, stopS := context.WithCancel(e.ctx)
	defer stopS()
	go func() {
		for {
			if m, err := harness.ReadProcMem(e.bridge.PID()); err == nil {
				mu.Lock()
				samples = append(samples, sample{time.Now(), m.RSS})
				mu.Unlock()
			}
			select {
			case <-sctx.Done():
				return
			case <-time.After(250 * time.Millisecond):
			}
		}
	}()
	logBefore := countBridgeDisconnects(e.mq.LogPath())
	lctx, stopLoad := context.WithCancel(e.ctx)
	var wg sync.WaitGroup
	for _, p := range pubs {
		wg.Add(1)
		go func() { defer wg.Done(); p.Run(lctx) }()
	}
	steadyStart := time.Now()
	time.Sleep(*flagSteadyDur)
	stallStart := time.Now()
	e.srv.SetLatency(time.Hour)
	time.Sleep(*flagStallDur)
	stallEnd := time.Now()
	stopLoad()
	wg.Wait()
	e.srv.SetLatency(0)
	dctx, cancel := context.WithTimeout(e.ctx, 3*time.Minute)
	defer cancel()
	for _, p := range pubs {
		p.Flush(dctx)
	}
	_, acked, _ := ledger.Counts()
	res.published = acked
	// Counting is cheap, parsing is not: wait for the count first, then
	// check unique ids now and then (duplicates inflate the count).
	lastCheck := time.Time{}
	waitStable(dctx, func() int {
		n := e.srv.MessageCount(topic)
		if n < acked || time.Since(lastCheck) < 5*time.Second {
			return min(n, acked-1)
		}
		lastCheck = time.Now()
		return uniqueIDs(e.srv, topic)
	}, acked, 30*time.Second)
	res.drain = time.Since(stallEnd)
	stopS()
	for _, p := range pubs {
		p.Close()
	}
	res.disconnects = countBridgeDisconnects(e.mq.LogPath()) - logBefore
	mu.Lock()
	half := stallStart.Add(*flagStallDur / 2)
	var atHalf int64
	for _, s := range samples {
		switch {
		case s.at.After(steadyStart.Add(*flagSteadyDur/4)) && s.at.Before(stallStart):
			res.steadyRSS = max(res.steadyRSS, s.rss)
		case !s.at.Before(stallStart) && !s.at.After(stallEnd):
			res.peakRSS = max(res.peakRSS, s.rss)
			if !s.at.After(half) {
				atHalf = max(atHalf, s.rss)
			} else if g := s.rss - atHalf; g > res.growthLastHalf {
				res.growthLastHalf = g
			}
		}
	}
	mu.Unlock()
	seen := map[string]int{}
	for _, m := range e.srv.Messages(topic) {
		if pl, err := harness.ParsePayload(m.Payload); err == nil {
			seen[pl.ID]++
		}
	}
	for id, en := range ledger.Snapshot() {
		if en.Acked && seen[id] == 0 {
			res.missing++
		}
	}
	for _, n := range seen {
		res.duplicated += n - 1
	}
	return res
}

func uniqueIDs(srv *danubetest.Server, topic string) int {
	seen := map[string]struct{}{}
	for _, m := range srv.Messages(topic) {
		if pl, err := harness.ParsePayload(m.Payload); err == nil {
			seen[pl.ID] = struct{}{}
		}
	}
	return len(seen)
}

// countBridgeDisconnects counts Mosquitto log lines about the bridge's
// client going away (disconnects, keepalive timeouts).
func countBridgeDisconnects(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	n := 0
	for _, l := range strings.Split(string(b), "\n") {
		if strings.Contains(l, "bench-bridge") && (strings.Contains(l, "disconnect") || strings.Contains(l, "timeout") ||
			strings.Contains(l, "closing")) {
			n++
		}
	}
	return n
}

// profile captures a 10 s CPU profile of the bridge under a QoS 1 load.
func (e *env) profile(bin string) {
	dir := *flagProfDir
	if err := os.MkdirAll(dir, 0o755); err != nil {
		e.t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		url := fmt.Sprintf("http://127.0.0.1:%d/debug/pprof/profile?seconds=10", e.httpPort)
		resp, err := http.Get(url)
		if err != nil {
			e.t.Logf("pprof: %v", err)
			return
		}
		defer resp.Body.Close()
		f, err := os.Create(filepath.Join(dir, fmt.Sprintf("bridge-qos%d.pprof", *flagProfQoS)))
		if err != nil {
			e.t.Logf("pprof: %v", err)
			return
		}
		defer f.Close()
		_, _ = io.Copy(f, resp.Body)
	}()
	fetch := func(path, file string) {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d%s", e.httpPort, path))
		if err != nil {
			e.t.Logf("pprof %s: %v", path, err)
			return
		}
		defer resp.Body.Close()
		f, err := os.Create(filepath.Join(dir, file))
		if err != nil {
			return
		}
		defer f.Close()
		_, _ = io.Copy(f, resp.Body)
	}
	go func() {
		time.Sleep(4 * time.Second)
		fetch("/debug/pprof/goroutine?debug=1", "goroutines.txt")
		fetch("/debug/pprof/trace?seconds=2", "bridge.trace")
	}()
	pctx, cancel := context.WithTimeout(e.ctx, 10*time.Second)
	var wg sync.WaitGroup
	for i := 0; i < *flagPublishers; i++ {
		p, err := harness.NewPublisher(harness.PublisherConfig{URL: e.mq.URL(), ClientID: fmt.Sprintf("prof-pub-%d", i),
			Topic: func(dev string) string { return "bench/prof/" + dev }, Devices: devices(fmt.Sprintf("pr%d", i)),
			QoS: byte(*flagProfQoS), Clean: true, MaxInFlight: 1000})
		if err != nil {
			e.t.Fatal(err)
		}
		wg.Add(1)
		go func() { defer wg.Done(); p.Run(pctx); p.Close() }()
	}
	wg.Wait()
	cancel()
	<-done
	// Let the backlog drain before the next phase.
	waitStable(e.ctx, func() int { return e.srv.MessageCount("/default/prof") }, 1<<30, 3*time.Second)
	_ = os.WriteFile(filepath.Join(dir, "binary-path.txt"), []byte(bin+"\n"), 0o644)
	e.t.Logf("CPU profile in %s (go tool pprof -top %s)", dir, filepath.Join(dir, fmt.Sprintf("bridge-qos%d.pprof", *flagProfQoS)))
}

// clientCeiling sends flagN messages with the Danube client alone, inFlight
// at a time, and returns the rate: the most the output could reach here.
func (e *env) clientCeiling(inFlight int) float64 {
	c, err := danube.NewClient(e.srv.URL())
	if err != nil {
		e.t.Fatal(err)
	}
	defer c.Close()
	p, err := c.NewProducer(e.ctx, danube.ProducerConfig{Topic: "/default/client_ceiling", Name: "bench-client"})
	if err != nil {
		e.t.Fatal(err)
	}
	defer p.Close()
	body := []byte(`{"id":"c0d0-00000001","dev":"c0d0","seq":1,"ts":1795730000000000000}`)
	var mu sync.Mutex
	next := 0
	var wg sync.WaitGroup
	start := time.Now()
	for range inFlight {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				mu.Lock()
				next++
				i := next
				mu.Unlock()
				if i > *flagN {
					return
				}
				if err := p.Send(e.ctx, danube.Message{Payload: body, Key: fmt.Sprintf("k%d", i%100)}); err != nil {
					e.t.Errorf("client send: %v", err)
					return
				}
			}
		}()
	}
	wg.Wait()
	return float64(*flagN) / time.Since(start).Seconds()
}
