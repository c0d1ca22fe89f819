package danubetest

import (
	"context"
	"hash/fnv"
	"maps"
	"slices"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/benthos-danube/benthos-danube/internal/danubepb"
)

var nowFunc = time.Now

type consumerSvc struct {
	danubepb.UnimplementedConsumerServiceServer
	s *Server
}

func (cs consumerSvc) Subscribe(_ context.Context, req *danubepb.ConsumerRequest) (*danubepb.ConsumerResponse, error) {
	s := cs.s
	c := s.cluster
	name := req.GetTopicName()
	if !validTopicName(name) {
		return nil, status.Error(codes.InvalidArgument, invalidTopicText(name))
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	t := c.topics[name]
	if t == nil {
		return nil, status.Errorf(codes.NotFound, "Unable to find the topic: %s", name)
	}
	if t.owner != s {
		return nil, status.Error(codes.Unavailable, servedElsewhere)
	}
	typ := req.GetSubscriptionType()
	if typ < danubepb.ConsumerRequest_Exclusive || typ > danubepb.ConsumerRequest_KeyShared {
		return nil, status.Errorf(codes.PermissionDenied,
			"Not able to subscribe to the topic %s due to invalid subscription type %d", name, typ)
	}
	resp := func(id uint64) *danubepb.ConsumerResponse {
		return &danubepb.ConsumerResponse{RequestId: req.GetRequestId(), ConsumerId: id, ConsumerName: req.GetConsumerName()}
	}
	sub := t.subs[req.GetSubscription()]
	if sub != nil {
		for _, co := range sub.consumers {
			if co.name == req.GetConsumerName() {
				// Takeover: cancel the old stream, redeliver its in-flight messages.
				s.endStreamLocked(co, nil)
				co.active = true
				co.filters = slices.Clone(req.GetKeyFilters())
				s.dispatchTopicLocked(t, nowFunc())
				return resp(co.id), nil
			}
		}
		if sub.typ == danubepb.ConsumerRequest_Exclusive {
			for _, co := range sub.consumers {
				if co.active {
					return nil, status.Errorf(codes.PermissionDenied,
						"Not able to subscribe to the topic %s due to exclusive subscription %s already has consumer %s",
						name, sub.name, co.name)
				}
			}
		}
	} else {
		sub = &subscription{
			name:      req.GetSubscription(),
			typ:       typ,
			topic:     t,
			start:     uint64(len(t.log)),
			cursor:    uint64(len(t.log)),
			next:      uint64(len(t.log)),
			acked:     map[uint64]bool{},
			inflight:  map[uint64]delivery{},
			redeliver: map[uint64]time.Time{},
			attempts:  map[uint64]int{},
		}
		t.subs[sub.name] = sub
	}
	id := randomID(func(id uint64) bool { _, ok := s.consumers[id]; return ok })
	co := &consumer{
		id:      id,
		name:    req.GetConsumerName(),
		sub:     sub,
		broker:  s,
		filters: slices.Clone(req.GetKeyFilters()),
		active:  true,
		queue:   make(chan *danubepb.StreamMessage, s.queueCap(t)),
	}
	sub.consumers = append(sub.consumers, co)
	s.consumers[id] = co
	s.dispatchTopicLocked(t, nowFunc())
	s.cfg.logger.Debug("danubetest consumer subscribed", "topic", name, "subscription", sub.name, "consumer", co.name, "id", id)
	return resp(id), nil
}

func (s *Server) queueCap(t *topic) int {
	if t.reliable {
		return s.cfg.maxUnacked + s.cfg.queueSize
	}
	return s.cfg.queueSize
}

// endStreamLocked detaches the consumer's stream (if any) with err as its end
// status (nil = OK), gives it a fresh queue and queues its in-flight reliable
// messages for immediate redelivery.
func (s *Server) endStreamLocked(co *consumer, err error) {
	if co.stop != nil {
		co.stopErr = err
		close(co.stop)
		co.stop = nil
	}
	co.queue = make(chan *danubepb.StreamMessage, cap(co.queue))
	sub := co.sub
	now := nowFunc()
	for off, d := range sub.inflight {
		if d.c == co {
			delete(sub.inflight, off)
			sub.redeliverLocked(off, now)
		}
	}
}

// removeConsumerLocked ends the consumer's stream and removes it from its
// subscription and from its broker's registry.
func (s *Server) removeConsumerLocked(co *consumer, err error) {
	s.endStreamLocked(co, err)
	co.active = false
	sub := co.sub
	sub.consumers = slices.DeleteFunc(sub.consumers, func(x *consumer) bool { return x == co })
	delete(s.consumers, co.id)
}

func (cs consumerSvc) ReceiveMessages(req *danubepb.ReceiveRequest, stream danubepb.ConsumerService_ReceiveMessagesServer) error {
	s := cs.s
	c := s.cluster
	c.mu.Lock()
	co := s.consumers[req.GetConsumerId()]
	if co == nil {
		c.mu.Unlock()
		return status.Errorf(codes.NotFound, "The consumer with the id %d does not exist", req.GetConsumerId())
	}
	if co.stop != nil {
		s.endStreamLocked(co, nil) // a second stream takes over; the first ends OK
	}
	stop := make(chan struct{})
	co.stop = stop
	co.active = true
	q := co.queue
	t := co.sub.topic
	t.owner.dispatchTopicLocked(t, nowFunc())
	c.mu.Unlock()

	drop := func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		if co.stop == stop {
			co.stop = nil
			co.active = false
			s.endStreamLocked(co, nil)
			t.owner.dispatchTopicLocked(t, nowFunc())
		}
	}
	ctx := stream.Context()
	for {
		select {
		case <-ctx.Done():
			drop()
			return status.FromContextError(ctx.Err()).Err()
		case <-stop:
			c.mu.Lock()
			err := co.stopErr
			c.mu.Unlock()
			return err
		case m := <-q:
			if err := stream.Send(m); err != nil {
				drop()
				return err
			}
		}
	}
}

