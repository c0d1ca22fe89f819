package danube

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	pb "github.com/benthos-danube/benthos-danube/internal/danubepb"
)

const defaultHealthInterval = 5 * time.Second

// DispatchStrategy selects how the broker delivers a topic's messages. It is
// fixed by the first producer that creates the topic.
type DispatchStrategy int

const (
	// DispatchNonReliable is in-memory, at-most-once fan-out.
	DispatchNonReliable DispatchStrategy = 0
	// DispatchReliable persists messages to a WAL and delivers at least once.
	DispatchReliable DispatchStrategy = 1
)

// ProducerHooks are optional callbacks for metrics. Nil functions are skipped.
// topic is the producer's configured (base) topic.
type ProducerHooks struct {
	// OnRetry is called each time a send is retried.
	OnRetry func(topic string)
	// OnRecreate is called each time a partition producer was created again
	// on the broker (after a restart, a topic move or a health CLOSE).
	OnRecreate func(topic string)
}

// ProducerConfig configures a Producer.
type ProducerConfig struct {
	// Topic is the topic, "/namespace/topic" (see ValidateTopic).
	Topic string
	// Name is the producer name; partition i uses "<Name>-<i>". "" picks a random name.
	Name string
	// Partitions is the partition count: 0 = not partitioned, else
	// "<Topic>-part-<i>" for i = 0..n-1.
	Partitions int
	// Dispatch is the dispatch strategy used when the topic is created.
	Dispatch DispatchStrategy
	// Schema optionally references a registry subject; messages are stamped
	// with the resolved schema id and version.
	Schema *SchemaRef
	// StrictOrder allows only one send in flight at a time per partition.
	StrictOrder bool
	// MaxRetries is the number of transient retries of a send before a lookup
	// and re-creation (and the cap on create retries); <= 0 means 5.
	MaxRetries int
	// BaseBackoff and MaxBackoff shape the linear jittered backoff; <= 0
	// means 200ms and 5s.
	BaseBackoff, MaxBackoff time.Duration
	// Hooks are optional metrics callbacks.
	Hooks ProducerHooks
	// HealthInterval is the period of the per-partition health check; <= 0 means 5s.
	HealthInterval time.Duration
}

// Message is one message to send.
type Message struct {
	// Payload is the message body.
	Payload []byte
	// Attributes are user properties sent with the message.
	Attributes map[string]string
	// Key is the routing key: "" = no key (round robin over partitions);
	// otherwise the partition is PartitionForKey(Key, n) and routing_key is set.
	Key string
}

// Producer publishes messages to one (possibly partitioned) topic. It is safe
// for concurrent use; several sends may be in flight at once unless
// StrictOrder is set.
type Producer struct {
	c             *Client
	cfg           ProducerConfig
	retry         retryPolicy
	health        time.Duration
	parts         []*partProducer
	rr            atomic.Uint64
	schemaID      *uint64
	schemaVersion *uint32

	ctx    context.Context
	cancel context.CancelFunc
	mu     sync.Mutex
	closed bool
	wg     sync.WaitGroup
}

// partProducer is the producer of one topic or partition.
type partProducer struct {
	p       *Producer
	topic   string
	name    string
	reqID   atomic.Uint64
	state   atomic.Pointer[prodState]
	recLock chan struct{}
	order   chan struct{}
}

// prodState is one incarnation of a partition producer on a broker.
type prodState struct {
	id         uint64
	b          brokerAddr
	cc         *grpc.ClientConn
	client     pb.ProducerServiceClient
	stale      atomic.Bool
	stopHealth context.CancelFunc
}

