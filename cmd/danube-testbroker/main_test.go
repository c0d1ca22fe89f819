//go:build unix

package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/benthos-danube/benthos-danube/internal/danube"
	"github.com/benthos-danube/benthos-danube/internal/danube/clienttest"
	"github.com/benthos-danube/benthos-danube/internal/syncbuf"
	"github.com/benthos-danube/benthos-danube/tests/harness"
)

// Short broker policies so redelivery tests stay fast.
const (
	ackTimeout = 300 * time.Millisecond
	nackDelay  = 100 * time.Millisecond
)

// TestBinary builds cmd/danube-testbroker, runs it as a separate process and
// drives it with internal/danube's client over real gRPC, covering the issue
// 2 acceptance list: produce; consume with each subscription type; reliable
// dispatch; nack redelivery; partitioned topics; schema subjects.
func TestBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the broker binary")
	}
	bin := buildBroker(t)

	t.Run("help", func(t *testing.T) {
		out, err := exec.Command(bin, "-help").CombinedOutput()
		if err != nil {
			t.Fatalf("-help: %v\n%s", err, out)
		}
		for _, want := range []string{"in-memory Danube test broker", "NOT Danube", "tests and development", "-addr", "-namespace"} {
			if !bytes.Contains(out, []byte(want)) {
				t.Errorf("-help output lacks %q:\n%s", want, out)
			}
		}
	})

	b := startBroker(t, bin, "-namespace", "iot", "-ack-timeout", ackTimeout.String(), "-nack-delay", nackDelay.String())
	t.Run("startup log", func(t *testing.T) {
		log := b.log()
		for _, want := range []string{"in-memory Danube test broker", "NOT Danube", "listening", "url=http://" + b.addr, "iot"} {
			if !strings.Contains(log, want) {
				t.Errorf("start-up log lacks %q:\n%s", want, log)
			}
		}
	})

	c, err := danube.NewClient("http://" + b.addr)
	if err != nil {
		t.Fatalf("NewClient: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })

	t.Run("subscription types", func(t *testing.T) { testSubscriptionTypes(t, c) })
	t.Run("reliable dispatch", func(t *testing.T) { testReliable(t, c) })
	t.Run("nack redelivery", func(t *testing.T) { testNack(t, c) })
	t.Run("partitioned topic", func(t *testing.T) { testPartitioned(t, c) })
	t.Run("schema subjects", func(t *testing.T) { testSchema(t, c) })
	t.Run("namespace flag", func(t *testing.T) {
		ctx := testCtx(t, 5*time.Second)
		_, err := c.NewProducer(ctx, danube.ProducerConfig{Topic: "/nope/t", MaxRetries: 1, BaseBackoff: time.Millisecond, MaxBackoff: time.Millisecond})
		if err == nil || !strings.Contains(err.Error(), `namespace "nope"`) {
			t.Fatalf("producer in a namespace not created by -namespace: got %v, want a namespace error", err)
		}
	})

	t.Run("SIGTERM exits 0", func(t *testing.T) {
		if err := b.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatalf("SIGTERM: %v", err)
		}
		select {
		case <-b.done:
		case <-time.After(10 * time.Second):
			t.Fatal("broker did not exit within 10s of SIGTERM")
		}
		if b.waitErr != nil {
			t.Fatalf("broker exit after SIGTERM: %v\n%s", b.waitErr, b.log())
		}
		if log := b.log(); !strings.Contains(log, "shutting down") {
			t.Errorf("no shutdown log line:\n%s", log)
		}
	})
}

