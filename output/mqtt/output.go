// Package mqttout provides the `mqtt` Benthos output of benthos-danube: an
// MQTT 3.1.1 publisher (Eclipse Paho) that acknowledges a QoS 1/2 message to
// the pipeline only after the broker's PUBACK (QoS 2: PUBCOMP), publishes in
// pipeline order, dead-letters what can never be published and does not
// publish what came from MQTT (the loop guard).
//
// Importing the package registers the output as `mqtt` in Benthos' global
// environment; Register adds it to another environment.
package mqttout

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/benthos-danube/benthos-danube/internal/mqttconn"
	"github.com/benthos-danube/benthos-danube/internal/ordering"
	"github.com/benthos-danube/benthos-danube/internal/redact"
)

// Metric names.
const (
	MetricLoopSkipped       = "mqtt_output_loop_skipped"
	MetricDeadLettered      = "mqtt_output_dead_lettered"
	MetricDeadLetterFailure = "mqtt_output_dead_letter_failures"
	MetricAckTimeouts       = "mqtt_output_ack_timeouts"
	MetricReconnects        = "mqtt_output_reconnects"
)

// metaSeq is the metadata key of the ordering stage's stamp, and
// stampProcessorName its processor (see internal/ordering).
const (
	metaSeq            = "mqtt_output_seq"
	stampProcessorName = "mqtt_output_order_stamp"
)

// Reconnect back-off bounds, and the graceful DISCONNECT on Close.
const (
	backoffMin = 500 * time.Millisecond
	backoffMax = 30 * time.Second
	quiesce    = 250 * time.Millisecond
	logEvery   = 10 * time.Second
)

// errClosed is returned by WriteBatch after Close.
var errClosed = errors.New("mqtt output is closed")

type output struct {
	conn         connConfig
	dial         dialFunc
	topic        *service.InterpolatedString
	qos          *service.InterpolatedString
	retained     *service.InterpolatedString
	writeTimeout time.Duration
	skipOrigin   bool
	v5           bool                    // protocol_version: 5
	userProps    *service.MetadataFilter // nil: all but the excluded keys (properties.go)
	log          *service.Logger
	dl           *deadLetters

	mSkipped, mTimeouts, mReconnects *service.MetricCounter

	connMu        sync.Mutex // serialises Connect and Close
	cur           atomic.Pointer[live]
	failures      int
	everConnected bool

	seq *ordering.Sequencer
	sus *suspects

	closeMu  sync.RWMutex
	closed   bool
	inflight sync.WaitGroup

	lastLostLog atomic.Int64 // unix ns, rate-limits the "connection lost" warning
}

// live is the current connection and the number of its publications still
// awaited (an isolated publish waits for none).
type live struct {
	t        transport
	inflight atomic.Int64
}

func newFromConfig(env *service.Environment, conf *service.ParsedConfig, mgr *service.Resources) (service.BatchOutput, service.BatchPolicy, int, error) {
	o, err := newOutput(conf, mgr, nil)
	if err != nil {
		return nil, service.BatchPolicy{}, 0, err
	}
	pol, err := ordering.BatchPolicy(env, conf, fieldBatching, stampProcessorName, metaSeq)
	if err != nil {
		return nil, service.BatchPolicy{}, 0, fmt.Errorf("mqtt output: field %s: %w", fieldBatching, err)
	}
	mif, err := conf.FieldMaxInFlight() // checked by newOutput
	if err != nil {
		return nil, service.BatchPolicy{}, 0, fmt.Errorf("mqtt output: field %s: %w", fieldMaxInFlight, err)
	}
	return o, pol, mif, nil
}