// NewProducer creates a producer for cfg.Topic, creating every partition
// producer on its broker (following lookups and redirects, and retrying
// Unavailable answers such as the first create of a topic in cluster mode).
func (c *Client) NewProducer(ctx context.Context, cfg ProducerConfig) (*Producer, error) {
	if err := ValidateTopic(cfg.Topic); err != nil {
		return nil, &Error{Topic: cfg.Topic, RPC: "CreateProducer", Code: codes.InvalidArgument, Err: err, permanent: true}
	}
	if cfg.Partitions < 0 {
		return nil, &Error{Topic: cfg.Topic, RPC: "CreateProducer", Code: codes.InvalidArgument, Err: fmt.Errorf("negative partition count %d", cfg.Partitions), permanent: true}
	}
	if cfg.Dispatch != DispatchNonReliable && cfg.Dispatch != DispatchReliable {
		return nil, &Error{Topic: cfg.Topic, RPC: "CreateProducer", Code: codes.InvalidArgument, Err: fmt.Errorf("unknown dispatch strategy %d", cfg.Dispatch), permanent: true}
	}
	if cfg.Name == "" {
		cfg.Name = randomName("producer")
	}
	p := &Producer{c: c, cfg: cfg, retry: newRetryPolicy(cfg.MaxRetries, cfg.BaseBackoff, cfg.MaxBackoff), health: cfg.HealthInterval}
	if p.health <= 0 {
		p.health = defaultHealthInterval
	}
	p.ctx, p.cancel = context.WithCancel(context.Background())
	n := cfg.Partitions
	if n == 0 {
		p.parts = []*partProducer{p.newPart(cfg.Topic, cfg.Name)}
	} else {
		for i := 0; i < n; i++ {
			p.parts = append(p.parts, p.newPart(partitionName(cfg.Topic, i), fmt.Sprintf("%s-%d", cfg.Name, i)))
		}
	}
	if err := c.register(p, nil); err != nil {
		p.cancel()
		return nil, err
	}

	errs := make([]error, len(p.parts))
	var wg sync.WaitGroup
	for i, pp := range p.parts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st, err := pp.create(ctx, c.serviceBroker(), true)
			if err != nil {
				errs[i] = err
				return
			}
			pp.state.Store(st)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			_ = p.Close()
			return nil, err
		}
	}
	if cfg.Schema != nil {
		id, v, err := c.resolveSchema(ctx, cfg.Schema)
		if err != nil {
			_ = p.Close()
			return nil, fmt.Errorf("danube: resolving schema of producer for %s: %w", cfg.Topic, err)
		}
		p.schemaID, p.schemaVersion = &id, &v
	}
	return p, nil
}

func (p *Producer) newPart(topic, name string) *partProducer {
	pp := &partProducer{p: p, topic: topic, name: name, recLock: make(chan struct{}, 1)}
	if p.cfg.StrictOrder {
		pp.order = make(chan struct{}, 1)
	}
	return pp
}

func randomName(prefix string) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return prefix + "-" + hex.EncodeToString(b[:])
}

// Topic returns the configured (base) topic.
func (p *Producer) Topic() string { return p.cfg.Topic }

// Partitions returns the configured partition count (0 = not partitioned).
func (p *Producer) Partitions() int { return p.cfg.Partitions }

// Close stops the producer's health loops and waits for them. No RPC exists
// for closing a producer; the broker forgets it when the topic is unloaded.
func (p *Producer) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	p.mu.Unlock()
	p.cancel()
	p.wg.Wait()
	p.c.unregister(p, nil)
	return nil
}

