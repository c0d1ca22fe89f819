package mqtt

import (
	"context"
	"errors"
	"sync/atomic"
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
	in.readCalls.Add(1)
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
	var idx *service.Indexer
	if len(batch) > 1 {
		// Lets the ack find the failed messages again after processors
		// filtered or reordered the batch.
		idx = batch.Index()
	}
	return batch, in.batchAck(ds, idx), nil
}

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
}

// retryDelay is the wait before re-delivering a message nacked attempts
// times: the first two retries are immediate, then 1 ms doubling to 1 s.
func retryDelay(attempts int) time.Duration {
	if attempts <= 2 {
		return 0
	}
	return min(time.Millisecond<<min(attempts-3, 10), time.Second)
}

// dueRetries removes and returns up to max nacked messages that are due, in
// the order they were nacked, and the wait until the earliest remaining one
// is due (0 when none remains).
func (in *input) dueRetries(now time.Time, max int) ([]*delivery, time.Duration) {
	in.retryMu.Lock()
	defer in.retryMu.Unlock()
	var due []*delivery
	var wait time.Duration
	keep := in.retries[:0]
	for _, it := range in.retries {
		d := it.due.Sub(now)
		switch {
		case d <= 0 && len(due) < max:
			due = append(due, it)
			continue
		case d <= 0:
			d = time.Millisecond // due, but past max: come back at once
		}
		if wait == 0 || d < wait {
			wait = d
		}
		keep = append(keep, it)
	}
	clear(in.retries[len(keep):])
	in.retries = keep
	in.nRetries.Add(-int64(len(due)))
	return due, wait
}

func (in *input) pushRetry(it *delivery) {
	it.attempts++
	it.due = time.Now().Add(retryDelay(it.attempts))
	in.retryMu.Lock()
	in.retries = append(in.retries, it)
	in.nRetries.Add(1)
	in.retryMu.Unlock()
	select {
	case in.retryNotify <- struct{}{}:
	default:
	}
}

// batchAck returns the Benthos ack of one batch. On success every message is
// settled: its PUBACK (QoS 1) or PUBREC (QoS 2) goes out, in arrival order
// across batches (ackReleaser), and its slot is freed. On a nack only the
// messages the output reported as failed (a *service.BatchError) are nacked,
// or all of them for any other error; the others are settled.
func (in *input) batchAck(ds []*delivery, idx *service.Indexer) service.AckFunc {
	var done atomic.Bool
	return func(_ context.Context, err error) error {
		if !done.CompareAndSwap(false, true) {
			return nil
		}
		if err == nil {
			for _, d := range ds {
				in.settle(d)
			}
			return nil
		}
		failed := failedOf(len(ds), idx, err)
		for i, d := range ds {
			if failed == nil || failed[i] {
				in.nack(d, err)
			} else {
				in.settle(d)
			}
		}
		return nil
	}
}

// failedOf returns which of n messages a batch error marks as failed, or nil
// when the error is not specific (then all of them failed).
func failedOf(n int, idx *service.Indexer, err error) []bool {
	var bErr *service.BatchError
	if idx == nil || !errors.As(err, &bErr) || bErr.IndexedErrors() == 0 {
		return nil
	}
	failed := make([]bool, n)
	any := false
	bErr.WalkMessagesIndexedBy(idx, func(i int, _ *service.Message, e error) bool {
		if e != nil && i >= 0 && i < n {
			failed[i], any = true, true
		}
		return true
	})
	if !any {
		return nil
	}
	return failed
}

// nack handles a message the output rejected. With auto_replay_nacks it is
// queued for re-delivery, keeping its slot and withholding the broker ack;
// without, a nack means "drop": the message is acknowledged to the broker so
// it does not hold an in-flight slot for ever.
func (in *input) nack(d *delivery, err error) {
	if in.autoReplay {
		in.pushRetry(d)
		return
	}
	in.mNackDropped.Incr(1)
	in.warnNack.warn(in.log, "dropping a message the output rejected (auto_replay_nacks is false), topic %q: %v", d.m.Topic(), err)
	in.settle(d)
}

// settle acknowledges a message to the broker and frees its slot.
func (in *input) settle(d *delivery) {
	if d.m.Qos() > 0 {
		// Paho drops the ack if the message came from an earlier
		// connection; a persistent session redelivers it.
		if r, ok := d.m.(*tracked); ok {
			r.rel.complete(r) // in arrival order, counted when sent
		} else {
			d.m.Ack()
			in.mAcks.Incr(1)
		}
	}
	in.release(d.m)
	in.ledger.done(d)
	<-in.slots
}
