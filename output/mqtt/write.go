package mqttout

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/benthos-danube/benthos-danube/internal/ordering"
)

// pending is one message of a WriteBatch call.
type pending struct {
	idx  int
	seq  int64
	pub  publication
	dl   *dlCause // can never be published: dead-letter it
	skip bool     // loop guard: acknowledged without publishing
	del  delivery
	err  error
	done chan struct{} // closed once the publication was handed to the connection
	key  string        // suspectKey, when suspects exist or it failed with its connection
	// isolated: a suspect, published alone; its outcome is known when done
	// is closed.
	isolated bool
	awaited  bool // counted in live.inflight until its outcome is known
}

// WriteBatch publishes every message of the batch, in stamp order across
// concurrent calls, and returns once the broker acknowledged all of them or
// some failed.
func (o *output) WriteBatch(ctx context.Context, batch service.MessageBatch) error {
	done, ok := o.gate.Enter()
	if !ok {
		return errClosed
	}
	defer done()
	lc := o.cur.Load()
	if lc == nil {
		return service.ErrNotConnected
	}
	select {
	case <-lc.t.lost():
		return service.ErrNotConnected
	default:
	}
	items, toSend := o.prepareBatch(batch)
	o.handOff(ctx, lc, toSend)
	o.await(ctx, lc, toSend)
	return o.settle(ctx, lc.t, batch, items, toSend)
}

// prepareBatch resolves every message of batch (items, by index) and
// returns those to publish: the others are dead-lettered or skipped by the
// loop guard.
func (o *output) prepareBatch(batch service.MessageBatch) (items, toSend []*pending) {
	topicEx := batch.InterpolationExecutor(o.topic)
	qosEx := batch.InterpolationExecutor(o.qos)
	retEx := batch.InterpolationExecutor(o.retained)
	items = make([]*pending, len(batch))
	base := ordering.BatchStamp(batch, metaSeq)
	for i, msg := range batch {
		p := o.prepare(i, msg, topicEx, qosEx, retEx)
		if base > 0 {
			p.seq = base + int64(i)
		}
		items[i] = p
		if p.dl != nil || p.skip {
			// A message that is not published still occupies its place
			// in the sequence.
			if p.seq > 0 {
				o.seq.Skip(p.seq)
			}
			continue
		}
		toSend = append(toSend, p)
	}
	return items, toSend
}

// handOff hands the publications to the connection in stamp order (one
// domain: the connection writes them in call order); a suspect is
// published alone (suspects.go).
func (o *output) handOff(ctx context.Context, lc *live, toSend []*pending) {
	for _, p := range toSend {
		p.done = make(chan struct{})
		o.seq.Submit(ordering.Item[struct{}]{Seq: p.seq, Job: ordering.Func(func() {
			if p.isolated {
				o.publishAlone(ctx, lc, p)
			} else {
				lc.inflight.Add(1)
				p.awaited = true
				p.del = lc.t.publish(p.pub)
			}
			close(p.done)
		})})
	}
}

// await waits for the acknowledgements of toSend, all under one
// write_timeout deadline, and sets each one's err.
func (o *output) await(ctx context.Context, lc *live, toSend []*pending) {
	t := lc.t
	timer := time.NewTimer(o.writeTimeout)
	defer timer.Stop()
	timedOut := false
	for _, p := range toSend {
		<-p.done
		if p.isolated {
			continue // publishAlone set err
		}
		switch {
		case timedOut:
			p.err = o.timeoutErr(p)
		default:
			select {
			case <-p.del.Done():
				p.err = p.del.Error()
			case <-t.lost():
				select {
				case <-p.del.Done():
					p.err = p.del.Error()
				default:
					p.err = errConnLost
				}
			case <-ctx.Done():
				p.err = fmt.Errorf("publishing to %q: %w", p.pub.topic, ctx.Err())
			case <-timer.C:
				timedOut = true
				p.err = o.timeoutErr(p)
			}
		}
		if p.awaited {
			lc.inflight.Add(-1)
		}
	}
}