// Send publishes m and returns once the broker acknowledged it. Transient
// failures are retried with backoff until ctx ends; a lost producer (NotFound,
// PermissionDenied "draining or closed", health CLOSE) is looked up and
// created again, then the message is resent. Permanent errors, such as
// ErrMessageTooLarge, are returned at once. A retried send whose first
// attempt reached the broker may be stored twice (the protocol has no dedup).
//
// The helpers below Send follow it in the order it calls them: pick (the
// partition), build and checkSize (the request), recreate, create, createAt
// and healthLoop (a lost producer); the lookup and proxy routing they use are
// in lookup.go, key routing in partition.go.
func (p *Producer) Send(ctx context.Context, m Message) error {
	if p.ctx.Err() != nil {
		return ErrClosed
	}
	pp := p.pick(m.Key)
	// Build once, sized with the largest request id so that a fresh id on a
	// retry can never push it over the limit; only a new broker address
	// (after a re-creation) changes the size again.
	msg := pp.build(pp.state.Load(), m, math.MaxUint64)
	if err := pp.checkSize(msg); err != nil {
		return err
	}
	if pp.order != nil {
		select {
		case pp.order <- struct{}{}:
			defer func() { <-pp.order }()
		case <-ctx.Done():
			return ctxError(ctx, pp.topic, "SendMessage", nil)
		case <-p.ctx.Done():
			return ErrClosed
		}
	}
	attempts, lost := 0, 0
	var lastErr error
	for {
		if ctx.Err() != nil {
			return ctxError(ctx, pp.topic, "SendMessage", lastErr)
		}
		if p.ctx.Err() != nil {
			return ErrClosed
		}
		st := pp.state.Load()
		if st.stale.Load() {
			nst, err := pp.recreate(ctx, st)
			if err != nil {
				if ctx.Err() != nil && lastErr != nil {
					return ctxError(ctx, pp.topic, "SendMessage", lastErr)
				}
				return err
			}
			st = nst
		}
		if id := msg.MsgId; id.ProducerId != st.id || id.BrokerAddr != st.b.brokerURL {
			msg.MsgId = &pb.MsgID{ProducerId: st.id, TopicName: pp.topic, BrokerAddr: st.b.brokerURL}
			msg.RequestId = math.MaxUint64
			if err := pp.checkSize(msg); err != nil {
				return err
			}
		}
		msg.RequestId = pp.reqID.Add(1)
		msg.PublishTime = uint64(time.Now().UnixMilli())
		_, err := st.client.SendMessage(withProxy(ctx, st.b), msg)
		if err == nil {
			return nil
		}
		lastErr = newError(pp.topic, "SendMessage", err)
		code := codeOf(err)
		switch {
		case ctx.Err() != nil:
			return ctxError(ctx, pp.topic, "SendMessage", lastErr)
		case code == codes.OutOfRange:
			return &Error{Topic: pp.topic, RPC: "SendMessage", Code: codes.OutOfRange, permanent: true,
				Err: fmt.Errorf("%w: broker said: %s", ErrMessageTooLarge, messageOf(err))}
		case producerLost(err):
			p.c.log.Info("danube producer lost, recreating", "topic", pp.topic, "error", err)
			st.stale.Store(true)
			p.hook(p.cfg.Hooks.OnRetry)
			attempts = 0
			lost++
			if lost > 1 {
				if err := sleepCtx(ctx, p.ctx, p.retry.delay(lost-2)); err != nil {
					return ctxErrorOrClosed(ctx, pp.topic, lastErr, err)
				}
			}
		case transientCode(code):
			p.hook(p.cfg.Hooks.OnRetry)
			if attempts >= p.retry.maxRetries {
				// Enough retries against this broker: look up and recreate.
				st.stale.Store(true)
				attempts = 0
				continue
			}
			if err := sleepCtx(ctx, p.ctx, p.retry.delay(attempts)); err != nil {
				return ctxErrorOrClosed(ctx, pp.topic, lastErr, err)
			}
			attempts++
		default:
			return lastErr
		}
	}
}

// pick chooses the partition producer for a key (round robin when empty).
func (p *Producer) pick(key string) *partProducer {
	n := len(p.parts)
	if n == 1 {
		return p.parts[0]
	}
	if key != "" {
		return p.parts[PartitionForKey(key, n)]
	}
	return p.parts[(p.rr.Add(1)-1)%uint64(n)]
}

// build makes the StreamMessage for one attempt.
func (pp *partProducer) build(st *prodState, m Message, reqID uint64) *pb.StreamMessage {
	attrs := m.Attributes
	if attrs == nil {
		attrs = map[string]string{}
	}
	msg := &pb.StreamMessage{
		RequestId:     reqID,
		MsgId:         &pb.MsgID{ProducerId: st.id, TopicName: pp.topic, BrokerAddr: st.b.brokerURL},
		Payload:       m.Payload,
		PublishTime:   uint64(time.Now().UnixMilli()),
		ProducerName:  pp.name,
		Attributes:    attrs,
		SchemaId:      pp.p.schemaID,
		SchemaVersion: pp.p.schemaVersion,
	}
	if m.Key != "" {
		k := m.Key
		msg.RoutingKey = &k
	}
	return msg
}

