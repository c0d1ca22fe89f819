package danubein

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/benthos-danube/benthos-danube/internal/danube"
)

// BenchmarkInputVsRawClient compares, in one run and against the same test
// broker, the `danube` input feeding a `drop` output with our raw client
// Consumer (receive, then ack in a goroutine, max_unacked acks in flight).
// Both consume the same backlog of b.N reliable 256-byte messages on their
// own subscription, so the broker's work per message is the same.
//
// The broker runs in its own process (cmd/danube-testbroker, built by the
// benchmark), so its CPU per message is read from /proc/<pid>/stat; the
// consumer side's CPU per message is this process's (getrusage).
//
//	go test -run '^$' -bench InputVsRawClient -benchtime 60000x -count 3 ./input/danube/
//
// DANUBE_TESTBROKER_BIN=<binary> runs another build of the test broker (for
// example the one before a broker change) instead of building this one.
//
// Reported: raw_msgs/s and input_msgs/s, ratio (input ÷ raw; goal ≥ 0.8),
// and for each side broker_us/msg and client_us/msg. The sub-benchmarks use
// Danube's default window of 10 unacked messages per subscription and a
// window of 1000, where the consumer side limits.
func BenchmarkInputVsRawClient(b *testing.B) {
	bin := buildTestBroker(b)
	for _, window := range []int{10, 1000} {
		b.Run(fmt.Sprintf("window_%d", window), func(b *testing.B) {
			br := startBroker(b, bin, "-max-unacked", strconv.Itoa(window))
			topic := fmt.Sprintf("/default/bench-%d-%d", window, b.N)
			c, err := danube.NewClient(br.url)
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			preload(b, c, topic, b.N, "raw", "input")

			// Two rounds, raw then input, each on half the backlog, so a
			// drift of the shared machine's load hits both sides alike.
			b.ResetTimer()
			var raw, in result
			for round := range 2 {
				n := b.N / 2
				if round == 1 {
					n = b.N - raw.n
				}
				raw.add(measure(b, br, func() int { return consumeRaw(b, c, topic, "raw", n) }))
				n = b.N / 2
				if round == 1 { // the rest: the first stream may have acked a few more while stopping
					n = b.N - in.n
				}
				in.add(measure(b, br, func() int { return consumeInput(b, br.url, topic, "input", n) }))
			}
			b.StopTimer()
			raw.finish()
			in.finish()

			b.ReportMetric(raw.rate, "raw_msgs/s")
			b.ReportMetric(in.rate, "input_msgs/s")
			b.ReportMetric(in.rate/raw.rate, "ratio")
			b.ReportMetric(raw.brokerUS, "raw_broker_us/msg")
			b.ReportMetric(in.brokerUS, "input_broker_us/msg")
			b.ReportMetric(raw.clientUS, "raw_client_us/msg")
			b.ReportMetric(in.clientUS, "input_client_us/msg")
		})
	}
}

const benchMaxUnacked = 256

// result sums the phases of one side, then (finish) turns them into rates.
type result struct {
	n                        int
	elapsed, broker, self    time.Duration
	rate, brokerUS, clientUS float64
}

func (r *result) add(p result) {
	r.n += p.n
	r.elapsed += p.elapsed
	r.broker += p.broker
	r.self += p.self
}

func (r *result) finish() {
	r.rate = float64(r.n) / r.elapsed.Seconds()
	r.brokerUS = float64(r.broker.Microseconds()) / float64(r.n)
	r.clientUS = float64(r.self.Microseconds()) / float64(r.n)
}

// measure runs run, which returns how many messages it consumed.
func measure(b *testing.B, br *broker, run func() int) result {
	b.Helper()
	bc0, cc0 := br.cpu(b), selfCPU(b)
	start := time.Now()
	n := run()
	return result{n: n, elapsed: time.Since(start), broker: br.cpu(b) - bc0, self: selfCPU(b) - cc0}
}

