package danubein

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/benthos-danube/benthos-danube/internal/componenttest"
	"github.com/benthos-danube/benthos-danube/internal/danube"
	"github.com/benthos-danube/benthos-danube/internal/danube/danubetest"
	"github.com/benthos-danube/benthos-danube/internal/danubemeta"
)

// TestStreamAtLeastOnceAcrossNack runs the input in a Benthos stream whose
// consumer fails one message once: the nack reaches Danube, which
// redelivers it; every message is acked to Danube only after the
// pipeline's ack.
func TestStreamAtLeastOnceAcrossNack(t *testing.T) {
	srv := danubetest.NewTestServer(t, danubetest.WithNackDelay(20*time.Millisecond))
	const topic = "/default/commands"
	_, p := producer(t, srv, topic, 0)

	env := service.NewEnvironment()
	if err := Register(env); err != nil {
		t.Fatal(err)
	}
	b := env.NewStreamBuilder()
	if err := b.SetLoggerYAML("level: none"); err != nil {
		t.Fatal(err)
	}
	if err := b.AddInputYAML("danube:\n  " + strings.ReplaceAll(inputYAML(srv, "[ "+topic+" ]", "subscription_type: exclusive\n"), "\n", "\n  ")); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var got []string
	failedOnce := false
	release := make(chan struct{})
	if err := b.AddConsumerFunc(func(_ context.Context, m *service.Message) error {
		pl, _ := m.AsBytes()
		if string(pl) == "m0" {
			<-release // hold the first message: it must stay unacked in Danube
		}
		mu.Lock()
		defer mu.Unlock()
		if string(pl) == "m3" && !failedOnce {
			failedOnce = true
			return errors.New("output refused m3")
		}
		got = append(got, string(pl))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	strm, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- strm.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		_ = strm.StopWithin(5 * time.Second)
		<-done
	})

	// The subscription exists once the input subscribed.
	waitFor(t, 5*time.Second, "subscription", func() bool { _, _, ok := srv.Unacked(topic, "sub"); return ok })
	sendN(t, p, 0, 6)
	time.Sleep(100 * time.Millisecond)
	if unacked, acked, _ := srv.Unacked(topic, "sub"); acked != 0 || unacked == 0 {
		t.Fatalf("before the pipeline acked m0: Danube has %d acked, %d unacked; want 0 acked", acked, unacked)
	}
	close(release)
	waitFor(t, 10*time.Second, "6 acks in Danube", func() bool {
		unacked, acked, _ := srv.Unacked(topic, "sub")
		return acked == 6 && unacked == 0
	})
	mu.Lock()
	defer mu.Unlock()
	// The consumer func fails a whole batch on m3's error, so the other
	// messages of m3's batch are nacked and redelivered too: duplicates,
	// as at-least-once allows. m3 itself arrived again only because Danube
	// redelivered it (the input does not retry in memory).
	slices.Sort(got)
	if want := []string{"m0", "m1", "m2", "m3", "m4", "m5"}; !slices.Equal(slices.Compact(got), want) || !failedOnce {
		t.Fatalf("pipeline got %v (m3 failed once: %v), want each of %v", got, failedOnce, want)
	}
}

