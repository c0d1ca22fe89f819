package danube_test

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/benthos-danube/benthos-danube/internal/danube"
	"github.com/benthos-danube/benthos-danube/internal/danube/danubetest"
)

func TestValidateTopic(t *testing.T) {
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"/default/orders", true},
		{"/iot/sensors_zone-1", true},
		{"/default/orders-part-3", true},
		{"default/orders", false},
		{"/default/", false},
		{"//orders", false},
		{"/default/a/b", false},
		{"/default/a.b", false},
		{"/default/a b", false},
		{"", false},
	} {
		err := danube.ValidateTopic(tc.name)
		if (err == nil) != tc.ok {
			t.Errorf("ValidateTopic(%q) = %v, want ok=%v", tc.name, err, tc.ok)
		}
		if err != nil && !strings.Contains(err.Error(), "/namespace/topic") {
			t.Errorf("ValidateTopic(%q) error %q does not name the form", tc.name, err)
		}
	}
}

// fnv1a64 is an independent FNV-1a 64 (hash/fnv, whose offset basis
// 0xcbf29ce484222325 and prime 0x100000001b3 are checked below).
func fnv1a64(key string) uint64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte(key))
	return h.Sum64()
}

func TestPartitionForKey(t *testing.T) {
	// Published FNV-1a 64 test vectors pin the constants of hash/fnv:
	// "" hashes to the offset basis, "a" to (basis ^ 0x61) * prime.
	if got := fnv1a64(""); got != 0xcbf29ce484222325 {
		t.Fatalf("fnv1a64(\"\") = %#x", got)
	}
	if got := fnv1a64("a"); got != 0xaf63dc4c8601ec8c {
		t.Fatalf("fnv1a64(\"a\") = %#x", got)
	}
	// Expected partitions were worked out with a separate hand-rolled loop
	// (h ^= byte; h *= 0x100000001b3 mod 2^64, from 0xcbf29ce484222325) in
	// Python, and are cross-checked against hash/fnv here.
	for _, tc := range []struct {
		key     string
		hash    uint64
		n, want int
	}{
		{"a", 0xaf63dc4c8601ec8c, 4, 0},
		{"a", 0xaf63dc4c8601ec8c, 7, 5},
		{"orders", 0x125d9250be8b4c, 7, 4},
		{"sensors/temp/zone1", 0x673fb3abf4f4857d, 4, 1},
		{"sensors/temp/zone1", 0x673fb3abf4f4857d, 3, 2},
		{"user-42", 0x32c6d7a54d35dacb, 4, 3},
		{"device-7", 0x275fcf4507d5cf97, 7, 1},
		{"anything", 0, 1, 0},
		{"anything", 0, 0, 0},
	} {
		if tc.hash != 0 {
			if h := fnv1a64(tc.key); h != tc.hash {
				t.Errorf("fnv1a64(%q) = %#x, want %#x", tc.key, h, tc.hash)
			}
			if m := int(fnv1a64(tc.key) % uint64(tc.n)); m != tc.want {
				t.Errorf("hash/fnv %q mod %d = %d, want %d", tc.key, tc.n, m, tc.want)
			}
		}
		if got := danube.PartitionForKey(tc.key, tc.n); got != tc.want {
			t.Errorf("PartitionForKey(%q, %d) = %d, want %d", tc.key, tc.n, got, tc.want)
		}
	}
}

func TestNewClientURLForms(t *testing.T) {
	srv := danubetest.NewTestServer(t)
	for _, url := range []string{srv.URL(), srv.Addr(), "https://" + srv.Addr() + "/"} {
		t.Run(url, func(t *testing.T) {
			c := newClient(t, url)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := c.Ping(ctx); err != nil {
				t.Fatalf("Ping: %v", err)
			}
		})
	}
	if _, err := danube.NewClient(""); err == nil {
		t.Fatal("empty URL accepted")
	}
	// Nothing listens: Ping reports a connection error.
	c := newClient(t, "127.0.0.1:1", danube.WithDialTimeout(time.Second))
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	err := c.Ping(ctx)
	if err == nil || !danube.IsConnectionError(err) {
		t.Fatalf("Ping on closed port = %v, want connection error", err)
	}
}

