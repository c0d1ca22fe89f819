package danubetest

import (
	"maps"
	"strconv"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	"github.com/benthos-danube/benthos-danube/internal/danubepb"
)

func TestNonReliableDelivery(t *testing.T) {
	s := NewTestServer(t)
	st := dial(t, s)
	ctx := testCtx(t)
	const topic = "/default/nr"
	p, err := st.createProducer(ctx, topic, "prod", nonReliable)
	mustOK(t, err)
	mustOK(t, p.send(ctx, "before")) // no subscription yet: dropped

	_, err = st.subscribe(ctx, "/default/none", "s", "c", danubepb.ConsumerRequest_Shared)
	wantCode(t, err, codes.NotFound, "Unable to find the topic: /default/none")

	cid, err := st.subscribe(ctx, topic, "s", "c", danubepb.ConsumerRequest_Exclusive)
	mustOK(t, err)
	again, err := st.subscribe(ctx, topic, "s", "c", danubepb.ConsumerRequest_Exclusive)
	mustOK(t, err)
	if again != cid {
		t.Fatalf("same name got new id %d != %d", again, cid)
	}
	_, err = st.subscribe(ctx, topic, "s", "other", danubepb.ConsumerRequest_Exclusive)
	wantCode(t, err, codes.PermissionDenied, "Not able to subscribe to the topic "+topic+" due to")
	r := st.receive(t, cid)

	key, sid, sver := "rk", uint64(3), uint32(2)
	sent := &danubepb.StreamMessage{
		RequestId:     77,
		MsgId:         &danubepb.MsgID{ProducerId: p.id, TopicName: topic, BrokerAddr: "http://b:1"},
		Payload:       []byte("payload"),
		PublishTime:   123456,
		ProducerName:  "prod",
		Attributes:    map[string]string{"a": "1", "b": "2"},
		SchemaId:      &sid,
		SchemaVersion: &sver,
		RoutingKey:    &key,
	}
	_, err = st.prod.SendMessage(ctx, sent)
	mustOK(t, err)
	got := r.next(t, 5*time.Second)
	if !proto.Equal(got, sent) {
		t.Fatalf("delivered message differs:\n got %v\nwant %v", got, sent)
	}
	m := s.Messages(topic)
	if len(m) != 2 || m[1].RoutingKey != "rk" || !m[1].HasRoutingKey || *m[1].SchemaID != 3 || m[1].RequestID != 77 ||
		!maps.Equal(m[1].Attributes, sent.Attributes) || m[1].Partition != -1 || m[1].Offset != 0 {
		t.Fatalf("read back %+v", m)
	}
	m[1].Attributes["a"] = "changed"
	if s.Messages(topic)[1].Attributes["a"] != "1" {
		t.Fatal("Messages does not return copies")
	}
	// Ack and Nack are no-ops on non-reliable topics; unknown subscription is Internal.
	mustOK(t, st.ack(ctx, "s", got))
	mustOK(t, st.nack(ctx, "s", got, nil))
	wantCode(t, st.ack(ctx, "nope", got), codes.Internal, "Error acknowledging message: Subscription not found")
	wantCode(t, st.nack(ctx, "nope", got, nil), codes.Internal, "Error negatively acknowledging message: Subscription not found")
	bad := proto.Clone(got).(*danubepb.StreamMessage)
	bad.MsgId.TopicName = "/default/zzz"
	wantCode(t, st.ack(ctx, "s", bad), codes.Internal, "Topic /default/zzz not found in registry")
	r.none(t, 100*time.Millisecond)
}