// lookupSub resolves Ack/Nack routing: topic by msg_id.topic_name, then the
// subscription by name.
func (s *Server) lookupSubLocked(topicName, subName, prefix string) (*subscription, error) {
	t := s.cluster.topics[topicName]
	if t == nil {
		return nil, status.Errorf(codes.Internal, "%s: Topic %s not found in registry", prefix, topicName)
	}
	sub := t.subs[subName]
	if sub == nil {
		return nil, status.Errorf(codes.Internal, "%s: Subscription not found", prefix)
	}
	return sub, nil
}

func (cs consumerSvc) Ack(_ context.Context, req *danubepb.AckRequest) (*danubepb.AckResponse, error) {
	s := cs.s
	c := s.cluster
	c.mu.Lock()
	defer c.mu.Unlock()
	sub, err := s.lookupSubLocked(req.GetMsgId().GetTopicName(), req.GetSubscriptionName(), "Error acknowledging message")
	if err != nil {
		return nil, err
	}
	if sub.topic.reliable {
		sub.ackLocked(req.GetMsgId().GetTopicOffset())
		sub.topic.owner.dispatchTopicLocked(sub.topic, nowFunc())
	}
	return &danubepb.AckResponse{RequestId: req.GetRequestId()}, nil
}

func (cs consumerSvc) Nack(_ context.Context, req *danubepb.NackRequest) (*danubepb.NackResponse, error) {
	s := cs.s
	c := s.cluster
	c.mu.Lock()
	defer c.mu.Unlock()
	sub, err := s.lookupSubLocked(req.GetMsgId().GetTopicName(), req.GetSubscriptionName(), "Error negatively acknowledging message")
	if err != nil {
		return nil, err
	}
	if !sub.topic.reliable {
		return &danubepb.NackResponse{RequestId: req.GetRequestId()}, nil
	}
	off := req.GetMsgId().GetTopicOffset()
	if _, ok := sub.inflight[off]; ok {
		owner := sub.topic.owner
		delete(sub.inflight, off)
		att := max(sub.attempts[off], 1)
		delay := MaxNackDelay
		if att <= 16 {
			delay = min(owner.cfg.nackDelay<<(att-1), MaxNackDelay)
		}
		if req.DelayMs != nil {
			delay = max(delay, time.Duration(min(*req.DelayMs, uint64(MaxNackDelay/time.Millisecond)))*time.Millisecond)
		}
		delay = min(delay, MaxNackDelay)
		at := nowFunc().Add(delay)
		sub.redeliverLocked(off, at)
		owner.scheduleLocked(at)
	}
	return &danubepb.NackResponse{RequestId: req.GetRequestId()}, nil
}

// ackLocked records a reliable ack and advances the contiguous cursor.
// Offsets that are not outstanding are ignored.
func (sub *subscription) ackLocked(off uint64) {
	if off < sub.cursor || off >= sub.next || sub.acked[off] {
		return
	}
	delete(sub.inflight, off)
	delete(sub.redeliver, off)
	delete(sub.attempts, off)
	sub.acked[off] = true
	for sub.acked[sub.cursor] {
		delete(sub.acked, sub.cursor)
		sub.cursor++
	}
}

