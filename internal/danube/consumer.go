package danube

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"

	pb "github.com/benthos-danube/benthos-danube/internal/danubepb"
)

// SubscriptionType is the type of a subscription, fixed when the
// subscription is first created on the broker.
type SubscriptionType int

const (
	// SubExclusive allows exactly one consumer name.
	SubExclusive SubscriptionType = 0
	// SubShared delivers round robin over the active consumers.
	SubShared SubscriptionType = 1
	// SubFailover delivers everything to the first consumer; others stand by.
	SubFailover SubscriptionType = 2
	// SubKeyShared hashes routing keys over the consumers.
	SubKeyShared SubscriptionType = 3
)

// ConsumerConfig configures a Consumer.
type ConsumerConfig struct {
	// Topic is "/namespace/topic"; every partition of it is consumed.
	Topic string
	// Topics are more topics consumed by the same Consumer, under the same
	// subscription, consumer name and type, each with all its partitions.
	// Topic and Topics may both be set; duplicates are consumed once.
	Topics []string
	// Subscription is the subscription name.
	Subscription string
	// Name is the consumer name ("" = random); the same name reattaches to
	// the same broker-side consumer.
	Name string
	// Type is the subscription type.
	Type SubscriptionType
	// KeyFilters are glob patterns restricting the keys of a KeyShared consumer.
	KeyFilters []string
	// HealthInterval is the period of the per-partition health check; <= 0 means 5s.
	HealthInterval time.Duration
	// Buffer is the number of received messages held for Receive (shared by
	// every partition); <= 0 means 100, as danube-go. A full buffer stops
	// reading the streams, so the broker's own window applies.
	Buffer int
}

// DefaultConsumerBuffer is the default ConsumerConfig.Buffer.
const DefaultConsumerBuffer = 100

// topics returns Topic and Topics without duplicates, in order.
func (cfg *ConsumerConfig) topics() []string {
	all := cfg.Topics
	if cfg.Topic != "" || len(all) == 0 {
		all = append([]string{cfg.Topic}, all...) // "" fails validation
	}
	var out []string
	seen := map[string]bool{}
	for _, t := range all {
		if !seen[t] {
			seen[t] = true
			out = append(out, t)
		}
	}
	return out
}

// ReceivedMessage is a message delivered to a Consumer.
type ReceivedMessage struct {
	// Topic is the topic or partition the message was delivered on.
	Topic string
	// BaseTopic is the configured topic (ConsumerConfig.Topic or one of
	// Topics) that Topic belongs to: Topic itself, or the partitioned topic
	// whose partition Topic is.
	BaseTopic string
	// Partition is N when Topic is the partition "<topic>-part-N", else -1.
	Partition int
	// Payload is the message body.
	Payload []byte
	// Attributes are the producer's user properties.
	Attributes map[string]string
	// RoutingKey is the message's routing key, valid when HasRoutingKey.
	RoutingKey string
	// HasRoutingKey reports whether the producer set a routing key.
	HasRoutingKey bool
	// ProducerName is the name of the producer that sent the message.
	ProducerName string
	// ProducerID is the broker-assigned id of the producer (msg_id.producer_id).
	ProducerID uint64
	// PublishTime is the producer's publish time (millisecond precision).
	PublishTime time.Time
	// Offset is the topic offset (reliable topics; 0 otherwise).
	Offset uint64
	// SchemaID is the schema id stamped by the producer, if any.
	SchemaID *uint64
	// SchemaVersion is the schema version stamped by the producer, if any.
	SchemaVersion *uint32

	raw *pb.StreamMessage
}

// Consumer receives messages from every partition of a topic. It
// resubscribes after the receive stream is lost or a health check answers
// CLOSE.
type Consumer struct {
	c      *Client
	cfg    ConsumerConfig
	retry  retryPolicy
	health time.Duration
	parts  map[string]*partConsumer
	ch     chan *ReceivedMessage

	ctx    context.Context
	cancel context.CancelFunc
	mu     sync.Mutex
	closed bool
	wg     sync.WaitGroup
}

// partConsumer consumes one topic or partition.
type partConsumer struct {
	co        *Consumer
	topic     string
	base      string
	partition int
	reqID     atomic.Uint64
	// down is set from the end of a receive stream until the partition is
	// subscribed again.
	down atomic.Bool

	mu sync.Mutex
	b  brokerAddr
	cc *grpc.ClientConn
	id uint64
}