// newOutput is the start-up validation (settings.check, which lint runs
// too, then what only start-up does) and builds the output.
func newOutput(conf *service.ParsedConfig, mgr *service.Resources, dial dialFunc) (*output, error) {
	s, err := readSettings(conf)
	if err != nil {
		return nil, err
	}
	chk, errs := s.check()
	if len(errs) > 0 {
		return nil, errs[0]
	}
	if dial == nil {
		dial = dial311
		if s.protocol == mqttconn.Protocol5 {
			dial = dial5
		}
	}
	o := &output{
		v5:           s.protocol == mqttconn.Protocol5,
		dial:         dial,
		writeTimeout: s.writeTimeout,
		log:          mgr.Logger(),
		seq:          ordering.NewSequencer(),
		sus:          newSuspects(),
		conn: connConfig{
			urls:           chk.urls,
			keepalive:      s.keepalive,
			connectTimeout: s.connectTimeout,
			writeTimeout:   s.writeTimeout,
		},
	}
	wrap := func(field string, err error) error { return fmt.Errorf("mqtt output: field %s: %w", field, err) }
	if o.conn.clientID, err = conf.FieldString(fieldClientID); err != nil {
		return nil, wrap(fieldClientID, err)
	}
	if o.conn.user, err = conf.FieldString(fieldUser); err != nil {
		return nil, wrap(fieldUser, err)
	}
	if o.conn.password, err = conf.FieldString(fieldPassword); err != nil {
		return nil, wrap(fieldPassword, err)
	}
	tlsConf, tlsOn, err := conf.FieldTLSToggled(fieldTLS)
	if err != nil {
		return nil, wrap(fieldTLS, err)
	}
	if tlsOn {
		o.conn.tls = tlsConf
	}
	if o.topic, err = conf.FieldInterpolatedString(fieldTopic); err != nil {
		return nil, wrap(fieldTopic, err)
	}
	if o.qos, err = conf.FieldInterpolatedString(fieldQoS); err != nil {
		return nil, wrap(fieldQoS, err)
	}
	if o.retained, err = conf.FieldInterpolatedString(fieldRetained); err != nil {
		return nil, wrap(fieldRetained, err)
	}
	if o.skipOrigin, err = conf.FieldBool(fieldSkipOrigin); err != nil {
		return nil, wrap(fieldSkipOrigin, err)
	}
	if s.userProps {
		if o.userProps, err = conf.FieldMetadataFilter(fieldUserProps); err != nil {
			return nil, wrap(fieldUserProps, err)
		}
		if o.userProps.IsEmpty() {
			o.userProps = nil
		}
	}
	if o.dl, err = parseDeadLetters(conf, mgr); err != nil {
		return nil, err
	}
	m := mgr.Metrics()
	o.mSkipped = m.NewCounter(MetricLoopSkipped)
	o.mTimeouts = m.NewCounter(MetricAckTimeouts)
	o.mReconnects = m.NewCounter(MetricReconnects)
	for _, c := range []*service.MetricCounter{o.mSkipped, o.mTimeouts, o.mReconnects} {
		c.Incr(0)
	}
	o.conn.onLost = func(err error) {
		if now := time.Now().UnixNano(); now-o.lastLostLog.Load() >= int64(logEvery) {
			o.lastLostLog.Store(now)
			o.log.Warnf("MQTT connection lost: %v", redact.Error(err))
		}
	}
	return o, nil
}

// Connect connects a fresh transport unless the current one is alive. It
// returns a *service.ErrBackOff with an exponentially growing wait when the
// broker is unreachable or refuses the connection.
func (o *output) Connect(ctx context.Context) error {
	o.connMu.Lock()
	defer o.connMu.Unlock()
	o.closeMu.RLock()
	closed := o.closed
	o.closeMu.RUnlock()
	if closed {
		return errClosed
	}
	if old := o.cur.Load(); old != nil {
		select {
		case <-old.t.lost():
			old.t.close(0)
			o.cur.Store(nil)
		default:
			return nil
		}
	}
	t, err := o.dial(ctx, o.conn)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		o.failures++
		return service.NewErrBackOff(err, o.backoff())
	}
	o.failures = 0
	if o.everConnected {
		o.mReconnects.Incr(1)
	}
	o.everConnected = true
	o.cur.Store(&live{t: t})
	o.log.Infof("Connected to MQTT broker %v as client_id %q", redact.URLs(o.conn.urls), o.conn.clientID)
	return nil
}

