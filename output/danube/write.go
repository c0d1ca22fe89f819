package danubeout

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/benthos-danube/benthos-danube/internal/danube"
	"github.com/benthos-danube/benthos-danube/internal/deadletter"
	"github.com/benthos-danube/benthos-danube/internal/metaref"
	"github.com/benthos-danube/benthos-danube/internal/ordering"
)

// unreachableLogEvery is the least time between two "unreachable" warnings.
const unreachableLogEvery = 10 * time.Second

// pending is one message of a WriteBatch call on its way to the broker.
type pending struct {
	idx     int
	key     producerKey
	msg     danube.Message
	seq     int64 // 0: not stamped
	ordered bool  // has a routing key: sent in sequence per (producer, key)
	err     error
	dl      *dlCause // the message can never be delivered: dead-letter it

	// An ordered message is the sequencer's Job (Run): sent with ctx by o,
	// then marked done in its WriteBatch call's wg.
	o   *output
	ctx context.Context
	wg  *sync.WaitGroup
}

// seqDomain is an ordering domain of the sequencer: the messages of one
// routing key on one producer are sent one at a time, in pipeline order.
type seqDomain struct {
	producer producerKey
	key      string
}

// unorderedLanes bounds the workers one WriteBatch call sends its unordered
// messages on (each lane sends its share one after the other). Without it a
// batch of 64 keyless messages under max_in_flight 64 had 4,096 sends in
// flight on one connection, far more than a broker serves any faster.
const unorderedLanes = 8

// sendLane is a share of a call's unordered messages, sent one after the
// other on a sequencer worker.
type sendLane struct {
	o   *output
	ctx context.Context
	wg  *sync.WaitGroup
	ps  []*pending
}

func (l *sendLane) Run() {
	for _, p := range l.ps {
		p.err = l.o.send(l.ctx, p)
	}
	l.wg.Done()
}

// Run sends the message on a sequencer worker.
func (p *pending) Run() {
	p.err = p.o.send(p.ctx, p)
	p.wg.Done()
}

// WriteBatch sends every message of the batch and returns once the broker
// acknowledged all of them or some failed.
func (o *output) WriteBatch(ctx context.Context, batch service.MessageBatch) error {
	done, ok := o.gate.Enter()
	if !ok {
		return errClosed
	}
	defer done()
	if o.getClient() == nil {
		return service.ErrNotConnected
	}
	items, doomed := o.prepareBatch(batch)
	o.sendAll(ctx, items)
	return o.settle(batch, items, doomed)
}

// prepareBatch resolves the routing of every message of batch: items are
// to be sent, doomed can never be sent as they are and are dead-lettered.
func (o *output) prepareBatch(batch service.MessageBatch) (items, doomed []*pending) {
	topicR, keyR := o.topicF.For(batch), o.keyF.For(batch)

	items = make([]*pending, 0, len(batch))
	base := ordering.BatchStamp(batch, metaSeq)
	for i, msg := range batch {
		var seq int64
		if base > 0 {
			seq = base + int64(i)
		}
		p := o.prepare(i, seq, msg, &topicR, &keyR)
		if p.dl != nil {
			// A message that is not sent still occupies its place in
			// the sequence.
			if p.seq > 0 {
				o.seq.Skip(p.seq)
			}
			doomed = append(doomed, p)
			continue
		}
		items = append(items, p)
	}
	return items, doomed
}

// sendAll sends items under one send_timeout deadline, which Close cuts
// short, and returns once each has its outcome in err.
func (o *output) sendAll(ctx context.Context, items []*pending) {
	sctx, cancel := context.WithTimeout(ctx, o.sendTimeout)
	defer cancel()
	stop := context.AfterFunc(o.closeCtx, cancel)
	defer stop()

	// Ordered messages go through the sequencer; unordered ones are sent
	// right away (inline when there is only one), on at most
	// unorderedLanes workers per call.
	var wg sync.WaitGroup
	var ordered, unordered []*pending
	for _, p := range items {
		if p.ordered {
			ordered = append(ordered, p)
			continue
		}
		if p.seq > 0 {
			o.seq.Skip(p.seq)
		}
		if len(items) == 1 {
			p.err = o.send(sctx, p)
			continue
		}
		unordered = append(unordered, p)
	}
	for lane := range min(len(unordered), unorderedLanes) {
		l := &sendLane{o: o, ctx: sctx, wg: &wg}
		for i := lane; i < len(unordered); i += unorderedLanes {
			l.ps = append(l.ps, unordered[i])
		}
		wg.Add(1)
		o.seq.Go(l)
	}
	for _, p := range ordered {
		p.o, p.ctx, p.wg = o, sctx, &wg
		wg.Add(1)
		o.seq.Submit(ordering.Item[seqDomain]{Seq: p.seq, Domain: seqDomain{p.key, p.msg.Key}, Job: p})
	}
	wg.Wait()
}

