package danube_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/benthos-danube/benthos-danube/internal/danube"
	"github.com/benthos-danube/benthos-danube/internal/danube/danubetest"
)

func TestConsumerAckAndNackRedelivery(t *testing.T) {
	srv := danubetest.NewTestServer(t, danubetest.WithNackDelay(50*time.Millisecond))
	c := newClient(t, srv.URL())
	const topic = "/default/acks"
	p := newProducer(t, c, danube.ProducerConfig{Topic: topic, Name: "p", Dispatch: danube.DispatchReliable})
	co := newConsumer(t, c, danube.ConsumerConfig{Topic: topic, Subscription: "sub", Name: "c1", Type: danube.SubExclusive})

	send(t, p, danube.Message{Payload: []byte("m0"), Attributes: map[string]string{"a": "1"}, Key: "k"})
	m := receive(t, co, 5*time.Second)
	if string(m.Payload) != "m0" || m.Offset != 0 || m.Topic != topic || m.Attributes["a"] != "1" ||
		!m.HasRoutingKey || m.RoutingKey != "k" || m.ProducerName != "p" || time.Since(m.PublishTime) > time.Minute {
		t.Fatalf("unexpected delivery %+v", m)
	}
	start := time.Now()
	if err := co.Nack(context.Background(), m, 100*time.Millisecond, "try again"); err != nil {
		t.Fatalf("Nack: %v", err)
	}
	again := receive(t, co, 5*time.Second)
	if string(again.Payload) != "m0" || again.Offset != 0 {
		t.Fatalf("redelivery %+v", again)
	}
	if d := time.Since(start); d < 90*time.Millisecond {
		t.Fatalf("redelivered after %v, before the requested 100ms delay", d)
	}
	if err := co.Ack(context.Background(), again); err != nil {
		t.Fatalf("Ack: %v", err)
	}
	send(t, p, danube.Message{Payload: []byte("m1")})
	m1 := receive(t, co, 5*time.Second)
	if string(m1.Payload) != "m1" || m1.Offset != 1 {
		t.Fatalf("next delivery %+v", m1)
	}
	if err := co.Ack(context.Background(), m1); err != nil {
		t.Fatalf("Ack: %v", err)
	}
	// Nothing else is pending: the acked message is not redelivered.
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if extra, err := co.Receive(ctx); err == nil {
		t.Fatalf("unexpected redelivery of %q", extra.Payload)
	}
}

func TestConsumerAckTimeoutRedelivery(t *testing.T) {
	srv := danubetest.NewTestServer(t, danubetest.WithAckTimeout(200*time.Millisecond))
	c := newClient(t, srv.URL())
	p := newProducer(t, c, danube.ProducerConfig{Topic: "/default/acktimeout", Name: "p", Dispatch: danube.DispatchReliable})
	co := newConsumer(t, c, danube.ConsumerConfig{Topic: "/default/acktimeout", Subscription: "s", Name: "c", Type: danube.SubShared})
	send(t, p, danube.Message{Payload: []byte("x")})
	first := receive(t, co, 5*time.Second)
	second := receive(t, co, 5*time.Second)
	if first.Offset != second.Offset || string(second.Payload) != "x" {
		t.Fatalf("no redelivery after ack timeout: %+v", second)
	}
	if err := co.Ack(context.Background(), second); err != nil {
		t.Fatal(err)
	}
}

func TestConsumerResubscribesAfterRestart(t *testing.T) {
	srv := danubetest.NewTestServer(t)
	c := newClient(t, srv.URL())
	const topic = "/default/resub"
	p := newProducer(t, c, danube.ProducerConfig{Topic: topic, Name: "p", Dispatch: danube.DispatchReliable})
	co := newConsumer(t, c, danube.ConsumerConfig{Topic: topic, Subscription: "s", Name: "c", Type: danube.SubExclusive})
	send(t, p, danube.Message{Payload: []byte("before")})
	m := receive(t, co, 5*time.Second) // not acked
	srv.Restart()
	again := receive(t, co, 5*time.Second)
	if string(again.Payload) != "before" || again.Offset != m.Offset {
		t.Fatalf("after restart got %+v, want redelivery of offset %d", again, m.Offset)
	}
	if err := co.Ack(context.Background(), again); err != nil {
		t.Fatalf("Ack after resubscribe: %v", err)
	}
	send(t, p, danube.Message{Payload: []byte("after")})
	if got := receive(t, co, 5*time.Second); string(got.Payload) != "after" {
		t.Fatalf("got %q", got.Payload)
	}
}

func TestConsumerPartitionedTopic(t *testing.T) {
	srv := danubetest.NewTestServer(t)
	c := newClient(t, srv.URL())
	const topic = "/default/cparts"
	p := newProducer(t, c, danube.ProducerConfig{Topic: topic, Name: "p", Partitions: 3, Dispatch: danube.DispatchReliable})
	co := newConsumer(t, c, danube.ConsumerConfig{Topic: topic, Subscription: "s", Name: "c", Type: danube.SubShared})
	for i := 0; i < 9; i++ {
		send(t, p, danube.Message{Payload: []byte(fmt.Sprint(i))})
	}
	perPart := map[string]int{}
	for i := 0; i < 9; i++ {
		m := receive(t, co, 5*time.Second)
		perPart[m.Topic]++
		if err := co.Ack(context.Background(), m); err != nil {
			t.Fatal(err)
		}
	}
	if len(perPart) != 3 || perPart[topic+"-part-0"] != 3 {
		t.Fatalf("deliveries per partition %v", perPart)
	}
}