func (pp *partProducer) checkSize(msg *pb.StreamMessage) error {
	if sizeBound(msg) <= MaxRequestBytes {
		// proto.Size walks the attribute map by reflection: about ten
		// allocations per message, paid again when gRPC marshals it.
		return nil
	}
	if n := proto.Size(msg); n > MaxRequestBytes {
		return &Error{Topic: pp.topic, RPC: "SendMessage", Code: codes.OutOfRange, permanent: true,
			Err: fmt.Errorf("%w (encoded size %d bytes, payload %d bytes)", ErrMessageTooLarge, n, len(msg.Payload))}
	}
	return nil
}

// sizeBound is an upper bound of proto.Size(msg): every length-delimited
// field counted at its tag, a 5-byte length and its bytes, every scalar at
// its tag and the longest varint, with room to spare.
func sizeBound(msg *pb.StreamMessage) int {
	const (
		lenField   = 1 + 5 // tag and length of a string, bytes or message
		mapEntry   = 1 + 5 + 2*lenField
		allScalars = 256 // request id, publish time, schema id and version, producer id, offset
	)
	n := allScalars + len(msg.Payload) + len(msg.ProducerName) + len(msg.SubscriptionName) + 4*lenField
	if id := msg.MsgId; id != nil {
		n += lenField + len(id.TopicName) + len(id.BrokerAddr) + 2*lenField
	}
	if k := msg.RoutingKey; k != nil {
		n += lenField + len(*k)
	}
	for k, v := range msg.Attributes {
		n += mapEntry + len(k) + len(v)
	}
	return n
}

// recreate replaces the stale state old with a freshly created producer,
// unless another send already did.
func (pp *partProducer) recreate(ctx context.Context, old *prodState) (*prodState, error) {
	p := pp.p
	select {
	case pp.recLock <- struct{}{}:
	case <-ctx.Done():
		return nil, ctxError(ctx, pp.topic, "CreateProducer", nil)
	case <-p.ctx.Done():
		return nil, ErrClosed
	}
	defer func() { <-pp.recLock }()
	cur := pp.state.Load()
	if cur != old && !cur.stale.Load() {
		return cur, nil
	}
	st, err := pp.create(ctx, cur.b, false)
	if err != nil {
		return nil, err
	}
	cur.stopHealth()
	pp.state.Store(st)
	p.hook(p.cfg.Hooks.OnRecreate)
	p.c.log.Info("danube producer recreated", "topic", pp.topic, "producer_id", st.id, "broker", st.b.addr)
	return st, nil
}