// settle turns the outcomes into WriteBatch's result: a message the broker
// refused for good joins the doomed, which are dead-lettered (and then
// acknowledged); the others that failed fail the batch at their index.
func (o *output) settle(batch service.MessageBatch, items, doomed []*pending) error {
	var batchErr *service.BatchError
	var firstErr error
	fail := func(i int, err error) {
		if batchErr == nil {
			batchErr, firstErr = service.NewBatchError(batch, err), err
		}
		batchErr.Failed(i, err)
	}
	var connErrs, okCount int
	for _, p := range items {
		if p.err == nil {
			okCount++
			continue
		}
		if errors.Is(p.err, service.ErrNotConnected) || danube.IsConnectionError(p.err) {
			connErrs++
			fail(p.idx, p.err)
			continue
		}
		if p.dl = causeOf(p.err, p.key.topic); p.dl != nil {
			doomed = append(doomed, p)
			continue
		}
		fail(p.idx, p.err)
	}
	for _, p := range doomed {
		if err := o.deadLetter(batch[p.idx], p.msg.Payload, p.dl); err != nil {
			fail(p.idx, err)
		}
	}
	if batchErr == nil {
		return nil
	}
	// The broker is unreachable and nothing got through: let Benthos
	// reconnect (with back-off) and write the batch again.
	if connErrs > 0 && okCount == 0 && connErrs == len(items) && len(items) == len(batch) {
		o.warnUnreachable(items[0].err)
		return service.ErrNotConnected
	}
	if len(batch) == 1 {
		// The single message's error, unwrapped, so that logs show it
		// directly.
		return firstErr
	}
	return batchErr
}

// warnUnreachable logs that the broker is unreachable, at most once per
// unreachableLogEvery.
func (o *output) warnUnreachable(err error) {
	if now := time.Now().UnixNano(); now-o.lastUnreachableLog.Load() >= int64(unreachableLogEvery) {
		o.lastUnreachableLog.Store(now)
		o.log.Warnf("Danube broker %s unreachable: %v", o.shownURL(), err)
	}
}

// prepare resolves the routing of one message. A message that can never be
// sent as it is comes back with its dead-letter cause set.
func (o *output) prepare(i int, seq int64, msg *service.Message, topicR, keyR *metaref.Resolver) *pending {
	p := &pending{idx: i, seq: seq}
	if p.dl = causeFromMeta(msg); p.dl != nil {
		if p.dl.topic == "" {
			// Marked by the pipeline: say where it was meant to go.
			p.dl.topic = o.staticTopic
			if !o.topicIsStatic {
				p.dl.topic, _ = topicR.String(i)
			}
			if o.validateTopic(p.dl.topic) != nil {
				p.dl.topic = ""
			}
		}
		return p
	}
	doom := func(reason, topic string, err error) *pending {
		p.dl = &dlCause{reason: reason, err: err.Error(), topic: topic}
		return p
	}
	topic, static := o.staticTopic, o.topicIsStatic
	if !static {
		var err error
		if topic, err = topicR.String(i); err != nil {
			return doom(deadletter.ReasonInvalidTopic, "", fmt.Errorf("field topic: %w", err))
		}
	}
	if err := o.validateTopic(topic); err != nil {
		if _, routed := msg.MetaGetMut("danube_topic"); !routed && o.topicIsDefault {
			return doom(deadletter.ReasonNoMapping, "", fmt.Errorf("the message has no danube_topic metadata (no topic mapping routed it) and the output's topic is the default %s", defaultTopic))
		}
		return doom(deadletter.ReasonInvalidTopic, topic, fmt.Errorf("field topic resolved to %q, which is not a valid Danube topic (required form /namespace/topic): %w", topic, err))
	}
	p.key = producerKey{topic: topic, partitions: o.partitions, reliable: o.reliable}
	if v, ok := msg.MetaGetMut(metaPartitions); ok {
		n, ok := toInt64(v)
		if !ok || n < 0 || n > 1<<16 {
			return doom(reasonInvalidMessage, topic, fmt.Errorf("metadata %s: invalid partition count %v", metaPartitions, v))
		}
		p.key.partitions = int(n)
	}
	if v, ok := msg.MetaGetMut(metaReliableDispatch); ok {
		b, ok := toBool(v)
		if !ok {
			return doom(reasonInvalidMessage, topic, fmt.Errorf("metadata %s: invalid boolean %v", metaReliableDispatch, v))
		}
		p.key.reliable = b
	}
	key, err := keyR.String(i)
	if err != nil {
		return doom(reasonInvalidMessage, topic, fmt.Errorf("field key: %w", err))
	}
	payload, err := msg.AsBytes()
	if err != nil {
		return doom(reasonInvalidMessage, topic, fmt.Errorf("reading message payload: %w", err))
	}
	p.msg = danube.Message{Payload: payload, Attributes: o.attributes(msg), Key: key}
	if len(payload) > danube.MaxRequestBytes {
		return doom(deadletter.ReasonTooLarge, topic, fmt.Errorf("message of %d bytes to %s: %w", len(payload), topic, danube.ErrMessageTooLarge))
	}
	if b := o.schemas.forTopic(topic); b != nil {
		if err := b.validate(payload); err != nil {
			return doom(deadletter.ReasonSchemaInvalid, topic, err)
		}
	}
	p.ordered = key != ""
	return p
}

// validateTopic checks a resolved topic name (static topics were checked
// at start-up).
func (o *output) validateTopic(topic string) error {
	if o.topicIsStatic {
		return nil
	}
	return danube.ValidateTopic(topic)
}

// send delivers one message and waits for the broker's acknowledgement.
func (o *output) send(ctx context.Context, p *pending) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("sending to %s: %w", p.key.topic, err)
	}
	e, err := o.cache.acquire(ctx, p.key)
	if err != nil {
		return fmt.Errorf("sending to %s: %w", p.key.topic, err)
	}
	defer o.cache.release(e)
	if err := e.producer.Send(ctx, p.msg); err != nil {
		if errors.Is(err, danube.ErrMessageTooLarge) {
			return fmt.Errorf("sending %d bytes to %s (permanent, not retried): %w", len(p.msg.Payload), p.key.topic, err)
		}
		return o.explain(fmt.Errorf("sending to %s: %w", p.key.topic, err))
	}
	return nil
}