// TestNackRedeliversOnlyFailedMessagesOfBatch checks that a BatchError nacks
// only its failed messages and acks the others.
func TestNackRedeliversOnlyFailedMessagesOfBatch(t *testing.T) {
	srv := danubetest.NewTestServer(t, danubetest.WithNackDelay(20*time.Millisecond))
	const topic = "/default/batch"
	_, p := producer(t, srv, topic, 0)
	in := newTestInput(t, inputYAML(srv, "[ "+topic+" ]", ""))
	sendN(t, p, 0, 5)
	waitFor(t, 5*time.Second, "5 dispatched", func() bool { u, _, _ := srv.Unacked(topic, "sub"); return u == 5 })
	time.Sleep(50 * time.Millisecond) // let the client buffer them
	batch, ack := read(t, in, 5*time.Second)
	if len(batch) < 2 {
		t.Fatalf("natural batch of %d messages, want the 5 waiting", len(batch))
	}
	failIdx := 1
	failed, _ := batch[failIdx].AsBytes()
	berr := service.NewBatchError(batch, errors.New("partial")).Failed(failIdx, errors.New("refused"))
	if err := ack(context.Background(), berr); err != nil {
		t.Fatalf("ack: %v", err)
	}
	if err := ack(context.Background(), nil); err != nil { // idempotent: no second settle
		t.Fatalf("second ack: %v", err)
	}
	var rest []*service.Message
	if len(batch) < 5 {
		rest, _ = readN(t, in, 5-len(batch), 5*time.Second)
		for _, m := range rest {
			if pl, _ := m.AsBytes(); string(pl) == string(failed) {
				t.Fatal("failed message redelivered before the rest was read")
			}
		}
	}
	again, acks := readN(t, in, 1, 5*time.Second)
	// rest was read but not acked: ack it now with the redelivery.
	if pl, _ := again[0].AsBytes(); string(pl) != string(failed) {
		t.Fatalf("redelivered %q, want only the failed %q", pl, failed)
	}
	if err := acks[0](context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	if len(rest) > 0 {
		t.Log("rest of the batch read separately:", payloads(rest))
	}
}

// TestRedeliveryAfterConsumerLoss: messages handed out but never acked are
// redelivered to the next input with the same consumer name.
func TestRedeliveryAfterConsumerLoss(t *testing.T) {
	srv := danubetest.NewTestServer(t)
	const topic = "/default/loss"
	_, p := producer(t, srv, topic, 0)
	yaml := inputYAML(srv, "[ "+topic+" ]", "subscription_type: failover\nconsumer_name: bridge-1\n")
	first := newTestInput(t, yaml)
	sendN(t, p, 0, 3)
	ms, _ := readN(t, first, 3, 5*time.Second)
	if err := first.Close(context.Background()); err != nil { // lost without acking
		t.Fatal(err)
	}
	second := newTestInput(t, yaml)
	again, acks := readN(t, second, 3, 5*time.Second)
	for i := range ms {
		if metaInt(t, ms[i], danubemeta.Offset) != metaInt(t, again[i], danubemeta.Offset) {
			t.Fatalf("redelivery %d: offsets %v then %v", i, payloads(ms), payloads(again))
		}
	}
	for _, a := range acks {
		if err := a(context.Background(), nil); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 5*time.Second, "acks", func() bool { u, a, _ := srv.Unacked(topic, "sub"); return u == 0 && a == 3 })
}

// TestResubscribeAfterBrokerRestart: the input keeps its subscription across
// a broker restart (registries dropped) and across a stopped listener.
func TestResubscribeAfterBrokerRestart(t *testing.T) {
	srv := danubetest.NewTestServer(t)
	const topic = "/default/restart"
	_, p := producer(t, srv, topic, 0)
	in := newTestInput(t, inputYAML(srv, "[ "+topic+" ]", "subscription_type: exclusive\n"))
	sendN(t, p, 0, 1)
	unackedMsg, _ := readN(t, in, 1, 5*time.Second)

	srv.Restart()
	// The unacked m0 comes back on the new subscription; m1 is new.
	sendN(t, p, 1, 2)
	ms, acks := readN(t, in, 2, 10*time.Second)
	if got := payloads(ms); !slices.Contains(got, "m0") || !slices.Contains(got, "m1") {
		t.Fatalf("after restart got %v, want m0 (redelivered) and m1", got)
	}
	for _, a := range acks {
		if err := a(context.Background(), nil); err != nil {
			t.Fatalf("ack after restart: %v", err)
		}
	}
	_ = unackedMsg

	srv.Stop()
	// Benthos learns of the outage: ReadBatch reports the connection lost
	// and Connect fails until the consumer has resubscribed.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, _, err := in.ReadBatch(ctx); !errors.Is(err, service.ErrNotConnected) {
		t.Fatalf("ReadBatch during the outage: %v, want ErrNotConnected", err)
	}
	if err := in.Connect(ctx); err == nil || !strings.Contains(err.Error(), "resubscribing") {
		t.Fatalf("Connect during the outage: %v", err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	sendN(t, p, 2, 3)
	ms, acks = readN(t, in, 1, 15*time.Second)
	if got := payloads(ms); got[0] != "m2" {
		t.Fatalf("after the listener came back got %v, want m2", got)
	}
	if err := acks[0](context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "acks", func() bool { u, a, _ := srv.Unacked(topic, "sub"); return u == 0 && a == 3 })
}

// TestMetadata checks every danube_* key and the attributes.
func TestMetadata(t *testing.T) {
	srv := danubetest.NewTestServer(t)
	const topic = "/default/meta"
	c, _ := producer(t, srv, "/default/meta-plain", 0)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	sid, sver, err := c.RegisterSchema(ctx, "cmds", "string", []byte("string"))
	if err != nil {
		t.Fatal(err)
	}
	p, err := c.NewProducer(ctx, danube.ProducerConfig{Topic: topic, Name: "meta-prod", Partitions: 2,
		Dispatch: danube.DispatchReliable, Schema: &danube.SchemaRef{Subject: "cmds"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	in := newTestInput(t, inputYAML(srv, "[ "+topic+", /default/meta-plain ]", ""))
	key := "dev-7"
	before := time.Now().Add(-time.Second)
	send(t, p, danube.Message{Payload: []byte(`{"cmd":"reboot"}`), Key: key,
		Attributes: map[string]string{"device_id": "dev-7", "danube_topic": "spoofed"}})
	ms, acks := readN(t, in, 1, 5*time.Second)
	m := ms[0]
	part := danube.PartitionForKey(key, 2)
	str := func(k string) string {
		v, ok := m.MetaGetMut(k)
		if !ok {
			t.Fatalf("metadata %s missing", k)
		}
		s, ok := v.(string)
		if !ok {
			t.Fatalf("metadata %s = %T", k, v)
		}
		return s
	}
	for k, want := range map[string]string{
		"device_id":               "dev-7",
		danubemeta.Topic:          topic,
		danubemeta.PartitionTopic: fmt.Sprintf("%s-part-%d", topic, part),
		danubemeta.ProducerName:   fmt.Sprintf("meta-prod-%d", part),
		danubemeta.RoutingKey:     key,
		danubemeta.Subscription:   "sub",
	} {
		if got := str(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	if got := metaInt(t, m, danubemeta.Partition); got != uint64(part) {
		t.Errorf("partition = %d, want %d", got, part)
	}
	if metaInt(t, m, danubemeta.Offset) != 0 || metaInt(t, m, danubemeta.ProducerID) == 0 {
		t.Errorf("offset %d producer id %d", metaInt(t, m, danubemeta.Offset), metaInt(t, m, danubemeta.ProducerID))
	}
	if metaInt(t, m, danubemeta.SchemaID) != sid || metaInt(t, m, danubemeta.SchemaVersion) != uint64(sver) {
		t.Errorf("schema %d/%d, want %d/%d", metaInt(t, m, danubemeta.SchemaID), metaInt(t, m, danubemeta.SchemaVersion), sid, sver)
	}
	pt, _ := m.MetaGetMut(danubemeta.PublishTime)
	if ts, ok := pt.(time.Time); !ok || ts.Before(before) || ts.After(time.Now()) {
		t.Errorf("publish time %v", pt)
	}
	if pl, _ := m.AsBytes(); string(pl) != `{"cmd":"reboot"}` {
		t.Errorf("payload %q", pl)
	}
	if err := acks[0](context.Background(), nil); err != nil {
		t.Fatal(err)
	}

	// A plain topic: no partition, no key, no schema.
	_, plain := producer(t, srv, "/default/meta-plain", 0)
	send(t, plain, danube.Message{Payload: []byte("x")})
	ms, acks = readN(t, in, 1, 5*time.Second)
	for _, k := range []string{danubemeta.Partition, danubemeta.RoutingKey, danubemeta.SchemaID, danubemeta.SchemaVersion} {
		if v, ok := ms[0].MetaGetMut(k); ok {
			t.Errorf("%s set on a plain message: %v", k, v)
		}
	}
	_ = acks[0](context.Background(), nil)
	for _, k := range danubemeta.Keys {
		if !danubemeta.IsKey(k) {
			t.Errorf("IsKey(%s) = false", k)
		}
	}
	if danubemeta.IsKey("device_id") || danubemeta.IsKey("danube_partitions") {
		t.Error("IsKey is true for a non-key")
	}
}

// TestBackPressureBound: no more than max_unacked messages are handed out
// before some are acked, even when Danube delivered more.
func TestBackPressureBound(t *testing.T) {
	srv := danubetest.NewTestServer(t, danubetest.WithMaxUnacked(100))
	const topic = "/default/bp"
	_, p := producer(t, srv, topic, 0)
	const bound = 3
	in := newTestInput(t, inputYAML(srv, "[ "+topic+" ]", fmt.Sprintf("max_unacked: %d\n", bound)))
	sendN(t, p, 0, 20)
	waitFor(t, 5*time.Second, "Danube to deliver all 20", func() bool { u, _, _ := srv.Unacked(topic, "sub"); return u == 20 })
	type held struct {
		n   int
		ack service.AckFunc
	}
	var batches []held
	out := 0
	for out < bound {
		b, ack := read(t, in, 5*time.Second)
		out += len(b)
		batches = append(batches, held{len(b), ack})
	}
	if out != bound {
		t.Fatalf("handed out %d messages, bound %d", out, bound)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if b, _, err := in.ReadBatch(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("more than %d messages handed out unacked: %d more, err %v", bound, len(b), err)
	}
	if err := batches[0].ack(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	out -= batches[0].n
	more, _ := read(t, in, 5*time.Second)
	if out+len(more) > bound {
		t.Fatalf("after acking %d: %d unacked, bound %d", batches[0].n, out+len(more), bound)
	}
}

// TestCloseStopsGoroutines: Close ends every goroutine of the input (the
// package's TestMain checks for leaks), also while a ReadBatch waits.
func TestCloseStopsGoroutines(t *testing.T) {
	srv := danubetest.NewTestServer(t)
	const topic = "/default/close"
	producer(t, srv, topic, 0)
	in := newTestInput(t, inputYAML(srv, "[ "+topic+" ]", ""))
	errc := make(chan error, 1)
	go func() {
		_, _, err := in.ReadBatch(context.Background())
		errc <- err
	}()
	time.Sleep(50 * time.Millisecond)
	if err := in.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-errc:
		if !errors.Is(err, service.ErrNotConnected) {
			t.Fatalf("ReadBatch after Close: %v, want ErrNotConnected", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("ReadBatch still blocked after Close")
	}
	if err := in.Connect(context.Background()); !errors.Is(err, service.ErrEndOfInput) {
		t.Fatalf("Connect after Close: %v", err)
	}
}

// TestConnectMissingTopic: Danube never creates topics for consumers; the
// error says what to do and backs off.
func TestConnectMissingTopic(t *testing.T) {
	srv := danubetest.NewTestServer(t)
	in := componenttest.New(t, Spec(), inputYAML(srv, "[ /default/absent ]", ""), nil, newInput)
	err := componenttest.Connect(in)
	var bo *service.ErrBackOff
	if !errors.As(err, &bo) || bo.Wait < time.Second || !danube.IsPermanent(bo.Err) ||
		!strings.Contains(err.Error(), "Danube does not create topics for consumers") {
		t.Fatalf("Connect: %v", err)
	}
}

// TestConnectRefusedCredentials: a missing or rejected token says which
// fields to set, with the danube output's words (danubeconn).
func TestConnectRefusedCredentials(t *testing.T) {
	srv := danubetest.NewTestServer(t, danubetest.WithTokens("the-good-token"))
	for _, tc := range []struct{ name, extra, want string }{
		{"no token", "", "the broker requires authentication: set token (or token_file)"},
		{"wrong token", "token: not-the-token\n", "the broker rejected the token: check token or token_file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := componenttest.New(t, Spec(), inputYAML(srv, "[ /default/auth ]", tc.extra), nil, newInput)
			err := componenttest.Connect(in)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Connect: %v, want %q", err, tc.want)
			}
		})
	}
}

// TestSubscriptionTypes: two inputs on one subscription share it as the
// type says.
func TestSubscriptionTypes(t *testing.T) {
	for _, tc := range []struct {
		typ, extraA, extraB string
		check               func(t *testing.T, a, b []string)
	}{
		{"shared", "", "", func(t *testing.T, a, b []string) {
			if len(a) == 0 || len(b) == 0 || len(a)+len(b) != 8 {
				t.Fatalf("shared split %v / %v", a, b)
			}
		}},
		{"failover", "", "", func(t *testing.T, a, b []string) {
			if len(a) != 8 || len(b) != 0 {
				t.Fatalf("failover split %v / %v, want all on the first", a, b)
			}
		}},
		{"key_shared", "key_filters: [ 'a-*' ]\n", "key_filters: [ 'b-*' ]\n", func(t *testing.T, a, b []string) {
			for _, k := range a {
				if !strings.HasPrefix(k, "a-") {
					t.Fatalf("a got %v", a)
				}
			}
			for _, k := range b {
				if !strings.HasPrefix(k, "b-") {
					t.Fatalf("b got %v", b)
				}
			}
			if len(a) != 4 || len(b) != 4 {
				t.Fatalf("key_shared split %v / %v", a, b)
			}
		}},
	} {
		t.Run(tc.typ, func(t *testing.T) {
			srv := danubetest.NewTestServer(t)
			topic := "/default/types-" + strings.ReplaceAll(tc.typ, "_", "-")
			_, p := producer(t, srv, topic, 0)
			a := newTestInput(t, inputYAML(srv, "[ "+topic+" ]", "subscription_type: "+tc.typ+"\nconsumer_name: a\n"+tc.extraA))
			b := newTestInput(t, inputYAML(srv, "[ "+topic+" ]", "subscription_type: "+tc.typ+"\nconsumer_name: b\n"+tc.extraB))
			for i := range 8 {
				send(t, p, danube.Message{Payload: []byte(fmt.Sprint(i)), Key: fmt.Sprintf("%c-%d", "ab"[i%2], i)})
			}
			keys := func(in *input) []string {
				var out []string
				for {
					ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
					batch, ack, err := in.ReadBatch(ctx)
					cancel()
					if err != nil {
						return out
					}
					for _, m := range batch {
						k, _ := m.MetaGetMut(danubemeta.RoutingKey)
						out = append(out, k.(string))
					}
					if err := ack(context.Background(), nil); err != nil {
						t.Error(err)
					}
				}
			}
			var ka, kb []string
			var wg sync.WaitGroup
			wg.Add(2)
			go func() { defer wg.Done(); ka = keys(a) }()
			go func() { defer wg.Done(); kb = keys(b) }()
			wg.Wait()
			tc.check(t, ka, kb)
		})
	}
}

// TestExclusiveRefusesSecondConsumer: a second consumer name on an
// exclusive subscription is refused with advice; the same name takes over.
func TestExclusiveRefusesSecondConsumer(t *testing.T) {
	srv := danubetest.NewTestServer(t)
	const topic = "/default/excl"
	producer(t, srv, topic, 0)
	newTestInput(t, inputYAML(srv, "[ "+topic+" ]", "subscription_type: exclusive\nconsumer_name: one\n"))
	conf, err := Spec().ParseYAML(inputYAML(srv, "[ "+topic+" ]", "subscription_type: exclusive\nconsumer_name: two\n"), service.NewEnvironment())
	if err != nil {
		t.Fatal(err)
	}
	other, err := newInput(conf, service.MockResources())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = other.Close(context.Background()) })
	if err := other.Connect(context.Background()); err == nil || !strings.Contains(err.Error(), "another consumer holds the exclusive subscription") {
		t.Fatalf("second exclusive consumer: %v", err)
	}
	newTestInput(t, inputYAML(srv, "[ "+topic+" ]", "subscription_type: exclusive\nconsumer_name: one\n")) // takeover
}
