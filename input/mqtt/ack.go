package mqtt

import (
	"context"
	"errors"
	"sync/atomic"

	"github.com/redpanda-data/benthos/v4/public/service"
)

// batchAck returns the Benthos ack of one batch. On success every message is
// settled: its PUBACK (QoS 1) or PUBREC (QoS 2) goes out, in arrival order
// across batches (ackReleaser), and its slot is freed. On a nack only the
// messages the output reported as failed (a *service.BatchError) are nacked,
// or all of them for any other error; the others are settled.
func (in *input) batchAck(ds []*delivery) service.AckFunc {
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
		failed := failedOf(ds, err)
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

// failedOf returns which deliveries of ds a batch error marks as failed, or
// nil when the error is not specific (then all of them failed). A failed
// message is traced back to its delivery through its context (batchOf).
// Benthos' output batching stage (the danube output's ordering stage)
// reduces a batch error to a plain one, so this only helps pipelines
// without it.
func failedOf(ds []*delivery, err error) []bool {
	var bErr *service.BatchError
	if len(ds) < 2 || !errors.As(err, &bErr) || bErr.IndexedErrors() == 0 {
		return nil
	}
	failed := make([]bool, len(ds))
	any := false
	// WalkMessages is deprecated because its indexes need not match the
	// origin batch; only the messages and their errors are used here.
	//lint:ignore SA1019 the indexes are not used, see above
	bErr.WalkMessages(func(_ int, m *service.Message, e error) bool {
		if e == nil {
			return true
		}
		if d, ok := m.Context().Value(deliveryKey{}).(*delivery); ok && d.index >= 0 && d.index < len(ds) && ds[d.index] == d {
			failed[d.index], any = true, true
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