// settle turns the outcomes into WriteBatch's result: a broker's refusal
// is dead-lettered, a message in flight on a lost connection becomes a
// suspect, and the dead letters are written (then acknowledged); the others
// that failed fail the batch at their index.
func (o *output) settle(ctx context.Context, t transport, batch service.MessageBatch, items, toSend []*pending) error {
	var batchErr *service.BatchError
	var firstErr error
	fail := func(i int, err error) {
		if batchErr == nil {
			batchErr, firstErr = service.NewBatchError(batch, err), err
		}
		batchErr.Failed(i, err)
	}
	connErrs := 0
	for _, p := range toSend {
		if p.err == nil {
			if p.key != "" {
				o.sus.clear(p.key)
			}
			continue
		}
		var ref *refusedError
		if errors.As(p.err, &ref) {
			p.dl = &dlCause{reason: refusalReason(ref), err: p.err.Error(), topic: p.pub.topic}
			continue
		}
		if isConnErr(p.err) {
			connErrs++
			// In flight when the connection was lost: a suspect, next
			// published alone (see suspects.go).
			if p.key == "" {
				p.key = suspectKey(p.pub)
			}
			o.sus.add(p.key)
		}
		fail(p.idx, fmt.Errorf("publishing to %q: %w", p.pub.topic, p.err))
	}
	if connErrs > 0 {
		select {
		case <-t.lost():
		default:
			// paho says not connected but has not called the lost
			// handler (yet): replace the connection anyway.
			t.close(0)
		}
	}
	for _, p := range items {
		if p.dl == nil {
			continue
		}
		if err := o.dl.write(ctx, batch[p.idx], p.pub.payload, p.dl); err != nil {
			fail(p.idx, err)
		} else if p.key != "" {
			o.sus.clear(p.key)
		}
	}
	if batchErr == nil {
		return nil
	}
	if connErrs > 0 && connErrs == len(batch) {
		// Nothing got through and the connection is gone: let Benthos
		// reconnect (with back-off) and write the batch again.
		return service.ErrNotConnected
	}
	if len(batch) == 1 {
		return firstErr
	}
	return batchErr
}

func (o *output) timeoutErr(p *pending) error {
	o.mTimeouts.Incr(1)
	return fmt.Errorf("no acknowledgement from the broker within write_timeout (%v) for a QoS %d message to %q; it is retried", o.writeTimeout, p.pub.qos, p.pub.topic)
}

// isConnErr reports whether err says the connection is gone (transports
// wrap errConnLost).
func isConnErr(err error) bool { return errors.Is(err, errConnLost) }

// prepare resolves topic, QoS and retain of one message. A message that can
// never be published comes back with its dead-letter cause set, one the
// loop guard stops with skip set.
func (o *output) prepare(i int, msg *service.Message, topicEx, qosEx, retEx *service.MessageBatchInterpolationExecutor) *pending {
	p := &pending{idx: i}
	if o.skipOrigin && fromMQTT(msg) {
		p.skip = true
		o.mSkipped.Incr(1)
		return p
	}
	topic, terr := topicEx.TryString(i)
	p.pub.topic = topic
	if c := causeFromMeta(msg, topic); c != nil {
		p.dl = c
		return p
	}
	doom := func(reason string, err error) *pending {
		p.dl = &dlCause{reason: reason, err: err.Error(), topic: p.pub.topic}
		return p
	}
	if terr != nil {
		p.pub.topic = ""
		return doom(reasonInvalidTopic, fmt.Errorf("field %s: %w", fieldTopic, terr))
	}
	if err := validTopic(topic); err != nil {
		p.pub.topic = ""
		return doom(reasonInvalidTopic, fmt.Errorf("field %s resolved to %q: %w", fieldTopic, topic, err))
	}
	qs, err := qosEx.TryString(i)
	if err != nil {
		return doom(reasonInvalidMessage, fmt.Errorf("field %s: %w", fieldQoS, err))
	}
	if p.pub.qos, err = parseQoS(qs); err != nil {
		return doom(reasonInvalidMessage, fmt.Errorf("field %s: %w", fieldQoS, err))
	}
	rs, err := retEx.TryString(i)
	if err != nil {
		return doom(reasonInvalidMessage, fmt.Errorf("field %s: %w", fieldRetained, err))
	}
	if p.pub.retained, err = parseRetained(rs); err != nil {
		return doom(reasonInvalidMessage, fmt.Errorf("field %s: %w", fieldRetained, err))
	}
	if p.pub.payload, err = msg.AsBytes(); err != nil {
		return doom(reasonInvalidMessage, fmt.Errorf("reading the payload: %w", err))
	}
	if o.v5 {
		if p.pub.props, err = buildProperties(msg, o.userProps); err != nil {
			return doom(reasonInvalidMessage, fmt.Errorf("MQTT 5 properties: %w", err))
		}
	}
	if o.sus.any() {
		p.key = suspectKey(p.pub)
		if n, ok := o.sus.strikes(p.key); ok {
			if n >= isolatedStrikes {
				return doom(reasonRefused, fmt.Errorf("the MQTT broker closed the connection %d times when this message (%d bytes, QoS %d) was published alone: it refuses it (an ACL that disconnects, a packet over the broker's maximum size)", n, len(p.pub.payload), p.pub.qos))
			}
			p.isolated = true
		}
	}
	return p
}
