package bench

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/benthos-danube/benthos-danube/internal/danube"
	"github.com/benthos-danube/benthos-danube/internal/danube/danubetest"
	"github.com/benthos-danube/benthos-danube/tests/bench/commandload"
	"github.com/benthos-danube/benthos-danube/tests/harness"
)

// The downlink benchmark: config/danube-to-mqtt.yaml run by the real binary
// drains N commands that wait on a reliable Danube topic (the in-process
// test broker) to a private Mosquitto, at QoS 1 (each acknowledged to Danube
// after its PUBACK); beside it, in the same run and on the same broker, the
// raw paho publisher (./rawpub) publishes the same N payloads to the same
// topics at QoS 1 with 64 PUBLISHes in flight. An in-process subscriber
// (QoS 1, order checked per device) times the first and the last arrival;
// each process's CPU (utime+stime from /proc) is read at those two instants,
// so start-up is not counted.
//
//	BENCH=1 go test ./tests/bench -run TestDownlinkBenchmark -count=1 -v -timeout 10m
var (
	flagDownN      = flag.Int("bench.down.n", 20000, "downlink benchmark: commands per round")
	flagDownRounds = flag.Int("bench.down.rounds", 3, "downlink benchmark: rounds (the median is reported)")
	flagDownSize   = flag.Int("bench.down.size", 64, "downlink benchmark: payload bytes")
	flagDownWindow = flag.Int("bench.down.window", danubetest.DefaultMaxUnacked, "downlink benchmark: the Danube test broker's reliable in-flight window per subscription")
)

const downDevices = 25

// arrivals counts what an in-process QoS 1 subscriber receives on every
// device's command topic, with the time of the first and the last, and the
// per-device order violations.
type arrivals struct {
	mu          sync.Mutex
	n           int
	first, last time.Time
	next        map[string]int // per topic, the next expected index
	violations  int
}

func (a *arrivals) reset() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.n, a.first, a.last, a.next, a.violations = 0, time.Time{}, time.Time{}, map[string]int{}, 0
}

func (a *arrivals) handle(_ paho.Client, m paho.Message) {
	now := time.Now()
	var idx int
	fields := strings.Fields(string(m.Payload()))
	if len(fields) >= 2 {
		_, _ = fmt.Sscanf(fields[1], "%d", &idx)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.n == 0 {
		a.first = now
	}
	a.n++
	a.last = now
	if idx != a.next[m.Topic()] {
		a.violations++
	}
	a.next[m.Topic()] = idx + 1
}

func (a *arrivals) count() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.n
}

// downResult is one measured run of one process.
type downResult struct {
	n          int
	elapsed    time.Duration // first to last arrival
	cpu        time.Duration // of the process, between the two
	violations int
}

func (r downResult) rate() float64 { return float64(r.n-1) / r.elapsed.Seconds() }

func (r downResult) cpuPerMsg() float64 {
	return float64(r.cpu.Microseconds()) / float64(r.n-1)
}

// measure waits for n arrivals and reads pid's CPU at the first and at the
// last one.
func measure(ctx context.Context, a *arrivals, pid, n int) (downResult, error) {
	var cpu0 time.Duration
	got0 := false
	for {
		c := a.count()
		if c > 0 && !got0 {
			var err error
			if cpu0, err = harness.ReadProcCPU(pid); err != nil {
				return downResult{}, err
			}
			got0 = true
		}
		if c >= n {
			cpu1, err := harness.ReadProcCPU(pid)
			if err != nil {
				return downResult{}, err
			}
			a.mu.Lock()
			defer a.mu.Unlock()
			return downResult{n: a.n, elapsed: a.last.Sub(a.first), cpu: cpu1 - cpu0, violations: a.violations}, nil
		}
		select {
		case <-ctx.Done():
			return downResult{}, fmt.Errorf("%d of %d arrived: %w", c, n, ctx.Err())
		case <-time.After(2 * time.Millisecond):
		}
	}
}