// Subscribe subscribes to every partition of cfg.Topic and of cfg.Topics
// (TopicPartitions first) and starts receiving. The topics must exist:
// Subscribe never creates topics.
func (c *Client) Subscribe(ctx context.Context, cfg ConsumerConfig) (*Consumer, error) {
	bases := cfg.topics()
	for _, t := range bases {
		if err := ValidateTopic(t); err != nil {
			return nil, &Error{Topic: t, RPC: "Subscribe", Code: codes.InvalidArgument, Err: err, permanent: true}
		}
	}
	if cfg.Subscription == "" {
		return nil, &Error{Topic: cfg.Topic, RPC: "Subscribe", Code: codes.InvalidArgument, Err: errors.New("empty subscription name"), permanent: true}
	}
	if cfg.Type < SubExclusive || cfg.Type > SubKeyShared {
		return nil, &Error{Topic: cfg.Topic, RPC: "Subscribe", Code: codes.InvalidArgument, Err: fmt.Errorf("unknown subscription type %d", cfg.Type), permanent: true}
	}
	if cfg.Name == "" {
		cfg.Name = randomName("consumer")
	}
	buf := cfg.Buffer
	if buf <= 0 {
		buf = DefaultConsumerBuffer
	}
	co := &Consumer{
		c: c, cfg: cfg, retry: newRetryPolicy(0, 0, 0), health: defaultHealthInterval,
		parts: map[string]*partConsumer{}, ch: make(chan *ReceivedMessage, buf),
	}
	if cfg.HealthInterval > 0 {
		co.health = cfg.HealthInterval
	}
	var order []*partConsumer
	for _, base := range bases {
		topics, err := c.TopicPartitions(ctx, base)
		if err != nil {
			return nil, err
		}
		if len(topics) == 0 {
			return nil, &Error{Topic: base, RPC: "TopicPartitions", Code: codes.NotFound, permanent: true,
				Err: errors.New("topic not found (no topic or partitions with this name)")}
		}
		for _, t := range topics {
			if co.parts[t] == nil {
				pc := &partConsumer{co: co, topic: t, base: base, partition: partitionNumber(t), b: c.serviceBroker()}
				co.parts[t] = pc
				order = append(order, pc)
			}
		}
	}
	co.ctx, co.cancel = context.WithCancel(context.Background())
	if err := c.register(nil, co); err != nil {
		co.cancel()
		return nil, err
	}
	for _, pc := range order {
		if err := pc.subscribe(ctx, true); err != nil {
			_ = co.Close()
			return nil, err
		}
	}
	co.mu.Lock()
	defer co.mu.Unlock()
	if co.closed {
		return nil, ErrClosed
	}
	for _, pc := range co.parts {
		co.wg.Add(1)
		go pc.run()
	}
	return co, nil
}

// Topics returns every topic and partition the consumer receives from,
// sorted.
func (co *Consumer) Topics() []string {
	return slices.Sorted(maps.Keys(co.parts))
}

// ReceiveBatch returns the messages already waiting, at least one and at
// most max (max <= 0 means 1): it blocks like Receive for the first one and
// never waits for more.
func (co *Consumer) ReceiveBatch(ctx context.Context, max int) ([]*ReceivedMessage, error) {
	first, err := co.Receive(ctx)
	if err != nil {
		return nil, err
	}
	out := []*ReceivedMessage{first}
	for len(out) < max {
		select {
		case m := <-co.ch:
			out = append(out, m)
		default:
			return out, nil
		}
	}
	return out, nil
}