func (o *output) backoff() time.Duration {
	d := backoffMin << min(o.failures-1, 10)
	d = min(d, backoffMax)
	// ±20 % jitter so a fleet does not reconnect in lockstep.
	return time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
}

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
	o.closeMu.RLock()
	if o.closed {
		o.closeMu.RUnlock()
		return errClosed
	}
	o.inflight.Add(1)
	o.closeMu.RUnlock()
	defer o.inflight.Done()

	lc := o.cur.Load()
	if lc == nil {
		return service.ErrNotConnected
	}
	t := lc.t
	select {
	case <-t.lost():
		return service.ErrNotConnected
	default:
	}

	topicEx := batch.InterpolationExecutor(o.topic)
	qosEx := batch.InterpolationExecutor(o.qos)
	retEx := batch.InterpolationExecutor(o.retained)
	items := make([]*pending, len(batch))
	var toSend []*pending
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

	// Hand the publications to the connection in stamp order (one domain:
	// the connection writes them in call order), then wait for their
	// acknowledgements, all under one deadline.
	for _, p := range toSend {
		p.done = make(chan struct{})
		o.seq.Submit(&ordering.Item{Seq: p.seq, Run: func() {
			if p.isolated {
				o.publishAlone(ctx, lc, p)
			} else {
				lc.inflight.Add(1)
				p.awaited = true
				p.del = t.publish(p.pub)
			}
			close(p.done)
		}})
	}
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

// publishAlone publishes a suspect once nothing else is in flight on the
// connection and waits for its outcome, so that nothing after it is
// published meanwhile (it runs on the sequencer's goroutine). A connection
// lost while it was alone is a strike (suspects.go).
func (o *output) publishAlone(ctx context.Context, lc *live, p *pending) {
	t := lc.t
	deadline := time.NewTimer(o.writeTimeout)
	defer deadline.Stop()
	tick := time.NewTicker(idlePoll)
	defer tick.Stop()
	for lc.inflight.Load() > 0 {
		select {
		case <-t.lost():
			p.err = errConnLost // not alone yet: no strike
			return
		case <-ctx.Done():
			p.err = fmt.Errorf("publishing to %q: %w", p.pub.topic, ctx.Err())
			return
		case <-deadline.C:
			p.err = o.timeoutErr(p)
			return
		case <-tick.C:
		}
	}
	select {
	case <-t.lost():
		p.err = errNotSent // lost before its turn: no strike
		return
	default:
	}
	del := t.publish(p.pub)
	// A strike: the connection was lost after this message, alone, was
	// written (not when it was never sent).
	struck := func() bool { return isConnErr(p.err) && !errors.Is(p.err, errNotSent) }
	select {
	case <-del.Done():
		p.err = del.Error()
		if struck() {
			o.sus.strike(p.key)
		}
	case <-t.lost():
		select {
		case <-del.Done():
			p.err = del.Error()
		default:
			p.err = errConnLost
		}
		if struck() {
			o.sus.strike(p.key)
		}
	case <-ctx.Done():
		p.err = fmt.Errorf("publishing to %q: %w", p.pub.topic, ctx.Err())
	case <-deadline.C:
		p.err = o.timeoutErr(p)
	}
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

// Close waits for the writes in flight (bounded by ctx and write_timeout),
// then disconnects and closes the dead-letter output.
func (o *output) Close(ctx context.Context) error {
	o.closeMu.Lock()
	if o.closed {
		o.closeMu.Unlock()
		return nil
	}
	o.closed = true
	o.closeMu.Unlock()

	drained := make(chan struct{})
	go func() {
		o.inflight.Wait()
		close(drained)
	}()
	timer := time.NewTimer(o.writeTimeout)
	defer timer.Stop()
	select {
	case <-drained:
	case <-ctx.Done():
	case <-timer.C:
	}
	o.connMu.Lock()
	if lc := o.cur.Load(); lc != nil {
		lc.t.close(quiesce) // fails the deliveries still waiting
	}
	o.connMu.Unlock()
	o.seq.Close()
	<-drained
	return o.dl.close(ctx)
}