func TestDownlinkBenchmark(t *testing.T) {
	if !*flagRun && os.Getenv("BENCH") != "1" {
		t.Skip("end-to-end benchmark: set BENCH=1 or -bench.e2e to run")
	}
	if !harness.MosquittoAvailable() {
		t.Skip("no mosquitto binary on PATH")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 9*time.Minute)
	defer cancel()
	dir := t.TempDir()
	bin, err := harness.BuildBinary(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	root, err := harness.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	rawpub, err := harness.Build(ctx, dir, "./tests/bench/rawpub")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := os.ReadFile(filepath.Join(root, "config", "danube-to-mqtt.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	mqDir := filepath.Join(dir, "mosquitto")
	if err := os.MkdirAll(mqDir, 0o755); err != nil {
		t.Fatal(err)
	}
	mq, err := harness.StartMosquitto(ctx, harness.MosquittoOptions{Dir: mqDir, Extra: downMosquittoExtra()})
	if err != nil {
		t.Fatal(err)
	}
	defer mq.Close()
	srv, err := danubetest.NewServer(danubetest.WithNamespaces("iot"), danubetest.WithLogger(slog.New(slog.DiscardHandler)), danubetest.WithMaxUnacked(*flagDownWindow))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()

	var a arrivals
	a.reset()
	filters := map[string]byte{}
	for _, p := range []string{"bridge", "raw"} {
		for d := 0; d < downDevices; d++ {
			filters[commandload.Topic(p, d)] = 1
		}
	}
	sub := paho.NewClient(paho.NewClientOptions().AddBroker(mq.URL()).SetClientID("bench-down-sub").
		SetCleanSession(true).SetOrderMatters(true))
	if tok := sub.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("subscriber: %v", tok.Error())
	}
	defer sub.Disconnect(100)
	if tok := sub.SubscribeMultiple(filters, a.handle); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}

	n := *flagDownN
	var bridgeRes, rawRes []downResult
	for round := 1; round <= *flagDownRounds; round++ {
		br, err := runBridgeRound(ctx, t, bin, string(cfg), dir, mq, srv, &a, round, n)
		if err != nil {
			t.Fatalf("round %d, bridge: %v", round, err)
		}
		rr, err := runRawRound(ctx, rawpub, mq, &a, round, n)
		if err != nil {
			t.Fatalf("round %d, raw paho: %v", round, err)
		}
		t.Logf("round %d: bridge %.0f msg/s %.1f µs CPU/msg (order violations %d) | raw paho %.0f msg/s %.1f µs CPU/msg (order violations %d) | ratio %.2f",
			round, br.rate(), br.cpuPerMsg(), br.violations, rr.rate(), rr.cpuPerMsg(), rr.violations, br.rate()/rr.rate())
		bridgeRes, rawRes = append(bridgeRes, br), append(rawRes, rr)
	}
	med := func(rs []downResult, f func(downResult) float64) float64 {
		v := make([]float64, len(rs))
		for i, r := range rs {
			v[i] = f(r)
		}
		sort.Float64s(v)
		return v[len(v)/2]
	}
	rate := func(r downResult) float64 { return r.rate() }
	cpu := func(r downResult) float64 { return r.cpuPerMsg() }
	var rs []float64
	for i := range bridgeRes {
		rs = append(rs, bridgeRes[i].rate()/rawRes[i].rate())
	}
	sort.Float64s(rs)
	var b strings.Builder
	fmt.Fprintf(&b, "Danube -> MQTT, QoS 1, %d commands of %d bytes to %d device topics, median of %d rounds:\n", n, *flagDownSize, downDevices, len(bridgeRes))
	fmt.Fprintf(&b, "  %-44s %10s %14s\n", "", "msg/s", "CPU µs/msg")
	fmt.Fprintf(&b, "  %-44s %10.0f %14.1f\n", "benthos-danube (danube input -> mqtt output)", med(bridgeRes, rate), med(bridgeRes, cpu))
	fmt.Fprintf(&b, "  %-44s %10.0f %14.1f\n", "raw paho publisher (64 in flight)", med(rawRes, rate), med(rawRes, cpu))
	fmt.Fprintf(&b, "  bridge/raw throughput ratio: %.2f (per round %.2f)\n", rs[len(rs)/2], rs)
	t.Log("\n" + b.String())
	if p := *flagReport; p != "" {
		if err := os.WriteFile(p, []byte(b.String()), 0o644); err != nil {
			t.Error(err)
		}
	}
}

// runBridgeRound subscribes the bridge to a fresh topic, stops it, fills
// the topic with n commands and starts the bridge again to drain it.
func runBridgeRound(ctx context.Context, t *testing.T, bin, cfg, dir string, mq *harness.Mosquitto, srv *danubetest.Server, a *arrivals, round, n int) (downResult, error) {
	topic := fmt.Sprintf("/iot/bench_down_%d", round)
	c, err := danube.NewClient(srv.URL())
	if err != nil {
		return downResult{}, err
	}
	defer c.Close()
	p, err := c.NewProducer(ctx, danube.ProducerConfig{Topic: topic, Name: "bench-commands", Dispatch: danube.DispatchReliable})
	if err != nil {
		return downResult{}, err
	}
	defer p.Close()
	logDir := filepath.Join(dir, fmt.Sprintf("bridge-round-%d", round))
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		return downResult{}, err
	}
	br, err := harness.NewBridge(bin, logDir, cfg)
	if err != nil {
		return downResult{}, err
	}
	br.Env = []string{"DANUBE_URL=" + srv.URL(), "DANUBE_COMMANDS_TOPIC=" + topic, "DANUBE_SUBSCRIPTION=bench",
		"MQTT_URL=" + mq.URL(), "MQTT_CLIENT_ID=bench-downlink", "HTTP_ENABLED=false", "DEAD_LETTER_SPOOL_DIR=" + logDir}
	if *flagDownProf != "" {
		br.Env = append(br.Env, "HTTP_ENABLED=true", "HTTP_DEBUG_ENDPOINTS=true", "HTTP_ADDRESS="+*flagDownProfAddr)
	}
	if err := br.Start(); err != nil {
		return downResult{}, err
	}
	defer br.Close()
	for {
		if _, _, ok := srv.Unacked(topic, "bench"); ok {
			break
		}
		if ctx.Err() != nil {
			return downResult{}, fmt.Errorf("the bridge did not subscribe: %s", harness.TailFile(br.LogPath(), 2000))
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, _, err := br.Stop(syscall.SIGTERM, 20*time.Second); err != nil {
		return downResult{}, err
	}
	for i := 0; i < n; i++ {
		d := i % downDevices
		m := danube.Message{Payload: commandload.Payload("bridge", d, i/downDevices, *flagDownSize),
			Attributes: map[string]string{"device_id": commandload.Device("bridge", d)}}
		if err := p.Send(ctx, m); err != nil {
			return downResult{}, err
		}
	}
	a.reset()
	if err := br.Start(); err != nil {
		return downResult{}, err
	}
	mctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	var prof chan error
	if *flagDownProf != "" && round == 1 {
		prof = make(chan error, 1)
		go func() {
			prof <- fetchProfile(mctx, "http://"+*flagDownProfAddr+"/debug/pprof/profile?seconds=2", *flagDownProf)
		}()
	}
	res, err := measure(mctx, a, br.PID(), n)
	if prof != nil {
		if perr := <-prof; perr != nil {
			t.Logf("profile: %v", perr)
		}
	}
	if err != nil {
		return res, fmt.Errorf("%w; bridge log:\n%s", err, harness.TailFile(br.LogPath(), 2000))
	}
	return res, nil
}

// fetchProfile saves a CPU profile of the bridge (its debug endpoints).
func fetchProfile(ctx context.Context, url, path string) error {
	for ctx.Err() == nil {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			time.Sleep(5 * time.Millisecond)
			continue
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			return err
		}
		return os.WriteFile(path, b, 0o644)
	}
	return ctx.Err()
}

// runRawRound runs rawpub on the same load.
func runRawRound(ctx context.Context, bin string, mq *harness.Mosquitto, a *arrivals, round, n int) (downResult, error) {
	a.reset()
	cmd := exec.CommandContext(ctx, bin, "-mqtt", mq.URL(), "-client-id", fmt.Sprintf("bench-rawpub-%d", round),
		"-n", fmt.Sprint(n), "-devices", fmt.Sprint(downDevices), "-prefix", "raw", "-size", fmt.Sprint(*flagDownSize), "-qos", "1", "-inflight", "64")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return downResult{}, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return downResult{}, err
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return downResult{}, err
	}
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	}()
	lines := bufio.NewReader(stdout)
	if l, err := lines.ReadString('\n'); err != nil || strings.TrimSpace(l) != "ready" {
		return downResult{}, fmt.Errorf("rawpub did not get ready: %q %v", l, err)
	}
	go func() { _, _ = io.Copy(io.Discard, lines) }()
	if _, err := io.WriteString(stdin, "go\n"); err != nil {
		return downResult{}, err
	}
	mctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	return measure(mctx, a, cmd.Process.Pid, n)
}

// flagDownNoDelay sets Mosquitto's set_tcp_nodelay: off by default, so the
// broker's small PUBACKs wait for Nagle's algorithm while the client's
// delayed ACK holds the previous segment.
var (
	flagDownProf     = flag.String("bench.down.prof", "", "downlink benchmark: write a 2 s CPU profile of the bridge in round 1 to this file")
	flagDownProfAddr = flag.String("bench.down.profaddr", "127.0.0.1:14196", "downlink benchmark: the bridge's HTTP address while profiling")
)

var flagDownNoDelay = flag.Bool("bench.down.nodelay", false, "downlink benchmark: Mosquitto set_tcp_nodelay true")

func downMosquittoExtra() []string {
	if *flagDownNoDelay {
		return []string{"set_tcp_nodelay true"}
	}
	return nil
}