// buildBroker compiles this package into a temporary directory (once per
// test process, harness.Build).
func buildBroker(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("go"); err != nil {
		t.Skipf("go tool not found: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	bin, err := harness.Build(ctx, t.TempDir(), "./cmd/danube-testbroker")
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

type brokerProc struct {
	cmd     *exec.Cmd
	addr    string
	out     *syncbuf.Buffer
	done    chan struct{}
	waitErr error // valid once done is closed
}

func (b *brokerProc) log() string { return b.out.String() }

// startBroker runs bin on a free loopback port and waits until it accepts
// connections. A port taken between picking and listening is retried once.
// The process is killed in t.Cleanup unless it already exited.
func startBroker(t *testing.T, bin string, args ...string) *brokerProc {
	t.Helper()
	var lastErr error
	for range 2 {
		b, err := tryStart(t, bin, args)
		if err == nil {
			return b
		}
		lastErr = err
	}
	t.Fatalf("start broker: %v", lastErr)
	return nil
}

func tryStart(t *testing.T, bin string, args []string) (*brokerProc, error) {
	port, err := harness.FreePort()
	if err != nil {
		return nil, err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)

	b := &brokerProc{addr: addr, out: &syncbuf.Buffer{}, done: make(chan struct{})}
	b.cmd = exec.Command(bin, append([]string{"-addr", addr}, args...)...)
	b.cmd.Stdout = b.out
	b.cmd.Stderr = b.out
	if err := b.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	go func() {
		b.waitErr = b.cmd.Wait()
		close(b.done)
	}()
	t.Cleanup(func() {
		select {
		case <-b.done:
		default:
			_ = b.cmd.Process.Kill()
			<-b.done
		}
	})

	deadline := time.Now().Add(15 * time.Second)
	for {
		select {
		case <-b.done:
			return nil, fmt.Errorf("broker exited before accepting connections (%v):\n%s", b.waitErr, b.log())
		default:
		}
		conn, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			_ = conn.Close()
			// The listener is up; the log line follows right after.
			for !strings.Contains(b.log(), "listening") && time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond)
			}
			return b, nil
		}
		if time.Now().After(deadline) {
			_ = b.cmd.Process.Kill()
			<-b.done
			return nil, fmt.Errorf("broker not accepting on %s after 15s:\n%s", addr, b.log())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func testCtx(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func newProducer(t *testing.T, c *danube.Client, cfg danube.ProducerConfig) *danube.Producer {
	t.Helper()
	cfg.BaseBackoff, cfg.MaxBackoff = 20*time.Millisecond, 200*time.Millisecond
	p, err := c.NewProducer(testCtx(t, 10*time.Second), cfg)
	if err != nil {
		t.Fatalf("NewProducer(%s): %v", cfg.Topic, err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return p
}

func subscribe(t *testing.T, c *danube.Client, cfg danube.ConsumerConfig) *danube.Consumer {
	t.Helper()
	co, err := c.Subscribe(testCtx(t, 10*time.Second), cfg)
	if err != nil {
		t.Fatalf("Subscribe(%s/%s): %v", cfg.Topic, cfg.Subscription, err)
	}
	t.Cleanup(func() { _ = co.Close() })
	return co
}

func send(t *testing.T, p *danube.Producer, m danube.Message) { t.Helper(); clienttest.Send(t, p, m) }

func receive(t *testing.T, co *danube.Consumer) *danube.ReceivedMessage {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	m, err := co.Receive(ctx)
	if err != nil {
		t.Fatalf("Receive: %v", err)
	}
	return m
}

// nothing asserts that no message arrives within d.
func nothing(t *testing.T, co *danube.Consumer, d time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	if m, err := co.Receive(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("want no message within %v, got %+v (err %v)", d, m, err)
	}
}

func ack(t *testing.T, co *danube.Consumer, m *danube.ReceivedMessage) {
	t.Helper()
	if err := co.Ack(testCtx(t, 5*time.Second), m); err != nil {
		t.Fatalf("Ack: %v", err)
	}
}

func testSubscriptionTypes(t *testing.T, c *danube.Client) {
	tests := []struct {
		name     string
		typ      danube.SubscriptionType
		dispatch danube.DispatchStrategy
	}{
		{"exclusive", danube.SubExclusive, danube.DispatchNonReliable},
		{"shared", danube.SubShared, danube.DispatchNonReliable},
		{"failover", danube.SubFailover, danube.DispatchReliable},
		{"key_shared", danube.SubKeyShared, danube.DispatchReliable},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			topic := "/iot/sub_" + tc.name
			p := newProducer(t, c, danube.ProducerConfig{Topic: topic, Name: "prod-" + tc.name, Dispatch: tc.dispatch})
			co := subscribe(t, c, danube.ConsumerConfig{Topic: topic, Subscription: "sub-" + tc.name, Name: "cons-" + tc.name, Type: tc.typ})
			// At most 4 messages: the broker's non-reliable consumer queue.
			for i := range 4 {
				send(t, p, danube.Message{
					Payload:    fmt.Appendf(nil, "%s-%d", tc.name, i),
					Attributes: map[string]string{"i": fmt.Sprint(i)},
					Key:        fmt.Sprintf("key-%d", i%2),
				})
			}
			for i := range 4 {
				m := receive(t, co)
				if want := fmt.Sprintf("%s-%d", tc.name, i); string(m.Payload) != want {
					t.Fatalf("message %d: payload %q, want %q", i, m.Payload, want)
				}
				if m.Topic != topic || m.ProducerName != "prod-"+tc.name || m.Attributes["i"] != fmt.Sprint(i) ||
					!m.HasRoutingKey || m.RoutingKey != fmt.Sprintf("key-%d", i%2) {
					t.Fatalf("message %d: %+v", i, m)
				}
				ack(t, co, m)
			}
			if tc.typ == danube.SubExclusive {
				_, err := c.Subscribe(testCtx(t, 5*time.Second), danube.ConsumerConfig{Topic: topic, Subscription: "sub-" + tc.name, Name: "intruder", Type: tc.typ})
				if err == nil {
					t.Fatal("a second consumer joined an exclusive subscription")
				}
			}
		})
	}
}

func testReliable(t *testing.T, c *danube.Client) {
	const topic = "/iot/reliable"
	p := newProducer(t, c, danube.ProducerConfig{Topic: topic, Name: "rel", Dispatch: danube.DispatchReliable})
	// Messages sent before the subscription exists are not delivered to it;
	// reliable topics keep what is sent after.
	co := subscribe(t, c, danube.ConsumerConfig{Topic: topic, Subscription: "rel", Type: danube.SubShared})
	const n = 8
	for i := range n {
		send(t, p, danube.Message{Payload: fmt.Appendf(nil, "r%d", i)})
	}
	var first *danube.ReceivedMessage
	for i := range n {
		m := receive(t, co)
		if want := fmt.Sprintf("r%d", i); string(m.Payload) != want || m.Offset != uint64(i) {
			t.Fatalf("message %d: payload %q offset %d, want %q offset %d", i, m.Payload, m.Offset, want, i)
		}
		if i == 0 {
			first = m // left unacked: must come back after the ack timeout
			continue
		}
		ack(t, co, m)
	}
	again := receive(t, co)
	if string(again.Payload) != "r0" || again.Offset != first.Offset {
		t.Fatalf("after the ack timeout got %q offset %d, want r0 redelivered", again.Payload, again.Offset)
	}
	ack(t, co, again)
	// Everything acked: nothing more arrives, even after several ack timeouts.
	nothing(t, co, 3*ackTimeout)
}

func testNack(t *testing.T, c *danube.Client) {
	const topic = "/iot/nack"
	p := newProducer(t, c, danube.ProducerConfig{Topic: topic, Name: "nack", Dispatch: danube.DispatchReliable})
	co := subscribe(t, c, danube.ConsumerConfig{Topic: topic, Subscription: "nack", Type: danube.SubExclusive})
	send(t, p, danube.Message{Payload: []byte("retry-me"), Attributes: map[string]string{"a": "b"}})
	m := receive(t, co)
	start := time.Now()
	if err := co.Nack(testCtx(t, 5*time.Second), m, 0, "test nack"); err != nil {
		t.Fatalf("Nack: %v", err)
	}
	again := receive(t, co)
	if string(again.Payload) != "retry-me" || again.Offset != m.Offset || again.Attributes["a"] != "b" {
		t.Fatalf("redelivered %+v, want the nacked message", again)
	}
	if el := time.Since(start); el < nackDelay/2 {
		t.Errorf("redelivered after %v, before the %v nack delay", el, nackDelay)
	}
	ack(t, co, again)
	nothing(t, co, 3*ackTimeout)
}

func testPartitioned(t *testing.T, c *danube.Client) {
	const (
		topic = "/iot/parted"
		parts = 3
	)
	p := newProducer(t, c, danube.ProducerConfig{Topic: topic, Name: "parted", Partitions: parts, Dispatch: danube.DispatchReliable})
	names, err := c.TopicPartitions(testCtx(t, 5*time.Second), topic)
	if err != nil {
		t.Fatalf("TopicPartitions: %v", err)
	}
	if len(names) != parts {
		t.Fatalf("TopicPartitions = %v, want %d partitions", names, parts)
	}
	for i, n := range names {
		if want := fmt.Sprintf("%s-part-%d", topic, i); n != want {
			t.Fatalf("partition %d is %q, want %q", i, n, want)
		}
	}
	co := subscribe(t, c, danube.ConsumerConfig{Topic: topic, Subscription: "all", Type: danube.SubShared})
	const n = 9
	want := map[string]string{} // payload → partition topic
	for i := range n {
		key := fmt.Sprintf("sensor-%d", i)
		payload := "v-" + key
		want[payload] = fmt.Sprintf("%s-part-%d", topic, danube.PartitionForKey(key, parts))
		send(t, p, danube.Message{Payload: []byte(payload), Key: key})
	}
	used := map[string]bool{}
	for range n {
		m := receive(t, co)
		wantTopic, ok := want[string(m.Payload)]
		if !ok {
			t.Fatalf("unexpected or duplicate message %q", m.Payload)
		}
		delete(want, string(m.Payload))
		if m.Topic != wantTopic {
			t.Errorf("%q (key %q) arrived on %s, want %s", m.Payload, m.RoutingKey, m.Topic, wantTopic)
		}
		if wantProducer := fmt.Sprintf("parted-%s", m.Topic[strings.LastIndex(m.Topic, "-")+1:]); m.ProducerName != wantProducer {
			t.Errorf("%q sent by %q, want %q", m.Payload, m.ProducerName, wantProducer)
		}
		used[m.Topic] = true
		ack(t, co, m)
	}
	if len(used) < 2 {
		t.Errorf("all %d keys landed on one partition %v; the keys should spread", n, used)
	}
}

func testSchema(t *testing.T, c *danube.Client) {
	const subject = "iot-readings"
	ctx := testCtx(t, 10*time.Second)
	v1 := []byte(`{"type":"object","properties":{"temp":{"type":"number"}}}`)
	v2 := []byte(`{"type":"object","properties":{"temp":{"type":"number"},"unit":{"type":"string"}}}`)
	id, ver, err := c.RegisterSchema(ctx, subject, "json_schema", v1)
	if err != nil || ver != 1 {
		t.Fatalf("RegisterSchema v1 = (%d, %d, %v), want version 1", id, ver, err)
	}
	if id2, ver2, err := c.RegisterSchema(ctx, subject, "json_schema", v1); err != nil || id2 != id || ver2 != 1 {
		t.Fatalf("re-registering v1 = (%d, %d, %v), want (%d, 1)", id2, ver2, err, id)
	}
	if lid, lver, err := c.LatestSchema(ctx, subject); err != nil || lid != id || lver != 1 {
		t.Fatalf("LatestSchema = (%d, %d, %v), want (%d, 1)", lid, lver, err, id)
	}
	id2, ver2, err := c.RegisterSchema(ctx, subject, "json_schema", v2)
	if err != nil || id2 != id || ver2 != 2 {
		t.Fatalf("RegisterSchema v2 = (%d, %d, %v), want (%d, 2)", id2, ver2, err, id)
	}
	if lid, lver, err := c.LatestSchema(ctx, subject); err != nil || lid != id || lver != 2 {
		t.Fatalf("LatestSchema after v2 = (%d, %d, %v), want (%d, 2)", lid, lver, err, id)
	}

	const topic = "/iot/schema"
	tests := []struct {
		name    string
		ref     danube.SchemaRef
		wantVer uint32
	}{
		{"pinned_v1", danube.SchemaRef{Subject: subject, PinnedVersion: 1}, 1},
		{"latest", danube.SchemaRef{Subject: subject}, 2},
		{"min_v2", danube.SchemaRef{Subject: subject, MinVersion: 2}, 2},
	}
	// The topic must exist before subscribing.
	newProducer(t, c, danube.ProducerConfig{Topic: topic, Name: "creator", Dispatch: danube.DispatchReliable})
	co := subscribe(t, c, danube.ConsumerConfig{Topic: topic, Subscription: "schema", Type: danube.SubExclusive})
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ref := tc.ref
			p := newProducer(t, c, danube.ProducerConfig{Topic: topic, Name: tc.name, Dispatch: danube.DispatchReliable, Schema: &ref})
			send(t, p, danube.Message{Payload: []byte(`{"temp":21.5}`)})
			m := receive(t, co)
			if m.ProducerName != tc.name {
				t.Fatalf("got a message from %q, want %q", m.ProducerName, tc.name)
			}
			if m.SchemaID == nil || *m.SchemaID != id || m.SchemaVersion == nil || *m.SchemaVersion != tc.wantVer {
				t.Fatalf("schema stamp (%v, %v), want (%d, %d)", deref(m.SchemaID), deref(m.SchemaVersion), id, tc.wantVer)
			}
			ack(t, co, m)
		})
	}
	t.Run("pinned_missing_version", func(t *testing.T) {
		_, err := c.NewProducer(testCtx(t, 5*time.Second), danube.ProducerConfig{Topic: topic, Name: "bad", Dispatch: danube.DispatchReliable, Schema: &danube.SchemaRef{Subject: subject, PinnedVersion: 9}})
		if err == nil || !danube.IsPermanent(err) {
			t.Fatalf("pinning a missing version: got %v, want a permanent error", err)
		}
	})
}

func deref[T any](p *T) any {
	if p == nil {
		return nil
	}
	return *p
}