func TestSharedRoundRobinAndKeyShared(t *testing.T) {
	s := NewTestServer(t)
	st := dial(t, s)
	ctx := testCtx(t)
	const topic = "/default/rr"
	p, err := st.createProducer(ctx, topic, "prod", nonReliable)
	mustOK(t, err)
	c1, err := st.subscribe(ctx, topic, "sh", "c1", danubepb.ConsumerRequest_Shared)
	mustOK(t, err)
	c2, err := st.subscribe(ctx, topic, "sh", "c2", danubepb.ConsumerRequest_Shared)
	mustOK(t, err)
	k1, err := st.subscribe(ctx, topic, "ks", "k1", danubepb.ConsumerRequest_KeyShared)
	mustOK(t, err)
	k2, err := st.subscribe(ctx, topic, "ks", "k2", danubepb.ConsumerRequest_KeyShared)
	mustOK(t, err)
	r1, r2, rk1, rk2 := st.receive(t, c1), st.receive(t, c2), st.receive(t, k1), st.receive(t, k2)
	for _, id := range []uint64{c1, c2, k1, k2} {
		waitAttached(t, s, id)
	}
	for i := range 4 {
		mustOK(t, p.send(ctx, strconv.Itoa(i)))
		time.Sleep(5 * time.Millisecond)
	}
	for _, r := range []*receiver{r1, r2} {
		a, b := r.next(t, 5*time.Second), r.next(t, 5*time.Second)
		if a.GetRequestId()+2 != b.GetRequestId() {
			t.Fatalf("not round robin: %d %d", a.GetRequestId(), b.GetRequestId())
		}
	}
	// KeyShared without routing key hashes producer_name: all four go to one consumer.
	n1, n2 := len(drain(rk1, 300*time.Millisecond)), len(drain(rk2, 50*time.Millisecond))
	if n1+n2 != 4 || (n1 != 0 && n2 != 0) {
		t.Fatalf("key shared split %d/%d", n1, n2)
	}
}

func drain(r *receiver, wait time.Duration) []*danubepb.StreamMessage {
	var out []*danubepb.StreamMessage
	for {
		select {
		case m, ok := <-r.ch:
			if !ok {
				return out
			}
			out = append(out, m)
		case <-time.After(wait):
			return out
		}
	}
}

func TestReliableDelivery(t *testing.T) {
	s := NewTestServer(t, WithMaxUnacked(3), WithNackDelay(50*time.Millisecond), WithAckTimeout(300*time.Millisecond))
	st := dial(t, s)
	ctx := testCtx(t)
	const topic = "/default/rel"
	p, err := st.createProducer(ctx, topic, "prod", reliable)
	mustOK(t, err)
	mustOK(t, p.send(ctx, "old")) // offset 0, before the subscription: not delivered
	cid, err := st.subscribe(ctx, topic, "sub", "c", danubepb.ConsumerRequest_Exclusive)
	mustOK(t, err)
	r := st.receive(t, cid)
	for i := 1; i <= 5; i++ {
		mustOK(t, p.send(ctx, "m"+strconv.Itoa(i)))
	}
	// Window of 3: offsets 1, 2, 3 arrive, then nothing until an ack.
	var got []*danubepb.StreamMessage
	for range 3 {
		got = append(got, r.next(t, 2*time.Second))
	}
	for i, m := range got {
		if m.GetMsgId().GetTopicOffset() != uint64(i+1) {
			t.Fatalf("offset %d at %d", m.GetMsgId().GetTopicOffset(), i)
		}
	}
	r.none(t, 100*time.Millisecond)

	// Ack 1 → 4 is dispatched.
	mustOK(t, st.ack(ctx, "sub", got[0]))
	m4 := r.next(t, 2*time.Second)
	if m4.GetMsgId().GetTopicOffset() != 4 {
		t.Fatalf("want offset 4, got %d", m4.GetMsgId().GetTopicOffset())
	}
	// Nack 2 → redelivered after the base delay; ack 3 and 4.
	start := time.Now()
	mustOK(t, st.nack(ctx, "sub", got[1], nil))
	mustOK(t, st.ack(ctx, "sub", got[2]))
	mustOK(t, st.ack(ctx, "sub", m4))
	var redelivered *danubepb.StreamMessage
	for redelivered == nil {
		m := r.next(t, 2*time.Second)
		if m.GetMsgId().GetTopicOffset() == 2 {
			redelivered = m
		} else {
			mustOK(t, st.ack(ctx, "sub", m)) // offset 5
		}
	}
	if d := time.Since(start); d < 40*time.Millisecond {
		t.Fatalf("nack redelivered too early: %v", d)
	}
	if string(redelivered.GetPayload()) != "m2" {
		t.Fatalf("payload %q", redelivered.GetPayload())
	}

	// Never ack it: ack-timeout redelivery.
	start = time.Now()
	again := r.next(t, 2*time.Second)
	if again.GetMsgId().GetTopicOffset() != 2 || time.Since(start) < 200*time.Millisecond {
		t.Fatalf("ack timeout redelivery: offset %d after %v", again.GetMsgId().GetTopicOffset(), time.Since(start))
	}

	// Nack with a longer requested delay wins over the policy.
	d := uint64(250)
	start = time.Now()
	mustOK(t, st.nack(ctx, "sub", again, &d))
	again = r.next(t, 2*time.Second)
	if time.Since(start) < 200*time.Millisecond || again.GetMsgId().GetTopicOffset() != 2 {
		t.Fatalf("delay_ms ignored or wrong message: offset %d after %v", again.GetMsgId().GetTopicOffset(), time.Since(start))
	}

	// Stream drop → immediate redelivery to the next stream.
	r.cancel()
	drain(r, 50*time.Millisecond)
	waitDetached(t, s, cid)
	r2 := st.receive(t, cid)
	m := r2.next(t, time.Second)
	if m.GetMsgId().GetTopicOffset() != 2 {
		t.Fatalf("after reattach got offset %d", m.GetMsgId().GetTopicOffset())
	}
	mustOK(t, st.ack(ctx, "sub", m))
	// Late and unknown acks are ignored.
	mustOK(t, st.ack(ctx, "sub", m))

	// The cursor survives a restart: after re-subscribing, only new messages.
	s.Restart()
	drain(r2, 50*time.Millisecond)
	p2, err := st.createProducer(ctx, topic, "prod", reliable)
	mustOK(t, err)
	mustOK(t, p2.send(ctx, "m6"))
	cid2, err := st.subscribe(ctx, topic, "sub", "c", danubepb.ConsumerRequest_Exclusive)
	mustOK(t, err)
	r3 := st.receive(t, cid2)
	m = r3.next(t, 2*time.Second)
	if m.GetMsgId().GetTopicOffset() != 6 || string(m.GetPayload()) != "m6" {
		t.Fatalf("after restart got offset %d %q", m.GetMsgId().GetTopicOffset(), m.GetPayload())
	}
}