func (sub *subscription) unacked() int {
	return int(sub.next-sub.cursor) - len(sub.acked)
}

// pick chooses the consumer for m. skip reports a KeyShared key that no
// consumer accepts (the message is skipped for this subscription).
func (sub *subscription) pick(m *danubepb.StreamMessage) (co *consumer, skip bool) {
	var active []*consumer
	for _, x := range sub.consumers {
		if x.active {
			active = append(active, x)
		}
	}
	if len(active) == 0 {
		return nil, false
	}
	switch sub.typ {
	case danubepb.ConsumerRequest_Shared:
		for i := range active {
			x := active[(sub.rr+i)%len(active)]
			if len(x.queue) < cap(x.queue) {
				sub.rr = (sub.rr + i + 1) % len(active)
				return x, false
			}
		}
		return nil, false
	case danubepb.ConsumerRequest_KeyShared:
		key := m.GetProducerName()
		if m.RoutingKey != nil {
			key = *m.RoutingKey
		}
		var cands []*consumer
		for _, x := range active {
			if matchAny(x.filters, key) {
				cands = append(cands, x)
			}
		}
		if len(cands) == 0 {
			return nil, true
		}
		slices.SortFunc(cands, func(a, b *consumer) int {
			switch {
			case a.name < b.name:
				return -1
			case a.name > b.name:
				return 1
			}
			return 0
		})
		h := fnv.New32a()
		h.Write([]byte(key))
		return cands[h.Sum32()%uint32(len(cands))], false
	default: // Exclusive, Failover: the first attached consumer
		return active[0], false
	}
}

func enqueue(co *consumer, m *danubepb.StreamMessage) bool {
	select {
	case co.queue <- m:
		return true
	default:
		return false
	}
}

// dispatchNonReliableLocked offers m to every current subscription. Like
// Danube, it never waits for a slow consumer: where no consumer can take m
// (its queue is full, or none is attached) m is dropped for that
// subscription, counted (DroppedMessages) and logged.
func (s *Server) dispatchNonReliableLocked(t *topic, m *danubepb.StreamMessage) {
	for _, name := range slices.Sorted(maps.Keys(t.subs)) {
		sub := t.subs[name]
		co, skip := sub.pick(m)
		if skip {
			continue
		}
		if co != nil && enqueue(co, proto.Clone(m).(*danubepb.StreamMessage)) {
			continue
		}
		s.dropLocked(t, sub, co)
	}
}

// dropLocked counts a non-reliable message dropped for sub (co is the
// consumer whose queue was full, nil when none was attached) and logs the
// 1st, 2nd, 4th, 8th … drop of the subscription, so a flood of drops costs
// a logarithmic number of lines.
func (s *Server) dropLocked(t *topic, sub *subscription, co *consumer) {
	t.dropped++
	sub.dropped++
	if sub.dropped&(sub.dropped-1) != 0 {
		return
	}
	reason, name := "no consumer attached", ""
	if co != nil {
		reason, name = "consumer queue full", co.name
	}
	s.cfg.logger.Warn("danubetest dropping non-reliable message ("+reason+"), as Danube does",
		"topic", t.name, "subscription", sub.name, "consumer", name,
		"dropped", sub.dropped, "queue", s.cfg.queueSize)
}

// dispatchTopicLocked runs reliable dispatch for every subscription of t and
// makes sure the timer loop wakes at the earliest future deadline (an ack
// timeout or a delayed redelivery) it found.
func (s *Server) dispatchTopicLocked(t *topic, now time.Time) {
	s.scheduleLocked(s.dispatchDeadlinesLocked(t, now))
}

// dispatchDeadlinesLocked is dispatchTopicLocked without the scheduling: it
// returns the earliest future deadline (zero if none). The timer loop uses it
// and sets its own timer.
func (s *Server) dispatchDeadlinesLocked(t *topic, now time.Time) time.Time {
	if !t.reliable {
		return time.Time{}
	}
	var next time.Time
	for _, sub := range t.subs {
		if n := s.dispatchSubLocked(t, sub, now); !n.IsZero() && (next.IsZero() || n.Before(next)) {
			next = n
		}
	}
	return next
}