func TestProduceBasic(t *testing.T) {
	srv := danubetest.NewTestServer(t)
	c := newClient(t, srv.URL())
	p := newProducer(t, c, danube.ProducerConfig{Topic: "/default/basic", Name: "p1"})
	if p.Topic() != "/default/basic" || p.Partitions() != 0 {
		t.Fatalf("Topic/Partitions = %q/%d", p.Topic(), p.Partitions())
	}
	before := uint64(time.Now().UnixMilli())
	send(t, p, danube.Message{Payload: []byte("hello"), Attributes: map[string]string{"k": "v"}, Key: "key1"})
	send(t, p, danube.Message{Payload: []byte("world")})
	msgs := srv.Messages("/default/basic")
	if len(msgs) != 2 {
		t.Fatalf("got %d messages, want 2", len(msgs))
	}
	m := msgs[0]
	if string(m.Payload) != "hello" || m.Attributes["k"] != "v" || !m.HasRoutingKey || m.RoutingKey != "key1" ||
		m.ProducerName != "p1" || m.ProducerID == 0 || m.PublishTime < before || m.PublishTime > uint64(time.Now().UnixMilli()) {
		t.Fatalf("unexpected message %+v", m)
	}
	if msgs[1].HasRoutingKey {
		t.Fatalf("routing key set without key: %+v", msgs[1])
	}
	if msgs[1].RequestID <= m.RequestID {
		t.Fatalf("request ids not increasing: %d then %d", m.RequestID, msgs[1].RequestID)
	}
}

func TestRedirectBetweenBrokers(t *testing.T) {
	cl := danubetest.NewCluster()
	t.Cleanup(cl.Close)
	a, err := cl.AddBroker()
	if err != nil {
		t.Fatal(err)
	}
	b, err := cl.AddBroker()
	if err != nil {
		t.Fatal(err)
	}
	// The topic is created on broker A.
	ca := newClient(t, a.URL())
	pa := newProducer(t, ca, danube.ProducerConfig{Topic: "/default/redir", Name: "pa"})
	send(t, pa, danube.Message{Payload: []byte("via-a")})

	// A client whose service URL is B is redirected to A.
	cb := newClient(t, b.URL())
	pb := newProducer(t, cb, danube.ProducerConfig{Topic: "/default/redir", Name: "pb"})
	send(t, pb, danube.Message{Payload: []byte("via-b")})
	if a.ProducerCount() != 2 || b.ProducerCount() != 0 {
		t.Fatalf("producers on A/B = %d/%d, want 2/0", a.ProducerCount(), b.ProducerCount())
	}

	// Move the topic to B: both producers follow transparently.
	var recreated atomic.Int32
	pc := newProducer(t, ca, danube.ProducerConfig{Topic: "/default/redir", Name: "pc",
		Hooks: danube.ProducerHooks{OnRecreate: func(string) { recreated.Add(1) }}})
	a.MoveTopic("/default/redir", b)
	send(t, pa, danube.Message{Payload: []byte("after-move-a")})
	send(t, pb, danube.Message{Payload: []byte("after-move-b")})
	send(t, pc, danube.Message{Payload: []byte("after-move-c")})
	if recreated.Load() != 1 {
		t.Fatalf("OnRecreate called %d times, want 1", recreated.Load())
	}
	if b.ProducerCount() != 3 {
		t.Fatalf("producers on B = %d, want 3", b.ProducerCount())
	}
	var got []string
	for _, m := range a.Messages("/default/redir") {
		got = append(got, string(m.Payload))
	}
	if want := "via-a,via-b,after-move-a,after-move-b,after-move-c"; strings.Join(got, ",") != want {
		t.Fatalf("messages = %v, want %s", got, want)
	}
}