func TestStreamTakeoverAndBlock(t *testing.T) {
	s := NewTestServer(t, WithNackDelay(time.Millisecond), WithMaxRedeliveries(1))
	st := dial(t, s)
	ctx := testCtx(t)
	const topic = "/default/take"
	p, err := st.createProducer(ctx, topic, "prod", reliable)
	mustOK(t, err)
	cid, err := st.subscribe(ctx, topic, "sub", "c", danubepb.ConsumerRequest_Shared)
	mustOK(t, err)
	r1 := st.receive(t, cid)
	waitAttached(t, s, cid)
	r2 := st.receive(t, cid) // takes over: the first stream ends OK
	select {
	case <-r1.ch:
	case <-time.After(2 * time.Second):
		t.Fatal("first stream not ended")
	}
	mustOK(t, <-r1.done)

	mustOK(t, p.send(ctx, "a"))
	m := r2.next(t, time.Second)
	mustOK(t, st.nack(ctx, "sub", m, nil))
	m = r2.next(t, time.Second) // redelivery 1 (the limit)
	mustOK(t, st.nack(ctx, "sub", m, nil))
	mustOK(t, p.send(ctx, "b"))
	r2.none(t, 200*time.Millisecond) // exhausted: Block holds everything
}

// waitAttached waits until the server has attached a stream for consumer id.
func waitAttached(t *testing.T, s *Server, id uint64) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) {
		s.cluster.mu.Lock()
		co := s.consumers[id]
		ok := co != nil && co.stop != nil
		s.cluster.mu.Unlock()
		if ok {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("no stream attached for consumer %d", id)
}

// waitDetached waits until the server has noticed the end of consumer id's stream.
func waitDetached(t *testing.T, s *Server, id uint64) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) {
		s.cluster.mu.Lock()
		co := s.consumers[id]
		ok := co == nil || co.stop == nil
		s.cluster.mu.Unlock()
		if ok {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("stream of consumer %d still attached", id)
}

// TestNonReliableSlowConsumerDrops checks Danube's slow-consumer rule on
// non-reliable topics: the broker never waits for a consumer; a message for a
// full queue is dropped, and every drop is counted.
func TestNonReliableSlowConsumerDrops(t *testing.T) {
	for _, tc := range []struct {
		name        string
		opts        []Option
		queue, sent int
	}{
		{"default queue", nil, DefaultConsumerQueue, 10},
		{"configured queue", []Option{WithConsumerQueue(16)}, 16, 10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := NewTestServer(t, tc.opts...)
			st := dial(t, s)
			ctx := testCtx(t)
			const topic = "/default/slow"
			p, err := st.createProducer(ctx, topic, "p", nonReliable)
			mustOK(t, err)
			// Subscribed but not reading: the queue fills, nothing drains it.
			cid, err := st.subscribe(ctx, topic, "s", "c", danubepb.ConsumerRequest_Exclusive)
			mustOK(t, err)
			for i := range tc.sent {
				mustOK(t, p.send(ctx, strconv.Itoa(i)))
			}
			kept := min(tc.queue, tc.sent)
			if got := s.DroppedMessages(topic); got != tc.sent-kept {
				t.Fatalf("DroppedMessages = %d, want %d", got, tc.sent-kept)
			}
			r := st.receive(t, cid)
			for i := range kept {
				if m := r.next(t, 5*time.Second); string(m.GetPayload()) != strconv.Itoa(i) {
					t.Fatalf("delivery %d = %q, want the oldest messages in order", i, m.GetPayload())
				}
			}
			r.none(t, 100*time.Millisecond)
		})
	}
}