// preload creates the subscriptions (a new subscription starts at the
// tail), leaves them without consumers, and fills the topic with n messages.
func preload(b *testing.B, c *danube.Client, topic string, n int, subs ...string) {
	b.Helper()
	ctx := context.Background()
	p, err := c.NewProducer(ctx, danube.ProducerConfig{Topic: topic, Name: "bench", Dispatch: danube.DispatchReliable})
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	for _, s := range subs {
		co, err := c.Subscribe(ctx, danube.ConsumerConfig{Topic: topic, Subscription: s, Name: "bench", Type: danube.SubExclusive})
		if err != nil {
			b.Fatal(err)
		}
		_ = co.Close()
	}
	payload := make([]byte, 256)
	var next atomic.Int64
	var wg sync.WaitGroup
	var failed atomic.Value
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(n) {
				if err := p.Send(ctx, danube.Message{Payload: payload}); err != nil {
					failed.Store(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if err, _ := failed.Load().(error); err != nil {
		b.Fatal(err)
	}
}

// consumeRaw is the baseline: the client Consumer, each message acked in a
// goroutine, at most benchMaxUnacked acks outstanding.
func consumeRaw(b *testing.B, c *danube.Client, topic, sub string, n int) int {
	b.Helper()
	ctx := context.Background()
	co, err := c.Subscribe(ctx, danube.ConsumerConfig{Topic: topic, Subscription: sub, Name: "bench", Type: danube.SubExclusive, Buffer: benchMaxUnacked})
	if err != nil {
		b.Fatal(err)
	}
	defer co.Close()
	sem := make(chan struct{}, benchMaxUnacked)
	var wg sync.WaitGroup
	var failed atomic.Value
	for range n {
		m, err := co.Receive(ctx)
		if err != nil {
			b.Fatal(err)
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := co.Ack(ctx, m); err != nil {
				failed.Store(err)
			}
			<-sem
		}()
	}
	wg.Wait()
	if err, _ := failed.Load().(error); err != nil {
		b.Fatal(err)
	}
	return n
}

// consumeInput runs `danube` → `drop` until the input has acked n messages
// to Danube, and returns how many it acked (a stopping stream acks what is
// in flight, a few more than n).
func consumeInput(b *testing.B, url, topic, sub string, n int) int {
	b.Helper()
	env := service.NewEnvironment()
	var mu sync.Mutex
	var in *input
	if err := env.RegisterBatchInput(InputName, Spec(), func(conf *service.ParsedConfig, mgr *service.Resources) (service.BatchInput, error) {
		i, err := newInput(conf, mgr)
		mu.Lock()
		in = i
		mu.Unlock()
		return i, err
	}); err != nil {
		b.Fatal(err)
	}
	sb := env.NewStreamBuilder()
	if err := sb.SetYAML(fmt.Sprintf(`
input:
  danube:
    url: %s
    topics: [ %s ]
    subscription: %s
    subscription_type: exclusive
    consumer_name: bench
    max_unacked: %d
output:
  drop: {}
logger:
  level: none
`, url, topic, sub, benchMaxUnacked)); err != nil {
		b.Fatal(err)
	}
	strm, err := sb.Build()
	if err != nil {
		b.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- strm.Run(context.Background()) }()
	deadline := time.Now().Add(5 * time.Minute)
	for {
		mu.Lock()
		i := in
		mu.Unlock()
		if i != nil && i.settled.Load() >= int64(n) {
			_ = strm.StopWithin(10 * time.Second)
			<-done
			return int(i.settled.Load())
		}
		if time.Now().After(deadline) {
			_ = strm.StopWithin(time.Second)
			b.Fatalf("input did not ack %d messages in time", n)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// buildTestBroker builds cmd/danube-testbroker into a temporary directory,
// or returns $DANUBE_TESTBROKER_BIN (another build, to compare brokers).
func buildTestBroker(b *testing.B) string {
	b.Helper()
	if bin := os.Getenv("DANUBE_TESTBROKER_BIN"); bin != "" {
		return bin
	}
	bin := filepath.Join(b.TempDir(), "danube-testbroker")
	cmd := exec.Command("go", "build", "-o", bin, "github.com/benthos-danube/benthos-danube/cmd/danube-testbroker")
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("building the test broker: %v\n%s", err, out)
	}
	return bin
}

type broker struct {
	url string
	pid int
}

// startBroker runs the test broker on a free port until the benchmark ends.
func startBroker(b *testing.B, bin string, args ...string) *broker {
	b.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	cmd := exec.Command(bin, append([]string{"-addr", addr}, args...)...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	})
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stderr)
		once := sync.Once{}
		for sc.Scan() {
			if strings.Contains(sc.Text(), "listening") {
				once.Do(func() { close(ready) })
			}
		}
	}()
	select {
	case <-ready:
	case <-time.After(10 * time.Second):
		b.Fatal("test broker did not start")
	}
	return &broker{url: "http://" + addr, pid: cmd.Process.Pid}
}

// clockTick is the unit of utime and stime in /proc/<pid>/stat (USER_HZ,
// 100 on Linux).
const clockTick = 10 * time.Millisecond

// cpu returns the broker process's CPU time (utime + stime).
func (br *broker) cpu(b *testing.B) time.Duration {
	b.Helper()
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", br.pid))
	if err != nil {
		b.Fatalf("reading the broker's CPU time: %v", err)
	}
	// Fields after the parenthesised command name; utime and stime are
	// fields 14 and 15 of the line.
	s := string(raw)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		b.Fatalf("parsing /proc/%d/stat: %q", br.pid, s)
	}
	return time.Duration(ut+st) * clockTick
}

func selfCPU(b *testing.B) time.Duration {
	b.Helper()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