func TestPartitionsAndKeyRouting(t *testing.T) {
	srv := danubetest.NewTestServer(t)
	c := newClient(t, srv.URL())
	const topic = "/default/routed"
	p := newProducer(t, c, danube.ProducerConfig{Topic: topic, Name: "router", Partitions: 4})

	// Keys with partitions computed independently (see TestPartitionForKey):
	// FNV-1a 64 mod 4.
	keys := map[string]int{"a": 0, "sensors/temp/zone1": 1, "user-42": 3, "device-7": 3, "orders": 0}
	for k := range keys {
		if got := int(fnv1a64(k) % 4); got != keys[k] {
			t.Fatalf("independent hash of %q mod 4 = %d, table says %d", k, got, keys[k])
		}
		send(t, p, danube.Message{Payload: []byte("k:" + k), Key: k})
	}
	// Round robin without a key: 4 sends cover every partition once.
	for i := 0; i < 4; i++ {
		send(t, p, danube.Message{Payload: []byte(fmt.Sprintf("rr:%d", i))})
	}
	rr := map[int]int{}
	for i := 0; i < 4; i++ {
		part := fmt.Sprintf("%s-part-%d", topic, i)
		for _, m := range srv.Messages(part) {
			if m.Partition != i || m.ProducerName != fmt.Sprintf("router-%d", i) {
				t.Errorf("message on %s: partition %d, producer %q", part, m.Partition, m.ProducerName)
			}
			s := string(m.Payload)
			if k, ok := strings.CutPrefix(s, "k:"); ok {
				if keys[k] != i {
					t.Errorf("key %q landed on partition %d, want %d", k, i, keys[k])
				}
				if m.RoutingKey != k {
					t.Errorf("routing key %q, want %q", m.RoutingKey, k)
				}
				delete(keys, k)
			} else {
				rr[i]++
			}
		}
	}
	if len(keys) != 0 {
		t.Errorf("keys never delivered: %v", keys)
	}
	for i := 0; i < 4; i++ {
		if rr[i] != 1 {
			t.Errorf("round robin: partition %d got %d messages, want 1 (%v)", i, rr[i], rr)
		}
	}

	parts, err := c.TopicPartitions(context.Background(), topic)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(parts, ",") != "/default/routed-part-0,/default/routed-part-1,/default/routed-part-2,/default/routed-part-3" {
		t.Fatalf("TopicPartitions = %v", parts)
	}
}

func TestTopicPartitionsFiltersPrefixQuirk(t *testing.T) {
	srv := danubetest.NewTestServer(t)
	c := newClient(t, srv.URL())
	newProducer(t, c, danube.ProducerConfig{Topic: "/default/pq", Name: "x", Partitions: 11})
	newProducer(t, c, danube.ProducerConfig{Topic: "/default/pq2", Name: "y"})
	parts, err := c.TopicPartitions(context.Background(), "/default/pq")
	if err != nil {
		t.Fatal(err)
	}
	if len(parts) != 11 || parts[2] != "/default/pq-part-2" || parts[10] != "/default/pq-part-10" {
		t.Fatalf("TopicPartitions = %v", parts)
	}
	parts, err = c.TopicPartitions(context.Background(), "/default/none")
	if err != nil || len(parts) != 0 {
		t.Fatalf("unknown topic: %v, %v", parts, err)
	}
}

