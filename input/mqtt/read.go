package mqtt

import (
	"context"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"
)

// maxNaturalBatch bounds a natural batch: ReadBatch returns every message
// already waiting, up to this many, and never waits for more. At low load a
// batch is one message (no latency is added); under load batches grow by
// themselves, so Benthos' per-transaction work (processors, the output's
// batching stage, WriteBatch) is paid once for many messages.
const maxNaturalBatch = 256

// ReadBatch hands the next natural batch to the pipeline: nacked messages
// whose retry backoff has passed first, then the oldest received ones, as
// many as are waiting and as max_unacked allows. It blocks while nothing is
// waiting or max_unacked messages are unacknowledged (nacked ones keep their
// slot), and returns service.ErrNotConnected when the connection is lost and
// nothing received earlier is still waiting.
func (in *input) ReadBatch(ctx context.Context) (service.MessageBatch, service.AckFunc, error) {
	held := 0 // slots taken and not yet given to a message
	defer func() {
		for ; held > 0; held-- {
			<-in.slots
		}
	}()
	for {
		var ds []*delivery
		var wait time.Duration
		if in.nRetries.Load() > 0 {
			ds, wait = in.dueRetries(time.Now(), maxNaturalBatch)
		}
	fill:
		for len(ds) < maxNaturalBatch {
			if held == 0 {
				select {
				case in.slots <- struct{}{}:
					held++
				default:
					break fill
				}
			}
			e, ok := in.q.pop()
			if !ok {
				break
			}
			held--
			in.take(e.m)
			d := &delivery{m: e.m, at: e.at, fresh: true}
			in.ledger.add(d)
			ds = append(ds, d)
		}
		if len(ds) > 0 {
			return in.batchOf(ds)
		}
		c := in.conn.Load()
		if (c == nil || c.isLost()) && wait == 0 && in.q.len() == 0 {
			return nil, nil, service.ErrNotConnected
		}
		var lost chan struct{}
		if c != nil {
			lost = c.lost
		}
		var slotCh chan struct{}
		if held == 0 {
			slotCh = in.slots
		}
		var timer *time.Timer
		var timerC <-chan time.Time
		if wait > 0 {
			timer = time.NewTimer(wait)
			timerC = timer.C
		}
		select {
		case slotCh <- struct{}{}:
			held++
		case <-in.q.notify:
		case <-in.retryNotify:
		case <-timerC:
		case <-lost:
		case <-ctx.Done():
			stopTimer(timer)
			return nil, nil, ctx.Err()
		case <-in.closed:
			stopTimer(timer)
			return nil, nil, service.ErrNotConnected
		}
		stopTimer(timer)
	}
}

// batchOf builds the Benthos batch of ds and its ack. Every delivery gets a
// fresh message built from the MQTT message: a retry must not see what the
// pipeline changed in an earlier attempt.
func (in *input) batchOf(ds []*delivery) (service.MessageBatch, service.AckFunc, error) {
	batch := make(service.MessageBatch, len(ds))
	var now int64
	for i, d := range ds {
		msg, r := in.toMessage(d.m)
		if p := propertiesOf(d.m); p != nil {
			if now == 0 {
				now = time.Now().UnixNano()
			}
			if setProperties(msg, p, d.at, now) {
				in.markExpired(msg, d.m, p, d.at, now)
				if !d.expired {
					d.expired = true
					in.mExpired.Incr(1)
					in.warnExpired.warn(in.log, "%v; marked for the dead-letter destination (dead_letter_reason: expired)", msg.GetError())
				}
			}
		}
		if d.fresh {
			in.countArrival(d.m, msg, r)
			d.fresh = false
		}
		batch[i] = msg
	}
	if len(batch) > 1 {
		// Lets the ack find the failed messages again after processors
		// filtered, reordered or copied the batch: the message's context
		// carries its delivery, and Benthos derives every copy's context
		// from it. Three allocations a message, where batch.Index() made
		// about nine (a sort group, tags and a copy of the whole batch).
		for i, d := range ds {
			d.index = i
			batch[i] = batch[i].WithContext(context.WithValue(context.Background(), deliveryKey{}, d))
		}
	}
	return batch, in.batchAck(ds), nil
}

// deliveryKey is the context key of a message's *delivery (batchOf).
type deliveryKey struct{}

func stopTimer(t *time.Timer) {
	if t != nil {
		t.Stop()
	}
}

// delivery is one received MQTT message on its way through the pipeline.
// Every (re)delivery builds a fresh Benthos message from it.
type delivery struct {
	m        message
	at       int64 // arrival, unix nanoseconds
	fresh    bool  // not handed to the pipeline yet
	attempts int
	due      time.Time
	settled  bool // acknowledged; guarded by the ledger's lock
	expired  bool // its MQTT 5 message expiry ran out (counted once)
	index    int  // its place in the batch it was last handed over in
}
