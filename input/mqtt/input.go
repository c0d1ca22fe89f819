// Package mqtt provides the `mqtt` Benthos input of benthos-danube: an MQTT
// 3.1.1 subscriber (Eclipse Paho) that routes messages to Danube topics
// through topic_mappings and acknowledges each message to the broker
// (PUBACK/PUBREC) only after the Benthos pipeline acknowledged it.
//
// Importing the package registers the input as `mqtt` in Benthos' global
// environment; Register adds it to another environment.
package mqtt

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/benthos-danube/benthos-danube/internal/deadletter"
	"github.com/benthos-danube/benthos-danube/internal/redact"
)

// Name is the name the input is registered under.
const Name = "mqtt"

func init() {
	service.MustRegisterBatchInput(Name, Spec(), newFromConfig)
}

// Register adds the mqtt input to env, e.g. an isolated environment in tests.
func Register(env *service.Environment) error {
	if err := env.RegisterBatchInput(Name, Spec(), newFromConfig); err != nil {
		return fmt.Errorf("registering the %s input: %w", Name, err)
	}
	return nil
}

func newFromConfig(conf *service.ParsedConfig, mgr *service.Resources) (service.BatchInput, error) {
	return newInput(conf, mgr)
}

// Reconnect backoff bounds.
const (
	backoffMin = 500 * time.Millisecond
	backoffMax = 30 * time.Second
	// disconnectQuiesce bounds the graceful DISCONNECT on Close.
	disconnectQuiesce = 250 // ms
	// warnEvery is the minimum interval between two warnings of one kind.
	warnEvery = 10 * time.Second
)

// input implements service.BatchInput. Concurrency: Connect and ReadBatch
// are called by Benthos' input loop, ack functions from arbitrary
// goroutines, push from paho's router goroutine.
type input struct {
	cfg  *config
	log  *service.Logger
	subs []subscription // one per mapping, in mapping order

	q      *queue
	slots  chan struct{} // one token per message in the pipeline, cap max_unacked
	ledger ledger        // messages in the pipeline, for the oldest-unacked age

	autoReplay  bool
	retryMu     sync.Mutex
	retries     []*delivery   // nacked messages waiting for re-delivery
	retryNotify chan struct{} // capacity 1

	connMu        sync.Mutex // serialises Connect and Close
	conn          atomic.Pointer[connection]
	everConnected bool
	failures      int
	closed        chan struct{}
	closeOnce     sync.Once
	gaugeOnce     sync.Once
	gaugeWG       sync.WaitGroup // the gauge loop, started by the first Connect

	mUnmatched, mPlaceholder, mQoS0Dropped, mAcks, mDup, mNackDropped, mReconnects, mExpired *service.MetricCounter
	gUnacked, gQueued, gOldest                                                               *service.MetricGauge
	unacked                                                                                  atomic.Int64
	unacked0                                                                                 atomic.Int64 // the QoS 0 part of unacked (see take)
	nRetries                                                                                 atomic.Int64 // len(retries), read without retryMu
	readCalls, reconnects, lost, dropped0                                                    atomic.Int64 // mirrors of some metrics, for tests

	warnUnmatched, warnPlaceholder, warnQoS0, warnNack, warnExpired rateLimited

	skipped *replayCounter // retained replays not forwarded (retained.go)
}

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

func newInput(conf *service.ParsedConfig, mgr *service.Resources) (*input, error) {
	cfg, err := parseConfig(conf)
	if err != nil {
		return nil, err
	}
	autoReplay, err := conf.FieldBool(service.AutoRetryNacksToggleFieldName)
	if err != nil {
		return nil, err
	}
	m := mgr.Metrics()
	in := &input{
		cfg:          cfg,
		log:          mgr.Logger(),
		q:            newQueue(cfg.maxUnacked),
		slots:        make(chan struct{}, cfg.maxUnacked),
		closed:       make(chan struct{}),
		autoReplay:   autoReplay,
		retryNotify:  make(chan struct{}, 1),
		mUnmatched:   m.NewCounter("mqtt_input_unmatched"),
		mPlaceholder: m.NewCounter("mqtt_input_placeholder_errors"),
		mQoS0Dropped: m.NewCounter("mqtt_input_qos0_dropped"),
		mAcks:        m.NewCounter("mqtt_input_acks_sent"),
		mDup:         m.NewCounter("mqtt_input_duplicates"),
		mNackDropped: m.NewCounter("mqtt_input_nack_dropped"),
		mReconnects:  m.NewCounter("mqtt_input_reconnects"),
		mExpired:     m.NewCounter("mqtt_input_expired"),
		gUnacked:     m.NewGauge("mqtt_input_unacked"),
		gQueued:      m.NewGauge("mqtt_input_queued"),
		gOldest:      m.NewGauge(metricOldestUnacked),
		skipped:      newReplayCounter(m),
	}
	for _, mp := range cfg.mappings {
		in.subs = append(in.subs, subscription{filter: mp.filter.Subscription(), qos: mp.qos})
	}
	for _, w := range cfg.warnings {
		in.log.Warn(w)
	}
	in.exposeMetrics()
	return in, nil
}