// TestRedeliveryBacklogOrder: after a stream drop the unacked deliveries
// come back in offset order, a nacked one only after its delay, and each
// exactly once.
func TestRedeliveryBacklogOrder(t *testing.T) {
	s := NewTestServer(t, WithMaxUnacked(20), WithNackDelay(300*time.Millisecond))
	st := dial(t, s)
	ctx := testCtx(t)
	const topic = "/default/backlog"
	p, err := st.createProducer(ctx, topic, "prod", reliable)
	mustOK(t, err)
	cid, err := st.subscribe(ctx, topic, "sub", "c", danubepb.ConsumerRequest_Exclusive)
	mustOK(t, err)
	r1 := st.receive(t, cid)
	for i := range 10 {
		mustOK(t, p.send(ctx, strconv.Itoa(i)))
	}
	var first []*danubepb.StreamMessage
	for range 10 {
		first = append(first, r1.next(t, 2*time.Second))
	}
	nackedAt := time.Now()
	mustOK(t, st.nack(ctx, "sub", first[3], nil))
	mustOK(t, st.ack(ctx, "sub", first[5]))
	r1.cancel() // the stream drops: 0-2, 4 and 6-9 are redelivered at once
	waitUntil(t, func() bool { return s.cluster.consumerInactive(cid) })

	r2 := st.receive(t, cid)
	want := []uint64{0, 1, 2, 4, 6, 7, 8, 9}
	for _, w := range want {
		m := r2.next(t, 2*time.Second)
		if got := m.GetMsgId().GetTopicOffset(); got != w {
			t.Fatalf("redelivered offset %d, want %d (order %v)", got, w, want)
		}
		mustOK(t, st.ack(ctx, "sub", m))
	}
	m := r2.next(t, 2*time.Second)
	if m.GetMsgId().GetTopicOffset() != 3 || time.Since(nackedAt) < 250*time.Millisecond {
		t.Fatalf("got offset %d after %v, want the nacked 3 after its 300ms delay", m.GetMsgId().GetTopicOffset(), time.Since(nackedAt))
	}
	mustOK(t, st.ack(ctx, "sub", m))
	r2.none(t, 200*time.Millisecond)
	if u, a, _ := s.Unacked(topic, "sub"); u != 0 || a != 10 {
		t.Fatalf("unacked %d acked %d, want 0 and 10", u, a)
	}
}

// consumerInactive reports whether the consumer's stream is gone.
func (c *Cluster) consumerInactive(id uint64) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, b := range c.brokers {
		if co := b.consumers[id]; co != nil {
			return co.stop == nil
		}
	}
	return false
}

func waitUntil(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached in 5s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
