package danubein

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/benthos-danube/benthos-danube/internal/benthoslog"
	"github.com/benthos-danube/benthos-danube/internal/danube"
	"github.com/benthos-danube/benthos-danube/internal/danubeconn"
	"github.com/benthos-danube/benthos-danube/internal/redact"
)

// maxBatch caps the messages of one ReadBatch (Benthos' natural batch).
const maxBatch = 256

// ackTimeout bounds one Ack or Nack RPC. A message whose ack is lost is
// redelivered by Danube (a duplicate), never lost.
const ackTimeout = 10 * time.Second

type input struct {
	s          settings
	subType    danube.SubscriptionType
	clientOpts []danube.Option
	log        *service.Logger
	conn       *danubeconn.Conn // tls, token and token_file, for the hints

	mUnacked   *service.MetricGauge
	mNacks     *service.MetricCounter
	mAckErrors *service.MetricCounter

	// settled counts the messages acked or nacked to Danube without error
	// (read by tests and the benchmark).
	settled atomic.Int64

	// slots counts the messages handed to the pipeline and not yet acked
	// or nacked to Danube (max_unacked).
	slots *window

	mu       sync.Mutex
	client   *danube.Client
	consumer *danube.Consumer
	closed   bool
}

func newFromConfig(conf *service.ParsedConfig, mgr *service.Resources) (service.BatchInput, error) {
	in, err := newInput(conf, mgr)
	if err != nil {
		return nil, err
	}
	return in, nil
}

// newInput is the start-up validation (settings.check, which lint runs too,
// then what only start-up does) and builds the input.
func newInput(conf *service.ParsedConfig, mgr *service.Resources) (*input, error) {
	s, err := readSettings(conf)
	if err != nil {
		return nil, err
	}
	if errs := s.check(); len(errs) > 0 {
		return nil, errs[0]
	}
	typ, _ := subscriptionType(s.subType) // checked
	in := &input{s: s, subType: typ, log: mgr.Logger(), slots: newWindow(s.maxUnacked)}
	if in.conn, err = danubeconn.Read(conf, s.url); err != nil {
		return nil, fmt.Errorf("danube input: %w", err)
	}
	if w := in.conn.SchemeWarning(in.shownURL()); w != "" {
		in.log.Warnf("danube input: %s", w)
	}
	in.clientOpts = in.conn.Options()
	in.clientOpts = append(in.clientOpts, danube.WithLogger(benthoslog.New(in.log)))
	m := mgr.Metrics()
	in.mUnacked = m.NewGauge(MetricUnacked)
	in.mNacks = m.NewCounter(MetricNacks)
	in.mAckErrors = m.NewCounter(MetricAckErrors)
	in.mUnacked.Set(0)
	in.mNacks.Incr(0)
	in.mAckErrors.Incr(0)
	return in, nil
}

func (in *input) shownURL() string { return redact.URL(in.s.url) }

// Connect creates the client and subscribes on first use. The Consumer then
// keeps its subscription alive by itself (resubscribing after a lost stream,
// a broker restart or a topic move), so Connect runs again only after Close
// of the consumer.
func (in *input) Connect(ctx context.Context) error {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.closed {
		return service.ErrEndOfInput
	}
	if in.consumer != nil {
		// Called again after ReadBatch reported the connection lost: the
		// consumer resubscribes by itself; report until it has.
		if down := in.consumer.Down(); len(down) == len(in.consumer.Topics()) {
			return fmt.Errorf("danube input: lost the receive streams of %s at %s; resubscribing", strings.Join(down, ", "), in.shownURL())
		}
		return nil
	}
	if in.client == nil {
		c, err := danube.NewClient(in.s.url, in.clientOpts...)
		if err != nil {
			return fmt.Errorf("danube input: creating client for %s: %w", in.shownURL(), err)
		}
		in.client = c
	}
	co, err := in.client.Subscribe(ctx, danube.ConsumerConfig{
		Topics:       in.s.topics,
		Subscription: in.s.subscription,
		Name:         in.s.consumerName,
		Type:         in.subType,
		KeyFilters:   in.s.keyFilters,
		Buffer:       min(max(in.s.maxUnacked, danube.DefaultConsumerBuffer), 4096),
	})
	if err != nil {
		err = fmt.Errorf("danube input: subscribing %s to %s at %s: %w", in.s.subscription, strings.Join(in.s.topics, ", "), in.shownURL(), err)
		if h := in.hint(err); h != "" {
			err = fmt.Errorf("%w; %s", err, h)
		}
		if danube.IsPermanent(err) {
			// A missing topic or a refused subscription: retrying at once
			// only floods the log.
			return service.NewErrBackOff(err, 5*time.Second)
		}
		return err
	}
	in.consumer = co
	in.log.Infof("danube input: subscribed %s (%s, consumer %s) to %s", in.s.subscription, in.s.subType, in.s.consumerName, strings.Join(co.Topics(), ", "))
	return nil
}

// hint says what to do about a failed Subscribe.
func (in *input) hint(err error) string {
	if h := in.conn.Hint(err); h != "" {
		return h
	}
	msg := err.Error()
	switch {
	case strings.Contains(msg, "topic not found") || strings.Contains(msg, "Unable to find the topic"):
		return "Danube does not create topics for consumers: create the topic (danube-admin-cli topics create) or start its producer first; the input keeps retrying"
	case strings.Contains(msg, "exclusive subscription"):
		return fmt.Sprintf("another consumer holds the exclusive subscription: use the same %s to take over, or another %s", fieldConsumerName, fieldSubscription)
	}
	return ""
}