// handle runs on paho's router goroutine for every PUBLISH (no routes are
// registered, so everything reaches the default handler exactly once,
// including messages a persistent session delivers before SUBACK). It must
// block only for QoS 0 back-pressure (queue.push, bounded); otherwise it
// appends to the queue, or acknowledges a retained replay it skips
// (skipReplay).
func (in *input) handle(c *connection, m message) {
	if m.Qos() > 0 && c.acks != nil {
		m = c.acks.track(m)
	}
	if in.skipReplay(c, m) {
		return
	}
	if !in.q.push(m, time.Now().UnixNano(), c.lost) {
		in.mQoS0Dropped.Incr(1)
		in.dropped0.Add(1)
		in.warnQoS0.warn(in.log, "dropping QoS 0 messages: %d already wait for the pipeline (max_unacked), and it took none for %v; last dropped topic %q", in.cfg.maxUnacked, qos0MaxBlock, m.Topic())
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
		in.failures++
		return service.NewErrBackOff(err, in.backoff())
	}
	in.failures = 0
	if in.everConnected {
		in.mReconnects.Incr(1)
		in.reconnects.Add(1)
	}
	in.everConnected = true
	return nil
}

func (in *input) backoff() time.Duration {
	d := backoffMin << min(in.failures-1, 10)
	d = min(d, backoffMax)
	// ±20 % jitter so a fleet does not reconnect in lockstep.
	return time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
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

// routing says how toMessage routed a message.
type routing int

const (
	routed           routing = iota // matched a mapping (or a plain filter)
	routePlaceholder                // matched, but the placeholders gave no valid Danube topic
	routeUnmatched                  // matched no mapping
)

// toMessage converts a paho message, applying the first matching mapping.
// It has no side effects, so a nacked message can be rebuilt from the MQTT
// message for every re-delivery; countArrival counts and logs it once.
func (in *input) toMessage(m message) (*service.Message, routing) {
	topic := m.Topic()
	msg := service.NewMessage(m.Payload())
	msg.MetaSetMut("mqtt_topic", topic)
	msg.MetaSetMut("mqtt_qos", int(m.Qos()))
	msg.MetaSetMut("mqtt_retained", m.Retained())
	msg.MetaSetMut("mqtt_duplicate", m.Duplicate())
	msg.MetaSetMut("mqtt_message_id", int(m.MessageID()))

	var caps []string
	for _, mp := range in.cfg.mappings {
		if mp.nCaps > 0 && len(caps) < mp.nCaps {
			caps = make([]string, mp.nCaps)
		}
		if !mp.filter.MatchCapture(topic, caps) {
			continue
		}
		if in.cfg.plain {
			msg.MetaSetMut("mqtt_filter", mp.filter.Subscription())
			return msg, routed
		}
		// No mqtt_filter here: danube_topic tells the mappings apart, and a
		// ninth metadata key would make Benthos grow the metadata map on
		// every message (BenchmarkMetadataKeys: about 0.6 µs for eight keys,
		// 1.5 µs for nine).
		msg.MetaSetMut("danube_partitions", mp.partitions)
		msg.MetaSetMut("danube_reliable_dispatch", mp.reliable)
		for _, a := range mp.attrs { // only when configured: each key costs
			msg.MetaSetMut(a.key, caps[a.cap])
		}
		dt, err := mp.tmpl.Expand(caps)
		if err != nil {
			err = fmt.Errorf("mqtt input: topic %q matched topic_mappings[%d] (%q) but gives no valid Danube topic: %w", topic, mp.index, mp.filter.String(), err)
			msg.SetError(err)
			markDeadLetter(msg, deadletter.ReasonInvalidTopic, err, mp.tmpl.Preview(caps), mp.filter.String())
			return msg, routePlaceholder
		}
		msg.MetaSetMut("danube_topic", dt)
		return msg, routed
	}
	if !in.cfg.plain {
		err := fmt.Errorf("mqtt input: topic %q matches no topic_mappings entry (a subscription kept by a persistent session from an earlier configuration?)", topic)
		msg.SetError(err)
		markDeadLetter(msg, deadletter.ReasonNoMapping, err, "", deadletter.MappingNone)
	}
	return msg, routeUnmatched
}

// markDeadLetter marks a message that cannot be routed for the dead-letter
// destination of the danube output. Only such messages carry these keys, so
// routed messages pay nothing for them.
func markDeadLetter(msg *service.Message, reason string, err error, topic, mapping string) {
	msg.MetaSetMut(deadletter.Reason, reason)
	msg.MetaSetMut(deadletter.Error, err.Error())
	msg.MetaSetMut(deadletter.Topic, topic)
	msg.MetaSetMut(deadletter.Mapping, mapping)
}

// countArrival updates the metrics and rate-limited warnings for a message
// delivered for the first time.
func (in *input) countArrival(m message, msg *service.Message, r routing) {
	if m.Duplicate() {
		in.mDup.Incr(1)
	}
	switch r {
	case routePlaceholder:
		in.mPlaceholder.Incr(1)
		in.warnPlaceholder.warn(in.log, "%v; marked for the dead-letter destination (dead_letter_reason: invalid_topic)", msg.GetError())
	case routeUnmatched:
		in.mUnmatched.Incr(1)
		if in.cfg.plain {
			in.warnUnmatched.warn(in.log, "received topic %q that matches none of the subscribed topics (a subscription kept by a persistent session?)", m.Topic())
		} else {
			in.warnUnmatched.warn(in.log, "%v; marked for the dead-letter destination (dead_letter_reason: no_mapping)", msg.GetError())
		}
	}
}

// metricOldestUnacked is the gauge of the age, in seconds, of the oldest
// message received from MQTT and not yet acknowledged to it (waiting for the
// pipeline or in it); 0 when there is none.
const metricOldestUnacked = "mqtt_input_oldest_unacked_age_seconds"

// gaugeInterval is how often the unacked and queued gauges are refreshed.
// Setting them on every message costs measurable throughput.
const gaugeInterval = time.Second

// gaugeLoop refreshes the gauges until Close.
func (in *input) gaugeLoop() {
	defer in.gaugeWG.Done()
	t := time.NewTicker(gaugeInterval)
	defer t.Stop()
	for {
		in.gUnacked.Set(in.unacked.Load())
		in.gQueued.Set(int64(in.q.len()))
		in.gOldest.Set(in.oldestUnackedAge(time.Now()))
		select {
		case <-t.C:
		case <-in.closed:
			return
		}
	}
}

// oldestUnackedAge returns the age in whole seconds of the oldest
// unacknowledged message: in the pipeline (these arrived before any that
// still wait in the queue) or else waiting.
func (in *input) oldestUnackedAge(now time.Time) int64 {
	at, ok := in.ledger.oldest()
	if !ok {
		if at, ok = in.q.oldest(); !ok {
			return 0
		}
	}
	return max(0, int64(now.Sub(time.Unix(0, at))/time.Second))
}

// Close disconnects. Unacknowledged QoS 1/2 messages are redelivered by the
// broker to a persistent session on the next connect; the first Close logs
// how many messages were left and what becomes of them (pendingReport).
func (in *input) Close(ctx context.Context) error {
	first := false
	in.closeOnce.Do(func() { close(in.closed); first = true })
	in.connMu.Lock()
	c := in.conn.Load()
	in.connMu.Unlock()
	in.gaugeWG.Wait()
	if r := in.pendingReport(c); first && r != "" {
		in.log.Warn(r)
	}
	if c == nil {
		return nil
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.markLost() // first: releases a handler blocked on QoS 0 back-pressure
		c.client.disconnect(true)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// rateLimited logs one warning per warnEvery and counts the suppressed ones.
type rateLimited struct {
	mu         sync.Mutex
	last       time.Time
	suppressed int
}

func (r *rateLimited) warn(log *service.Logger, format string, args ...any) {
	r.mu.Lock()
	now := time.Now()
	if now.Sub(r.last) < warnEvery {
		r.suppressed++
		r.mu.Unlock()
		return
	}
	n := r.suppressed
	r.last, r.suppressed = now, 0
	r.mu.Unlock()
	if n > 0 {
		format += fmt.Sprintf(" (%d similar warnings suppressed)", n)
	}
	log.Warnf(format, args...)
}