// create looks the topic up and runs CreateProducer, retrying Unavailable,
// DeadlineExceeded and ResourceExhausted with backoff. capped limits the
// retries to MaxRetries; otherwise it retries until ctx ends. A missing
// namespace is always capped and reported as a permanent error.
func (pp *partProducer) create(ctx context.Context, prev brokerAddr, capped bool) (*prodState, error) {
	p := pp.p
	b := prev
	nsFails := 0
	var lastErr error
	for attempt := 0; ; attempt++ {
		if ctx.Err() != nil {
			return nil, ctxError(ctx, pp.topic, "CreateProducer", lastErr)
		}
		if p.ctx.Err() != nil {
			return nil, ErrClosed
		}
		b = p.c.lookupKeep(ctx, b, pp.topic)
		st, err := pp.createAt(ctx, b)
		if err == nil {
			return st, nil
		}
		if errors.Is(err, ErrClosed) {
			return nil, err
		}
		lastErr = err
		if ctx.Err() != nil {
			return nil, ctxError(ctx, pp.topic, "CreateProducer", lastErr)
		}
		code := codeOf(err)
		switch {
		case isNamespaceMissing(err):
			nsFails++
			if nsFails > p.retry.maxRetries {
				ns := strings.Split(pp.topic, "/")[1]
				return nil, &Error{Topic: pp.topic, RPC: "CreateProducer", Code: codes.Unavailable, permanent: true,
					Err: fmt.Errorf("%w: namespace %q is not on the broker (producers cannot create namespaces; create it with the admin API): %s", ErrNamespaceNotFound, ns, messageOf(err))}
			}
		case code == codes.Unavailable || code == codes.DeadlineExceeded || code == codes.ResourceExhausted:
			if capped && attempt >= p.retry.maxRetries {
				return nil, &Error{Topic: pp.topic, RPC: "CreateProducer", Code: code,
					Err: fmt.Errorf("giving up after %d attempts: %w", attempt+1, err)}
			}
		default:
			return nil, err
		}
		if err := sleepCtx(ctx, p.ctx, p.retry.delay(attempt)); err != nil {
			if errors.Is(err, ErrClosed) {
				return nil, err
			}
			return nil, ctxError(ctx, pp.topic, "CreateProducer", lastErr)
		}
	}
}

// createAt runs one CreateProducer at b and starts the health loop of the new state.
func (pp *partProducer) createAt(ctx context.Context, b brokerAddr) (*prodState, error) {
	p := pp.p
	cc, err := p.c.conn(b.addr)
	if err != nil {
		return nil, err
	}
	client := pb.NewProducerServiceClient(cc)
	resp, err := client.CreateProducer(withProxy(ctx, b), &pb.ProducerRequest{
		RequestId:          pp.reqID.Add(1),
		ProducerName:       pp.name,
		TopicName:          pp.topic,
		SchemaRef:          p.cfg.Schema.proto(),
		ProducerAccessMode: pb.ProducerAccessMode_Shared,
		DispatchStrategy:   pb.DispatchStrategy(p.cfg.Dispatch),
	})
	if err != nil {
		return nil, newError(pp.topic, "CreateProducer", err)
	}
	st := &prodState{id: resp.GetProducerId(), b: b, cc: cc, client: client}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, ErrClosed
	}
	hctx, cancel := context.WithCancel(p.ctx)
	st.stopHealth = cancel
	p.wg.Add(1)
	go pp.healthLoop(hctx, st)
	return st, nil
}

// healthLoop polls HealthCheck for one producer incarnation. On CLOSE it
// marks the state stale (the next send recreates it) and exits; it also
// exits when the producer is closed or the state is replaced.
func (pp *partProducer) healthLoop(ctx context.Context, st *prodState) {
	p := pp.p
	defer p.wg.Done()
	hc := pb.NewHealthCheckClient(st.cc)
	t := time.NewTicker(p.health)
	defer t.Stop()
	var reqID uint64
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		reqID++
		rctx, cancel := context.WithTimeout(ctx, p.health)
		resp, err := hc.HealthCheck(withProxy(rctx, st.b), &pb.HealthCheckRequest{
			RequestId: reqID, Client: pb.HealthCheckRequest_Producer, Id: st.id,
		})
		cancel()
		if err != nil {
			continue
		}
		if resp.GetStatus() == pb.HealthCheckResponse_CLOSE {
			p.c.log.Info("danube producer closed by broker, will recreate", "topic", pp.topic, "producer_id", st.id)
			st.stale.Store(true)
			return
		}
	}
}

// ctxErrorOrClosed maps the error of an interrupted backoff sleep: ErrClosed
// when the producer was closed, else the context error with the last send error.
func ctxErrorOrClosed(ctx context.Context, topic string, last, err error) error {
	if errors.Is(err, ErrClosed) {
		return ErrClosed
	}
	return ctxError(ctx, topic, "SendMessage", last)
}

// hook calls a ProducerHooks callback, if set, with the configured topic.
func (p *Producer) hook(f func(string)) {
	if f != nil {
		f(p.cfg.Topic)
	}
}