func (in *input) getConsumer() *danube.Consumer {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.consumer
}

// ReadBatch waits for a free max_unacked slot, then returns the messages
// already received, at most as many as there are free slots (and maxBatch).
func (in *input) ReadBatch(ctx context.Context) (service.MessageBatch, service.AckFunc, error) {
	co := in.getConsumer()
	if co == nil {
		return nil, nil, service.ErrNotConnected
	}
	n, err := in.slots.acquire(ctx, maxBatch)
	if err != nil {
		return nil, nil, err
	}
	ms, err := co.TryReceiveBatch(n)
	if err == nil && len(ms) == 0 {
		ms, err = in.wait(ctx, co, n)
	}
	in.slots.release(n - len(ms))
	if err != nil {
		if errors.Is(err, danube.ErrClosed) {
			return nil, nil, service.ErrNotConnected
		}
		return nil, nil, err
	}
	in.mUnacked.Set(int64(in.slots.inUse()))
	batch := make(service.MessageBatch, len(ms))
	for i, m := range ms {
		batch[i] = toMessage(m, in.s.subscription)
	}
	return batch, in.ackFunc(co, ms, batch), nil
}

// downCheck is how often a ReadBatch waiting for messages checks whether
// the consumer lost every receive stream.
const downCheck = time.Second

// wait blocks until messages arrive (at most n). It returns ErrNotConnected
// when every topic and partition has lost its stream (a Danube outage), so
// that Benthos counts the lost connection, reports not ready and calls
// Connect, which answers an error until the consumer has resubscribed.
func (in *input) wait(ctx context.Context, co *danube.Consumer, n int) ([]*danube.ReceivedMessage, error) {
	for {
		if len(co.Down()) == len(co.Topics()) {
			return nil, service.ErrNotConnected
		}
		wctx, cancel := context.WithTimeout(ctx, downCheck)
		ms, err := co.ReceiveBatch(wctx, n)
		cancel()
		if err == nil || ctx.Err() != nil || !errors.Is(err, context.DeadlineExceeded) {
			return ms, err
		}
	}
}

// ackFunc returns the AckFunc of one batch: an ack acks every message to
// Danube; a nack nacks every message, or with a *service.BatchError only
// the failed ones (the others are acked). It is idempotent.
func (in *input) ackFunc(co *danube.Consumer, ms []*danube.ReceivedMessage, batch service.MessageBatch) service.AckFunc {
	var once sync.Once
	var ix *service.Indexer
	if len(batch) > 1 {
		ix = batch.Index()
	}
	return func(ctx context.Context, err error) error {
		var result error
		once.Do(func() {
			failed := make([]error, len(ms)) // nil: ack
			if err != nil {
				var be *service.BatchError
				if ix != nil && errors.As(err, &be) && be.IndexedErrors() > 0 {
					be.WalkMessagesIndexedBy(ix, func(i int, _ *service.Message, merr error) bool {
						if i >= 0 && i < len(failed) && merr != nil {
							failed[i] = merr
						}
						return true
					})
				} else {
					for i := range failed {
						failed[i] = err
					}
				}
			}
			result = in.settle(ctx, co, ms, failed)
			in.slots.release(len(ms))
			in.mUnacked.Set(int64(in.slots.inUse()))
		})
		return result
	}
}

// settle acks ms[i] when failed[i] is nil and nacks it otherwise, all
// concurrently, and returns the first RPC error.
func (in *input) settle(ctx context.Context, co *danube.Consumer, ms []*danube.ReceivedMessage, failed []error) error {
	// Bounded by a timer rather than a deadline: a deadline travels as
	// grpc-timeout with every RPC and costs a timer per RPC on both sides.
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	stop := time.AfterFunc(ackTimeout, cancel)
	defer stop.Stop()
	errs := make([]error, len(ms))
	one := func(i int) {
		m := ms[i]
		if failed[i] == nil {
			if err := co.Ack(ctx, m); err != nil {
				errs[i] = fmt.Errorf("danube input: ack of %s offset %d (Danube redelivers it): %w", m.Topic, m.Offset, err)
			}
			return
		}
		in.mNacks.Incr(1)
		reason := failed[i].Error()
		if len(reason) > 512 {
			reason = reason[:512]
		}
		if err := co.Nack(ctx, m, in.s.nackDelay, reason); err != nil {
			errs[i] = fmt.Errorf("danube input: nack of %s offset %d (Danube redelivers it after its ack timeout): %w", m.Topic, m.Offset, err)
		}
	}
	if len(ms) == 1 {
		one(0)
	} else {
		var wg sync.WaitGroup
		for i := range ms {
			wg.Add(1)
			go func() {
				defer wg.Done()
				one(i)
			}()
		}
		wg.Wait()
	}
	var first error
	for _, err := range errs {
		if err == nil {
			in.settled.Add(1)
		} else if first == nil {
			first = err
		}
	}
	if first != nil {
		in.mAckErrors.Incr(1)
	}
	return first
}

// Close stops the consumer's streams and health loops and closes the
// client. Unacknowledged reliable messages are redelivered by Danube.
func (in *input) Close(ctx context.Context) error {
	in.mu.Lock()
	in.closed = true
	co, c := in.consumer, in.client
	in.consumer, in.client = nil, nil
	in.mu.Unlock()
	if co != nil {
		_ = co.Close()
	}
	if c != nil {
		return c.Close()
	}
	return nil
}