// sendAll sends n numbered messages with `workers` in flight and returns
// the first error.
func sendAll(t *testing.T, p *danube.Producer, n, workers int, during func(i int)) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if during != nil {
					during(i)
				}
				if err := p.Send(ctx, danube.Message{Payload: []byte(fmt.Sprintf("m-%04d", i))}); err != nil {
					errs <- fmt.Errorf("send %d: %w", i, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

func assertAllStored(t *testing.T, srv *danubetest.Server, topic string, n int) {
	t.Helper()
	seen := map[string]int{}
	for _, m := range srv.Messages(topic) {
		seen[string(m.Payload)]++
	}
	dups := 0
	for i := 0; i < n; i++ {
		k := fmt.Sprintf("m-%04d", i)
		switch seen[k] {
		case 0:
			t.Errorf("message %s lost", k)
		case 1:
		default:
			dups += seen[k] - 1
		}
	}
	t.Logf("%d messages stored, %d duplicates", len(srv.Messages(topic)), dups)
}

func TestRecoveryAfterRestart(t *testing.T) {
	for _, tc := range []struct {
		name     string
		inflight int
		dispatch danube.DispatchStrategy
	}{
		{"sequential", 1, danube.DispatchNonReliable},
		{"concurrent_reliable", 8, danube.DispatchReliable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := danubetest.NewTestServer(t)
			c := newClient(t, srv.URL())
			var recreated, retried atomic.Int32
			topic := "/default/restart-" + tc.name
			p := newProducer(t, c, danube.ProducerConfig{Topic: topic, Name: "r", Dispatch: tc.dispatch,
				Hooks: danube.ProducerHooks{
					OnRecreate: func(string) { recreated.Add(1) },
					OnRetry:    func(string) { retried.Add(1) },
				}})
			const n = 300
			sendAll(t, p, n, tc.inflight, func(i int) {
				if i == 100 || i == 200 {
					srv.Restart()
				}
			})
			assertAllStored(t, srv, topic, n)
			if recreated.Load() < 2 {
				t.Errorf("OnRecreate called %d times, want >= 2", recreated.Load())
			}
			if retried.Load() < 2 {
				t.Errorf("OnRetry called %d times, want >= 2", retried.Load())
			}
		})
	}
}

func TestRecoveryAfterStopStart(t *testing.T) {
	srv := danubetest.NewTestServer(t)
	c := newClient(t, srv.URL())
	const topic = "/default/stopstart"
	p := newProducer(t, c, danube.ProducerConfig{Topic: topic, Name: "s"})
	const n = 60
	var once sync.Once
	var downAt, upAt time.Time
	stopped := make(chan struct{})
	sendAll(t, p, n, 4, func(i int) {
		if i == 20 {
			once.Do(func() {
				srv.Stop()
				downAt = time.Now()
				go func() {
					defer close(stopped)
					time.Sleep(1500 * time.Millisecond)
					upAt = time.Now()
					if err := srv.Start(); err != nil {
						t.Errorf("Start: %v", err)
					}
				}()
			})
		}
	})
	<-stopped
	if upAt.Sub(downAt) < time.Second {
		t.Fatalf("broker was down only %v", upAt.Sub(downAt))
	}
	assertAllStored(t, srv, topic, n)
}

func TestClusterModeFirstCreateRetried(t *testing.T) {
	srv := danubetest.NewTestServer(t, danubetest.WithClusterMode(true))
	c := newClient(t, srv.URL())
	p := newProducer(t, c, danube.ProducerConfig{Topic: "/default/cluster", Name: "c", Partitions: 2})
	send(t, p, danube.Message{Payload: []byte("x"), Key: "k"})
	if srv.TotalMessages() != 1 {
		t.Fatalf("TotalMessages = %d", srv.TotalMessages())
	}
}

func TestCreateFailures(t *testing.T) {
	srv := danubetest.NewTestServer(t)
	c := newClient(t, srv.URL())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	fast := func(cfg danube.ProducerConfig) danube.ProducerConfig {
		cfg.BaseBackoff, cfg.MaxBackoff, cfg.MaxRetries = 10*time.Millisecond, 20*time.Millisecond, 2
		return cfg
	}

	t.Run("missing_namespace", func(t *testing.T) {
		start := time.Now()
		_, err := c.NewProducer(ctx, fast(danube.ProducerConfig{Topic: "/nosuchns/t", Name: "n"}))
		if err == nil || !strings.Contains(err.Error(), `namespace "nosuchns" is not on the broker`) || !danube.IsPermanent(err) || !errors.Is(err, danube.ErrNamespaceNotFound) {
			t.Fatalf("err = %v", err)
		}
		if time.Since(start) > 3*time.Second {
			t.Fatalf("took %v", time.Since(start))
		}
	})
	t.Run("invalid_topic", func(t *testing.T) {
		_, err := c.NewProducer(ctx, danube.ProducerConfig{Topic: "default/t"})
		if err == nil || !danube.IsPermanent(err) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("strategy_mismatch", func(t *testing.T) {
		newProducer(t, c, danube.ProducerConfig{Topic: "/default/strat", Name: "a", Dispatch: danube.DispatchReliable})
		_, err := c.NewProducer(ctx, fast(danube.ProducerConfig{Topic: "/default/strat", Name: "b"}))
		var de *danube.Error
		if !errors.As(err, &de) || de.Code != codes.FailedPrecondition || de.RPC != "CreateProducer" || de.Topic != "/default/strat" || !danube.IsPermanent(err) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("unavailable_retried", func(t *testing.T) {
		srv.FailNext("CreateProducer", 2, codes.Unavailable)
		newProducer(t, c, fast(danube.ProducerConfig{Topic: "/default/flaky", Name: "f"}))
	})
	t.Run("unavailable_capped", func(t *testing.T) {
		srv.FailNext("CreateProducer", 10, codes.Unavailable)
		_, err := c.NewProducer(ctx, fast(danube.ProducerConfig{Topic: "/default/flaky2", Name: "f"}))
		if err == nil || !danube.IsRetryable(err) {
			t.Fatalf("err = %v", err)
		}
		srv.FailNext("CreateProducer", 0, codes.OK)
	})
}

func TestSendTransientRetry(t *testing.T) {
	srv := danubetest.NewTestServer(t)
	c := newClient(t, srv.URL())
	var retried atomic.Int32
	p := newProducer(t, c, danube.ProducerConfig{Topic: "/default/transient", Name: "t",
		Hooks: danube.ProducerHooks{OnRetry: func(string) { retried.Add(1) }}})
	for _, code := range []codes.Code{codes.Unavailable, codes.DeadlineExceeded, codes.ResourceExhausted} {
		srv.FailNext("SendMessage", 2, code)
		send(t, p, danube.Message{Payload: []byte(code.String())})
	}
	if retried.Load() != 6 || srv.MessageCount("/default/transient") != 3 {
		t.Fatalf("retries %d, stored %d", retried.Load(), srv.MessageCount("/default/transient"))
	}
	// Permanent codes are returned at once with topic, RPC and code.
	srv.FailNext("SendMessage", 1, codes.InvalidArgument)
	err := p.Send(context.Background(), danube.Message{Payload: []byte("bad")})
	var de *danube.Error
	if !errors.As(err, &de) || de.Code != codes.InvalidArgument || de.RPC != "SendMessage" || de.Topic != "/default/transient" || !danube.IsPermanent(err) {
		t.Fatalf("err = %v", err)
	}
	if !strings.HasPrefix(err.Error(), "danube SendMessage on /default/transient: InvalidArgument: ") {
		t.Fatalf("Error() = %q", err.Error())
	}
	// A send that cannot succeed before ctx ends keeps the last code.
	srv.FailNext("SendMessage", 1000, codes.Unavailable)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	err = p.Send(ctx, danube.Message{Payload: []byte("never")})
	if !errors.Is(err, context.DeadlineExceeded) || !danube.IsRetryable(err) {
		t.Fatalf("err = %v", err)
	}
	srv.FailNext("SendMessage", 0, codes.OK)
}

func TestDrainingTopicRecreates(t *testing.T) {
	srv := danubetest.NewTestServer(t)
	c := newClient(t, srv.URL())
	p := newProducer(t, c, danube.ProducerConfig{Topic: "/default/drain", Name: "d"})
	srv.SetDraining("/default/drain", true)
	go func() {
		time.Sleep(300 * time.Millisecond)
		srv.SetDraining("/default/drain", false)
	}()
	send(t, p, danube.Message{Payload: []byte("x")})
	if srv.MessageCount("/default/drain") != 1 {
		t.Fatal("message not stored")
	}
}

func TestOversizeRejected(t *testing.T) {
	srv := danubetest.NewTestServer(t)
	c := newClient(t, srv.URL())
	p := newProducer(t, c, danube.ProducerConfig{Topic: "/default/big", Name: "b"})
	for _, size := range []int{danube.MaxRequestBytes + 1, danube.MaxRequestBytes - 20, 8 << 20} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			start := time.Now()
			err := p.Send(ctx, danube.Message{Payload: make([]byte, size)})
			if !errors.Is(err, danube.ErrMessageTooLarge) || !danube.IsPermanent(err) || danube.IsRetryable(err) {
				t.Fatalf("err = %v", err)
			}
			if !strings.Contains(err.Error(), "4 MiB") {
				t.Fatalf("error not clear: %v", err)
			}
			if d := time.Since(start); d > time.Second {
				t.Fatalf("took %v", d)
			}
		})
	}
	if n := srv.MessageCount("/default/big"); n != 0 {
		t.Fatalf("broker stored %d messages", n)
	}
	send(t, p, danube.Message{Payload: make([]byte, 1<<20)})
}

func TestHealthCloseMarksForRecreate(t *testing.T) {
	srv := danubetest.NewTestServer(t)
	c := newClient(t, srv.URL())
	var recreated, retried atomic.Int32
	p := newProducer(t, c, danube.ProducerConfig{Topic: "/default/health", Name: "h", HealthInterval: 50 * time.Millisecond,
		Hooks: danube.ProducerHooks{
			OnRecreate: func(string) { recreated.Add(1) },
			OnRetry:    func(string) { retried.Add(1) },
		}})
	srv.Restart()
	time.Sleep(300 * time.Millisecond) // several health rounds: CLOSE seen
	send(t, p, danube.Message{Payload: []byte("x")})
	// The health loop already flagged the producer, so the send recreated it
	// before its first attempt instead of failing with NotFound.
	if recreated.Load() != 1 || retried.Load() != 0 {
		t.Fatalf("recreated %d, retried %d; want 1, 0", recreated.Load(), retried.Load())
	}
}

func TestStrictOrderVersusConcurrentSends(t *testing.T) {
	srv := danubetest.NewTestServer(t)
	srv.SetLatency(10 * time.Millisecond)
	c := newClient(t, srv.URL())
	const n, workers = 20, 5
	elapsed := map[bool]time.Duration{}
	for _, strict := range []bool{true, false} {
		topic := fmt.Sprintf("/default/strict-%v", strict)
		p := newProducer(t, c, danube.ProducerConfig{Topic: topic, Name: "o", StrictOrder: strict})
		start := time.Now()
		sendAll(t, p, n, workers, nil)
		elapsed[strict] = time.Since(start)
		assertAllStored(t, srv, topic, n)
	}
	t.Logf("strict %v, concurrent %v", elapsed[true], elapsed[false])
	// Strict order: one send in flight, so at least n round trips.
	if elapsed[true] < n*10*time.Millisecond {
		t.Errorf("strict sends took %v, less than %d sequential round trips", elapsed[true], n)
	}
	// Without it, the sends of several callers overlap on one producer.
	if elapsed[false] > elapsed[true]/2 {
		t.Errorf("concurrent sends took %v, strict %v: no overlap", elapsed[false], elapsed[true])
	}
}

func TestErrorClassification(t *testing.T) {
	for _, tc := range []struct {
		name                   string
		err                    error
		retry, perm, transport bool
	}{
		{"transport", &danube.Error{RPC: "SendMessage", Code: codes.Unavailable, Err: status.Error(codes.Unavailable, "connection error: desc = \"transport: connection refused\"")}, true, false, true},
		{"redo lookup", &danube.Error{RPC: "CreateProducer", Code: codes.Unavailable, Err: status.Error(codes.Unavailable, "The topic exists but is served by another broker, redo the Lookup request")}, true, false, false},
		{"producer lost", &danube.Error{RPC: "SendMessage", Code: codes.NotFound, Err: status.Error(codes.NotFound, "The producer with id 1 does not exist")}, true, false, false},
		{"topic missing", &danube.Error{RPC: "Subscribe", Code: codes.NotFound, Err: status.Error(codes.NotFound, "Unable to find the topic: /a/b")}, false, true, false},
		{"draining", status.Error(codes.PermissionDenied, "Unable to publish the message: Topic /a/b is draining or closed; retry lookup/moved"), true, false, false},
		{"not attached", status.Error(codes.PermissionDenied, "Unable to publish the message: Producer 1 is not attached to topic /a/b"), true, false, false},
		{"not on this broker", status.Error(codes.PermissionDenied, "Unable to publish the message: Topic /a/b not found on this broker"), true, false, false},
		{"schema enforce", status.Error(codes.PermissionDenied, "Unable to publish the message: Schema ID 7 not found in registry"), false, true, false},
		{"authorisation", status.Error(codes.PermissionDenied, "not allowed"), false, true, false},
		{"broker too large", status.Error(codes.OutOfRange, "Error, decoded message length too large"), false, true, false},
		{"auth", status.Error(codes.Unauthenticated, "Invalid token"), false, true, false},
		{"exhausted", status.Error(codes.ResourceExhausted, "limit"), true, false, false},
		{"deadline", status.Error(codes.DeadlineExceeded, "slow"), true, false, false},
		{"precondition", status.Error(codes.FailedPrecondition, "strategy"), false, true, false},
		{"exists", status.Error(codes.AlreadyExists, "conflict"), false, true, false},
		{"invalid", status.Error(codes.InvalidArgument, "bad"), false, true, false},
		{"nil", nil, false, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := danube.IsRetryable(tc.err); got != tc.retry {
				t.Errorf("IsRetryable = %v", got)
			}
			if got := danube.IsPermanent(tc.err); got != tc.perm {
				t.Errorf("IsPermanent = %v", got)
			}
			if got := danube.IsConnectionError(tc.err); got != tc.transport {
				t.Errorf("IsConnectionError = %v", got)
			}
		})
	}
	e := &danube.Error{Topic: "/default/t", RPC: "SendMessage", Code: codes.NotFound, Err: status.Error(codes.NotFound, "gone")}
	if e.Error() != "danube SendMessage on /default/t: NotFound: gone" || status.Code(e) != codes.NotFound {
		t.Fatalf("Error() = %q, code %v", e.Error(), status.Code(e))
	}
}

func TestSchemaRefs(t *testing.T) {
	srv := danubetest.NewTestServer(t)
	c := newClient(t, srv.URL())
	ctx := context.Background()
	id1, v1, err := c.RegisterSchema(ctx, "orders-value", "json_schema", []byte(`{"type":"object"}`))
	if err != nil || v1 != 1 {
		t.Fatalf("RegisterSchema: %d %d %v", id1, v1, err)
	}
	id2, v2, err := c.RegisterSchema(ctx, "orders-value", "json_schema", []byte(`{"type":"object","properties":{"a":{"type":"string"}}}`))
	if err != nil || v2 != 2 || id2 != id1 {
		t.Fatalf("RegisterSchema v2: %d %d %v", id2, v2, err)
	}
	lid, lv, err := c.LatestSchema(ctx, "orders-value")
	if err != nil || lid != id1 || lv != 2 {
		t.Fatalf("LatestSchema: %d %d %v", lid, lv, err)
	}
	if _, _, err := c.LatestSchema(ctx, "nope"); err == nil {
		t.Fatal("LatestSchema of unknown subject succeeded")
	}
	for _, tc := range []struct {
		name    string
		ref     danube.SchemaRef
		wantVer uint32
		wantErr bool
	}{
		{"latest", danube.SchemaRef{Subject: "orders-value"}, 2, false},
		{"pinned", danube.SchemaRef{Subject: "orders-value", PinnedVersion: 1}, 1, false},
		{"min_ok", danube.SchemaRef{Subject: "orders-value", MinVersion: 2}, 2, false},
		{"min_too_high", danube.SchemaRef{Subject: "orders-value", MinVersion: 3}, 0, true},
		{"pinned_missing", danube.SchemaRef{Subject: "orders-value", PinnedVersion: 9}, 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			topic := "/default/schema-" + tc.name
			ref := tc.ref
			cfg := danube.ProducerConfig{Topic: topic, Name: "s", Schema: &ref}
			if tc.wantErr {
				_, err := c.NewProducer(ctx, cfg)
				if err == nil || !danube.IsPermanent(err) {
					t.Fatalf("err = %v", err)
				}
				return
			}
			p := newProducer(t, c, cfg)
			send(t, p, danube.Message{Payload: []byte(`{}`)})
			m := srv.Messages(topic)[0]
			if m.SchemaID == nil || *m.SchemaID != id1 || m.SchemaVersion == nil || *m.SchemaVersion != tc.wantVer {
				t.Fatalf("schema stamp %v/%v, want %d/%d", m.SchemaID, m.SchemaVersion, id1, tc.wantVer)
			}
		})
	}
}

func TestClosed(t *testing.T) {
	srv := danubetest.NewTestServer(t)
	c, err := danube.NewClient(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	p := newProducer(t, c, danube.ProducerConfig{Topic: "/default/closed", Name: "c", HealthInterval: 10 * time.Millisecond})
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := p.Send(context.Background(), danube.Message{Payload: []byte("x")}); !errors.Is(err, danube.ErrClosed) {
		t.Fatalf("Send after Close = %v", err)
	}
	if _, err := c.NewProducer(context.Background(), danube.ProducerConfig{Topic: "/default/closed2"}); !errors.Is(err, danube.ErrClosed) {
		t.Fatalf("NewProducer after Close = %v", err)
	}
}
