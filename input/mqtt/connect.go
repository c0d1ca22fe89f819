package mqtt

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/benthos-danube/benthos-danube/internal/redact"
)

// disconnectQuiesce bounds the graceful DISCONNECT on Close.
const disconnectQuiesce = 250 // ms

// connection is one transport session and its lifetime. A fresh one is built
// for every connection attempt.
type connection struct {
	client   session
	acks     *ackReleaser // nil when acknowledgements go out in completion order
	lost     chan struct{}
	lostOnce sync.Once
	replays  atomic.Pointer[replayFilter] // set when retained replays are skipped (retained.go)
}

func (c *connection) markLost() { c.lostOnce.Do(func() { close(c.lost) }) }

func (c *connection) isLost() bool {
	select {
	case <-c.lost:
		return true
	default:
		return false
	}
}

// Connect connects a fresh paho client and subscribes every mapping. It
// returns nil at once when already connected, and a *service.ErrBackOff with
// an exponentially growing wait when the broker is unreachable, refuses the
// connection or refuses a subscription.
func (in *input) Connect(ctx context.Context) error {
	in.connMu.Lock()
	defer in.connMu.Unlock()
	select {
	case <-in.closed:
		return service.ErrEndOfInput
	default:
	}
	in.gaugeOnce.Do(func() {
		in.gaugeWG.Add(1)
		go in.gaugeLoop()
	})
	old := in.conn.Load()
	if old != nil && !old.isLost() {
		return nil
	}
	if old != nil {
		old.client.disconnect(false)
	}
	if err := in.connect(ctx); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return service.NewErrBackOff(err, in.reconnect.Failed())
	}
	if in.reconnect.Succeeded() {
		in.mReconnects.Incr(1)
	}
	return nil
}

func (in *input) connect(ctx context.Context) error {
	c := &connection{lost: make(chan struct{})}
	if in.cfg.orderedAcks {
		c.acks = newAckReleaser(func(n int) { in.mAcks.Incr(int64(n)) })
	}
	sess, sessionPresent, err := in.dial(ctx, c)
	if err != nil {
		return err
	}
	c.client = sess
	in.watchReplays(c, sessionPresent) // before the SUBSCRIBE its replays answer

	res, err := sess.subscribe(ctx, in.subs)
	if err != nil {
		sess.disconnect(false)
		return fmt.Errorf("subscribing to %d filters: %w", len(in.subs), err)
	}
	var refused []string
	for i, sub := range in.subs {
		// 0x80 is MQTT 3.1.1's only failure code; some brokers answer
		// with MQTT 5 codes. mochi answers 0x91 (packet identifier in use)
		// when the resumed session still has a message in flight under
		// the SUBSCRIBE's packet id: the session's subscription stays in
		// force, and reconnecting would only meet the same answer, so it
		// is a warning. Any other code from 0x80 up is a refusal.
		r := res[i]
		switch {
		case r.code < 0x80:
		case r.code == 0x91:
			in.log.Warnf("The MQTT broker answered SUBACK 0x91 (packet identifier in use) to the re-subscription of filter %q: the session's existing subscription stays in force, but a new filter or a changed QoS takes effect only at a later reconnect", sub.filter)
		default:
			refused = append(refused, fmt.Sprintf("%q (SUBACK 0x%02x %s%s)", sub.filter, r.code, subackReason(r.code), reasonSuffix(r.reason)))
		}
	}
	if len(refused) > 0 {
		sess.disconnect(false)
		return fmt.Errorf("the MQTT broker refused the subscription to filter %v: check the broker's ACL for client_id %q and user %q, and its support for the filter", refused, in.cfg.clientID, in.cfg.user)
	}
	in.conn.Store(c)
	in.log.Infof("Connected to MQTT broker %v as client_id %q over MQTT %s (session present: %v), subscribed to %d filters", redact.URLs(in.cfg.urls), in.cfg.clientID, in.cfg.protocol, sessionPresent, len(in.subs))
	return nil
}

// handle runs on paho's router goroutine for every PUBLISH (no routes are
// registered, so everything reaches the default handler exactly once,
// including messages a persistent session delivers before SUBACK). It
// appends to the queue, blocking only for the queue's bounded back-pressure
// (queue.push), or acknowledges a retained replay it skips (skipReplay).
func (in *input) handle(c *connection, m message) {
	if m.Qos() > 0 && c.acks != nil {
		m = c.acks.track(m)
	}
	if in.skipReplay(c, m) {
		return
	}
	if !in.q.push(m, time.Now().UnixNano(), c.lost) && m.Qos() == 0 {
		// A QoS 1/2 message refused here only met a lost connection: it
		// is not acknowledged, so the session redelivers it.
		in.mQoS0Dropped.Incr(1)
		in.warnQoS0.warn(in.log, "dropping QoS 0 messages: %d already wait for the pipeline (max_unacked), and it took none for %v; last dropped topic %q", in.cfg.maxUnacked, in.q.maxBlock, m.Topic())
	}
}