func TestSubscribeErrors(t *testing.T) {
	srv := danubetest.NewTestServer(t)
	c := newClient(t, srv.URL())
	ctx := context.Background()
	_, err := c.Subscribe(ctx, danube.ConsumerConfig{Topic: "/default/missing", Subscription: "s"})
	var de *danube.Error
	if !errors.As(err, &de) || de.Code != codes.NotFound || !danube.IsPermanent(err) {
		t.Fatalf("missing topic: %v", err)
	}
	if _, err := c.Subscribe(ctx, danube.ConsumerConfig{Topic: "bad", Subscription: "s"}); !danube.IsPermanent(err) {
		t.Fatalf("bad topic: %v", err)
	}
}

// collect receives on every consumer concurrently, acking each message,
// until none arrives for idle; it returns the payloads per consumer.
func collect(t *testing.T, idle time.Duration, cos ...*danube.Consumer) [][]*danube.ReceivedMessage {
	t.Helper()
	out := make([][]*danube.ReceivedMessage, len(cos))
	var wg sync.WaitGroup
	for i, co := range cos {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				ctx, cancel := context.WithTimeout(context.Background(), idle)
				m, err := co.Receive(ctx)
				cancel()
				if err != nil {
					return
				}
				out[i] = append(out[i], m)
				if err := co.Ack(context.Background(), m); err != nil {
					t.Errorf("Ack: %v", err)
					return
				}
			}
		}()
	}
	wg.Wait()
	return out
}