func (s *Server) dispatchSubLocked(t *topic, sub *subscription, now time.Time) time.Time {
	cfg := &s.cfg
	// Ack timeouts become immediate redeliveries. The scan runs only when
	// the earliest deadline may have passed; it recomputes ackDue.
	if !sub.ackDue.IsZero() && !sub.ackDue.After(now) {
		sub.ackDue = time.Time{}
		for off, d := range sub.inflight {
			if !d.deadline.After(now) {
				delete(sub.inflight, off)
				sub.redeliverLocked(off, now)
			} else if sub.ackDue.IsZero() || d.deadline.Before(sub.ackDue) {
				sub.ackDue = d.deadline
			}
		}
	}
	deliver := func(off uint64, co *consumer) bool {
		if !enqueue(co, proto.Clone(t.log[off]).(*danubepb.StreamMessage)) {
			return false
		}
		d := now.Add(cfg.ackTimeout)
		sub.inflight[off] = delivery{c: co, deadline: d}
		if sub.ackDue.IsZero() || d.Before(sub.ackDue) {
			sub.ackDue = d
		}
		sub.attempts[off]++
		return true
	}
	if sub.redeliverDirty {
		sub.redeliverKeys = slices.Sorted(maps.Keys(sub.redeliver))
		sub.redeliverDirty = false
	}
	for len(sub.redeliverKeys) > 0 { // drop the delivered head
		if _, ok := sub.redeliver[sub.redeliverKeys[0]]; ok {
			break
		}
		sub.redeliverKeys = sub.redeliverKeys[1:]
	}
	var due time.Time // the earliest future redelivery seen
	complete := true  // every waiting redelivery was looked at
	for _, off := range sub.redeliverKeys {
		at, ok := sub.redeliver[off]
		if !ok {
			continue
		}
		if cfg.maxRedeliveries >= 0 && sub.attempts[off] > cfg.maxRedeliveries {
			sub.blocked = true // exhausted: the Block poison policy holds it
			continue
		}
		if at.After(now) {
			if due.IsZero() || at.Before(due) {
				due = at
			}
			continue
		}
		co, skip := sub.pick(t.log[off])
		if skip {
			sub.ackLocked(off)
			continue
		}
		if co == nil {
			complete = false
			break
		}
		if deliver(off, co) {
			delete(sub.redeliver, off)
		} else if sub.typ != danubepb.ConsumerRequest_KeyShared {
			complete = false // the only candidate's queue is full
			break
		}
	}
	if len(sub.redeliver) == 0 {
		sub.redeliverKeys = nil
	}
	switch {
	case complete:
		sub.redeliverDue = due
	case !due.IsZero() && (sub.redeliverDue.IsZero() || due.Before(sub.redeliverDue)):
		sub.redeliverDue = due
	}
	for !sub.blocked && sub.next < uint64(len(t.log)) && sub.unacked() < cfg.maxUnacked {
		off := sub.next
		co, skip := sub.pick(t.log[off])
		if skip {
			sub.next++
			sub.ackLocked(off)
			continue
		}
		if co == nil || !deliver(off, co) {
			break
		}
		sub.next++
	}
	var next time.Time
	upd := func(d time.Time) {
		if next.IsZero() || d.Before(next) {
			next = d
		}
	}
	if len(sub.inflight) == 0 {
		sub.ackDue = time.Time{}
	}
	if !sub.ackDue.IsZero() {
		upd(sub.ackDue) // may be early (its message was acked): the timer then rescans
	}
	if sub.redeliverDue.After(now) {
		upd(sub.redeliverDue)
	}
	return next
}

// matchAny reports whether key matches one of the glob patterns ('*', '?');
// no patterns match everything.
func matchAny(patterns []string, key string) bool {
	if len(patterns) == 0 {
		return true
	}
	for _, p := range patterns {
		if glob(p, key) {
			return true
		}
	}
	return false
}

func glob(p, s string) bool {
	pr, sr := []rune(p), []rune(s)
	pi, si, star, mark := 0, 0, -1, 0
	for si < len(sr) {
		switch {
		case pi < len(pr) && (pr[pi] == '?' || pr[pi] == sr[si]):
			pi++
			si++
		case pi < len(pr) && pr[pi] == '*':
			star, mark = pi, si
			pi++
		case star >= 0:
			pi = star + 1
			mark++
			si = mark
		default:
			return false
		}
	}
	for pi < len(pr) && pr[pi] == '*' {
		pi++
	}
	return pi == len(pr)
}

// redeliverLocked queues offset off of sub for redelivery at at.
func (sub *subscription) redeliverLocked(off uint64, at time.Time) {
	if _, ok := sub.redeliver[off]; !ok {
		sub.redeliverDirty = true
	}
	sub.redeliver[off] = at
	if sub.redeliverDue.IsZero() || at.Before(sub.redeliverDue) {
		sub.redeliverDue = at
	}
}