// Down returns the topics and partitions that lost their receive stream and
// are not subscribed again yet (the consumer keeps trying), sorted; nil
// when every one is subscribed.
func (co *Consumer) Down() []string {
	var out []string
	for name, pc := range co.parts {
		if pc.down.Load() {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

// TryReceiveBatch returns the messages already waiting, at most limit
// (<= 0 means 1), without blocking: none when nothing is waiting. It
// returns ErrClosed after Close.
func (co *Consumer) TryReceiveBatch(limit int) ([]*ReceivedMessage, error) {
	if co.ctx.Err() != nil {
		return nil, ErrClosed
	}
	var out []*ReceivedMessage
	for len(out) < max(limit, 1) {
		select {
		case m := <-co.ch:
			out = append(out, m)
		default:
			return out, nil
		}
	}
	return out, nil
}

// Receive returns the next message. It blocks until a message arrives, ctx
// ends or the consumer is closed.
func (co *Consumer) Receive(ctx context.Context) (*ReceivedMessage, error) {
	select {
	case m := <-co.ch:
		return m, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-co.ctx.Done():
		return nil, ErrClosed
	}
}

func (co *Consumer) partFor(m *ReceivedMessage) (*partConsumer, error) {
	if m == nil || m.raw == nil {
		return nil, errors.New("danube: message was not received from this consumer")
	}
	pc, ok := co.parts[m.raw.GetMsgId().GetTopicName()]
	if !ok {
		pc, ok = co.parts[m.Topic]
	}
	if !ok {
		return nil, fmt.Errorf("danube: message topic %q is not consumed by this consumer", m.Topic)
	}
	return pc, nil
}

// Ack acknowledges m on its partition's subscription.
func (co *Consumer) Ack(ctx context.Context, m *ReceivedMessage) error {
	pc, err := co.partFor(m)
	if err != nil {
		return err
	}
	b, cc := pc.current()
	_, err = pb.NewConsumerServiceClient(cc).Ack(withProxy(ctx, b), &pb.AckRequest{
		RequestId: m.raw.GetRequestId(), MsgId: m.raw.GetMsgId(), SubscriptionName: co.cfg.Subscription,
	})
	if err != nil {
		return newError(pc.topic, "Ack", err)
	}
	return nil
}

// Nack negatively acknowledges m: a reliable topic redelivers it after
// max(broker policy delay, delay). reason is kept by the broker ("" = none).
func (co *Consumer) Nack(ctx context.Context, m *ReceivedMessage, delay time.Duration, reason string) error {
	pc, err := co.partFor(m)
	if err != nil {
		return err
	}
	req := &pb.NackRequest{RequestId: m.raw.GetRequestId(), MsgId: m.raw.GetMsgId(), SubscriptionName: co.cfg.Subscription}
	if delay > 0 {
		d := uint64(delay.Milliseconds())
		req.DelayMs = &d
	}
	if reason != "" {
		req.Reason = &reason
	}
	b, cc := pc.current()
	if _, err := pb.NewConsumerServiceClient(cc).Nack(withProxy(ctx, b), req); err != nil {
		return newError(pc.topic, "Nack", err)
	}
	return nil
}

// Close stops every receive stream and health loop and waits for them. No
// RPC is sent; reliable messages not acked are redelivered by the broker.
func (co *Consumer) Close() error {
	co.mu.Lock()
	if co.closed {
		co.mu.Unlock()
		return nil
	}
	co.closed = true
	co.mu.Unlock()
	co.cancel()
	co.wg.Wait()
	co.c.unregister(nil, co)
	return nil
}

func (pc *partConsumer) current() (brokerAddr, *grpc.ClientConn) {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	return pc.b, pc.cc
}

// subscribe looks the partition up and runs Subscribe, retrying Unavailable,
// DeadlineExceeded and ResourceExhausted with backoff (capped at MaxRetries
// when capped is set, else until ctx or the consumer ends).
func (pc *partConsumer) subscribe(ctx context.Context, capped bool) error {
	co := pc.co
	b, _ := pc.current()
	var lastErr error
	for attempt := 0; ; attempt++ {
		if ctx.Err() != nil {
			return ctxError(ctx, pc.topic, "Subscribe", lastErr)
		}
		if co.ctx.Err() != nil {
			return ErrClosed
		}
		b = co.c.lookupKeep(ctx, b, pc.topic)
		cc, err := co.c.conn(b.addr)
		if err != nil {
			return err
		}
		kf := co.cfg.KeyFilters
		resp, err := pb.NewConsumerServiceClient(cc).Subscribe(withProxy(ctx, b), &pb.ConsumerRequest{
			RequestId:        pc.reqID.Add(1),
			TopicName:        pc.topic,
			ConsumerName:     co.cfg.Name,
			Subscription:     co.cfg.Subscription,
			SubscriptionType: pb.ConsumerRequest_SubscriptionType(co.cfg.Type),
			KeyFilters:       kf,
		})
		if err == nil {
			pc.mu.Lock()
			pc.b, pc.cc, pc.id = b, cc, resp.GetConsumerId()
			pc.mu.Unlock()
			co.c.log.Debug("danube consumer subscribed", "topic", pc.topic, "subscription", co.cfg.Subscription, "consumer_id", resp.GetConsumerId(), "broker", b.addr)
			return nil
		}
		lastErr = newError(pc.topic, "Subscribe", err)
		if ctx.Err() != nil {
			return ctxError(ctx, pc.topic, "Subscribe", lastErr)
		}
		code := codeOf(err)
		if !(code == codes.Unavailable || code == codes.DeadlineExceeded || code == codes.ResourceExhausted) {
			return lastErr
		}
		if capped && attempt >= co.retry.maxRetries {
			return lastErr
		}
		if err := sleepCtx(ctx, co.ctx, co.retry.delay(attempt)); err != nil {
			if err == ErrClosed {
				return err
			}
			return ctxError(ctx, pc.topic, "Subscribe", lastErr)
		}
	}
}

// run owns the receive stream of one partition: it opens ReceiveMessages,
// feeds the consumer's channel, and after any stream end (or a health CLOSE)
// backs off and resubscribes, until the consumer is closed.
func (pc *partConsumer) run() {
	co := pc.co
	defer co.wg.Done()
	failures := 0
	for {
		delivered := pc.session()
		if co.ctx.Err() != nil {
			return
		}
		pc.down.Store(true)
		if delivered || failures == 0 {
			// Once per outage: the stream that ended had worked.
			co.c.log.Warn("danube consumer lost its receive stream; resubscribing", "topic", pc.topic, "subscription", co.cfg.Subscription)
		}
		if delivered {
			failures = 0
		}
		if err := sleepCtx(co.ctx, co.ctx, co.retry.delay(failures)); err != nil {
			return
		}
		failures++
		for {
			err := pc.subscribe(co.ctx, false)
			if err == nil {
				pc.down.Store(false)
				co.c.log.Info("danube consumer resubscribed", "topic", pc.topic, "subscription", co.cfg.Subscription)
				break
			}
			if co.ctx.Err() != nil {
				return
			}
			co.c.log.Warn("danube resubscribe failed", "topic", pc.topic, "subscription", co.cfg.Subscription, "error", err)
			if err := sleepCtx(co.ctx, co.ctx, co.retry.max); err != nil {
				return
			}
		}
	}
}

// session runs one receive stream plus its health loop until either ends.
// It reports whether any message was delivered.
func (pc *partConsumer) session() bool {
	co := pc.co
	sctx, scancel := context.WithCancel(co.ctx)
	defer scancel()
	pc.mu.Lock()
	b, cc, id := pc.b, pc.cc, pc.id
	pc.mu.Unlock()
	stream, err := pb.NewConsumerServiceClient(cc).ReceiveMessages(withProxy(sctx, b), &pb.ReceiveRequest{RequestId: pc.reqID.Add(1), ConsumerId: id})
	if err != nil {
		co.c.log.Debug("danube receive stream failed", "topic", pc.topic, "error", err)
		return false
	}
	var hwg sync.WaitGroup
	hwg.Add(1)
	go func() {
		defer hwg.Done()
		pc.healthLoop(sctx, scancel, b, cc, id)
	}()
	defer func() {
		scancel()
		hwg.Wait()
	}()
	delivered := false
	for {
		m, err := stream.Recv()
		if err != nil {
			if sctx.Err() == nil {
				co.c.log.Debug("danube receive stream ended", "topic", pc.topic, "error", err)
			}
			return delivered
		}
		rm := &ReceivedMessage{
			Topic:         pc.topic,
			BaseTopic:     pc.base,
			Partition:     pc.partition,
			ProducerID:    m.GetMsgId().GetProducerId(),
			Payload:       m.GetPayload(),
			Attributes:    m.GetAttributes(),
			RoutingKey:    m.GetRoutingKey(),
			HasRoutingKey: m.RoutingKey != nil,
			ProducerName:  m.GetProducerName(),
			PublishTime:   time.UnixMilli(int64(m.GetPublishTime())),
			Offset:        m.GetMsgId().GetTopicOffset(),
			SchemaID:      m.SchemaId,
			SchemaVersion: m.SchemaVersion,
			raw:           m,
		}
		select {
		case co.ch <- rm:
			delivered = true
		case <-sctx.Done():
			return delivered
		}
	}
}

// healthLoop polls HealthCheck for a consumer session and ends the session
// (cancel) when the broker answers CLOSE.
func (pc *partConsumer) healthLoop(ctx context.Context, cancel context.CancelFunc, b brokerAddr, cc *grpc.ClientConn, id uint64) {
	co := pc.co
	hc := pb.NewHealthCheckClient(cc)
	t := time.NewTicker(co.health)
	defer t.Stop()
	var reqID uint64
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		reqID++
		rctx, rcancel := context.WithTimeout(ctx, co.health)
		resp, err := hc.HealthCheck(withProxy(rctx, b), &pb.HealthCheckRequest{RequestId: reqID, Client: pb.HealthCheckRequest_Consumer, Id: id})
		rcancel()
		if err == nil && resp.GetStatus() == pb.HealthCheckResponse_CLOSE {
			co.c.log.Info("danube consumer closed by broker, resubscribing", "topic", pc.topic, "subscription", co.cfg.Subscription)
			cancel()
			return
		}
	}
}

// partitionNumber returns N for a partition name "<topic>-part-N" and -1
// for any other name.
func partitionNumber(topic string) int {
	i := strings.LastIndex(topic, "-part-")
	if i < 0 {
		return -1
	}
	suf := topic[i+len("-part-"):]
	if suf == "" || strings.Trim(suf, "0123456789") != "" {
		return -1
	}
	n, err := strconv.Atoi(suf)
	if err != nil {
		return -1
	}
	return n
}