func TestSubscriptionTypes(t *testing.T) {
	srv := danubetest.NewTestServer(t)
	c := newClient(t, srv.URL())
	const n = 12
	for _, tc := range []struct {
		name  string
		typ   danube.SubscriptionType
		check func(t *testing.T, got [][]*danube.ReceivedMessage)
	}{
		{"exclusive", danube.SubExclusive, func(t *testing.T, got [][]*danube.ReceivedMessage) {
			if len(got[0]) != n {
				t.Errorf("exclusive consumer got %d of %d", len(got[0]), n)
			}
		}},
		{"shared", danube.SubShared, func(t *testing.T, got [][]*danube.ReceivedMessage) {
			if len(got[0])+len(got[1]) != n || len(got[0]) == 0 || len(got[1]) == 0 {
				t.Errorf("shared split %d/%d of %d", len(got[0]), len(got[1]), n)
			}
		}},
		{"failover", danube.SubFailover, func(t *testing.T, got [][]*danube.ReceivedMessage) {
			if len(got[0]) != n || len(got[1]) != 0 {
				t.Errorf("failover split %d/%d, want %d/0", len(got[0]), len(got[1]), n)
			}
		}},
		{"key_shared", danube.SubKeyShared, func(t *testing.T, got [][]*danube.ReceivedMessage) {
			if len(got[0])+len(got[1]) != n {
				t.Errorf("key_shared got %d/%d of %d", len(got[0]), len(got[1]), n)
			}
			owner := map[string]int{}
			for i, ms := range got {
				for _, m := range ms {
					if o, ok := owner[m.RoutingKey]; ok && o != i {
						t.Errorf("key %q delivered to both consumers", m.RoutingKey)
					}
					owner[m.RoutingKey] = i
				}
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			topic := "/default/subtype-" + tc.name
			p := newProducer(t, c, danube.ProducerConfig{Topic: topic, Name: "p", Dispatch: danube.DispatchReliable})
			cfg := danube.ConsumerConfig{Topic: topic, Subscription: "sub", Name: "first", Type: tc.typ}
			c1 := newConsumer(t, c, cfg)
			cfg.Name = "second"
			if tc.typ == danube.SubExclusive {
				_, err := c.Subscribe(context.Background(), cfg)
				var de *danube.Error
				if !errors.As(err, &de) || de.Code != codes.PermissionDenied {
					t.Fatalf("second exclusive consumer: %v", err)
				}
				send(t, p, danube.Message{Payload: []byte("x")})
				for i := 1; i < n; i++ {
					send(t, p, danube.Message{Payload: []byte(fmt.Sprint(i))})
				}
				tc.check(t, collect(t, 400*time.Millisecond, c1))
				return
			}
			c2 := newConsumer(t, c, cfg)
			for i := 0; i < n; i++ {
				send(t, p, danube.Message{Payload: []byte(fmt.Sprint(i)), Key: fmt.Sprintf("key-%d", i%4)})
			}
			tc.check(t, collect(t, 400*time.Millisecond, c1, c2))
		})
	}
}

func TestConsumerFollowsTopicMove(t *testing.T) {
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
	c := newClient(t, a.URL())
	const topic = "/default/moving"
	p := newProducer(t, c, danube.ProducerConfig{Topic: topic, Name: "p", Dispatch: danube.DispatchReliable})
	co := newConsumer(t, c, danube.ConsumerConfig{Topic: topic, Subscription: "s", Name: "c", Type: danube.SubFailover,
		HealthInterval: 50 * time.Millisecond})
	send(t, p, danube.Message{Payload: []byte("on-a")})
	m := receive(t, co, 5*time.Second)
	if err := co.Ack(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	a.MoveTopic(topic, b)
	send(t, p, danube.Message{Payload: []byte("on-b")})
	m = receive(t, co, 5*time.Second)
	if string(m.Payload) != "on-b" || m.Offset != 1 {
		t.Fatalf("after move got %q offset %d", m.Payload, m.Offset)
	}
	if err := co.Ack(context.Background(), m); err != nil {
		t.Fatalf("Ack on new owner: %v", err)
	}
	if b.ConsumerCount() != 1 {
		t.Fatalf("consumers on B = %d", b.ConsumerCount())
	}
}

func TestConsumerSeveralTopicsAndBatches(t *testing.T) {
	srv := danubetest.NewTestServer(t)
	c := newClient(t, srv.URL())
	pa := newProducer(t, c, danube.ProducerConfig{Topic: "/default/multi-a", Name: "pa", Dispatch: danube.DispatchReliable})
	pb := newProducer(t, c, danube.ProducerConfig{Topic: "/default/multi-b", Name: "pb", Partitions: 2, Dispatch: danube.DispatchReliable})
	co := newConsumer(t, c, danube.ConsumerConfig{Topic: "/default/multi-a", Topics: []string{"/default/multi-b", "/default/multi-a"},
		Subscription: "s", Name: "c", Type: danube.SubExclusive, Buffer: 8})
	want := []string{"/default/multi-a", "/default/multi-b-part-0", "/default/multi-b-part-1"}
	if got := co.Topics(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("Topics() = %v, want %v", got, want)
	}
	send(t, pa, danube.Message{Payload: []byte("a")})
	send(t, pb, danube.Message{Payload: []byte("b0")})
	send(t, pb, danube.Message{Payload: []byte("b1")})
	got := map[string]*danube.ReceivedMessage{}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for len(got) < 3 {
		ms, err := co.ReceiveBatch(ctx, 10)
		if err != nil {
			t.Fatalf("ReceiveBatch: %v (have %d)", err, len(got))
		}
		if len(ms) == 0 || len(ms) > 10 {
			t.Fatalf("ReceiveBatch returned %d messages", len(ms))
		}
		for _, m := range ms {
			got[string(m.Payload)] = m
			if err := co.Ack(ctx, m); err != nil {
				t.Fatal(err)
			}
		}
	}
	if m := got["a"]; m.BaseTopic != "/default/multi-a" || m.Partition != -1 || m.Topic != "/default/multi-a" || m.ProducerID == 0 {
		t.Fatalf("a: %+v", m)
	}
	for i, p := range []string{"b0", "b1"} {
		if m := got[p]; m.BaseTopic != "/default/multi-b" || m.Partition != i || m.Topic != fmt.Sprintf("/default/multi-b-part-%d", i) {
			t.Fatalf("%s: %+v", p, m)
		}
	}
	if _, err := c.Subscribe(context.Background(), danube.ConsumerConfig{Topics: []string{"/default/multi-a", "/default/nope"}, Subscription: "s2"}); !danube.IsPermanent(err) {
		t.Fatalf("one missing topic of several: %v", err)
	}
}

func TestConsumerDownAndTryReceive(t *testing.T) {
	srv := danubetest.NewTestServer(t)
	c := newClient(t, srv.URL())
	const topic = "/default/down"
	p := newProducer(t, c, danube.ProducerConfig{Topic: topic, Name: "p", Partitions: 2, Dispatch: danube.DispatchReliable})
	co := newConsumer(t, c, danube.ConsumerConfig{Topic: topic, Subscription: "s", Name: "c", Type: danube.SubExclusive})
	if ms, err := co.TryReceiveBatch(10); err != nil || len(ms) != 0 {
		t.Fatalf("TryReceiveBatch on an empty consumer: %d messages, %v", len(ms), err)
	}
	if d := co.Down(); d != nil {
		t.Fatalf("Down() = %v before any outage", d)
	}
	send(t, p, danube.Message{Payload: []byte("x")})
	waitUntil(t, 5*time.Second, func() bool {
		ms, err := co.TryReceiveBatch(10)
		if err != nil {
			t.Fatal(err)
		}
		return len(ms) == 1
	})
	srv.Stop()
	waitUntil(t, 5*time.Second, func() bool { return len(co.Down()) == 2 })
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 15*time.Second, func() bool { return co.Down() == nil })
	_ = co.Close()
	if _, err := co.TryReceiveBatch(1); !errors.Is(err, danube.ErrClosed) {
		t.Fatalf("TryReceiveBatch after Close: %v", err)
	}
}

func waitUntil(t *testing.T, within time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not reached within %v", within)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
