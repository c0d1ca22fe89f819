package danubeout

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/benthos-danube/benthos-danube/internal/benthoslog"
	"github.com/benthos-danube/benthos-danube/internal/danube"
	"github.com/benthos-danube/benthos-danube/internal/deadletter"
	"github.com/benthos-danube/benthos-danube/internal/ordering"
)

// Metric names emitted through mgr.Metrics().
const (
	MetricProducersOpen      = "danube_output_producers_open"
	MetricSendRetries        = "danube_output_send_retries"
	MetricProducersRecreated = "danube_output_producers_recreated"
)

// metaSeq is the metadata key carrying the pipeline-order sequence number that
// the batching stage stamps on every message (see orderedBatchPolicy). It is
// never sent as an attribute.
const metaSeq = "danube_output_seq"

// stampProcessorName is the batch processor of the ordering stage, appended
// to the batching policy (see orderedBatchPolicy).
const stampProcessorName = "danube_output_order_stamp"

// errClosed is returned by WriteBatch after Close.
var errClosed = errors.New("danube output is closed")

type output struct {
	url         string
	clientOpts  []danube.Option
	topic       *service.InterpolatedString
	staticTopic string
	// topicIsStatic: topic has no interpolation (validated at start-up).
	topicIsStatic bool
	// topicIsDefault: topic is the default, the mqtt input's danube_topic.
	topicIsDefault bool
	key            *service.InterpolatedString
	partitions     int
	reliable       bool
	producerName   string
	attrs          *service.MetadataFilter // nil: all metadata except danube_*
	attrNames      attrNames               // attribute_names (attributes.go)
	schemas        *schemaBindings         // subjects per topic (schemas.go)
	sendTimeout    time.Duration
	log            *service.Logger
	dl             *deadLetters
	httpsNoTLS     bool // url says https:// but tls is off (see checkScheme)

	mOpen      *service.MetricGauge
	mRetries   *service.MetricCounter
	mRecreated *service.MetricCounter

	clientMu sync.RWMutex
	client   *danube.Client

	cache *producerCache
	seq   *ordering.Sequencer

	// closeCtx is cancelled by Close once in-flight sends were given the
	// chance to drain; it bounds every send.
	closeCtx    context.Context
	closeCancel context.CancelFunc
	inflight    sync.WaitGroup
	closeMu     sync.RWMutex
	closed      bool

	// lastUnreachableLog (unix ns) rate-limits the "unreachable" warning:
	// every writer goroutine hits it during an outage.
	lastUnreachableLog atomic.Int64
}

// unreachableLogEvery is the least time between two "unreachable" warnings.
const unreachableLogEvery = 10 * time.Second

func newFromConfig(env *service.Environment, conf *service.ParsedConfig, mgr *service.Resources) (service.BatchOutput, service.BatchPolicy, int, error) {
	o, err := newOutput(conf, mgr)
	if err != nil {
		return nil, service.BatchPolicy{}, 0, err
	}
	var pol service.BatchPolicy
	if k, ok := o.key.Static(); ok && k == "" {
		// No key: nothing to order, skip the stamping stage.
		pol, err = conf.FieldBatchPolicy(fieldBatching)
		if err != nil {
			return nil, service.BatchPolicy{}, 0, err
		}
	} else if pol, err = orderedBatchPolicy(env, conf); err != nil {
		return nil, service.BatchPolicy{}, 0, err
	}
	mif, err := conf.FieldMaxInFlight() // checked by newOutput
	if err != nil {
		return nil, service.BatchPolicy{}, 0, err
	}
	return o, pol, mif, nil
}

// newOutput is the start-up validation (settings.check, which lint runs
// too, then what only start-up does) and builds the output.
func newOutput(conf *service.ParsedConfig, mgr *service.Resources) (*output, error) {
	s, err := readSettings(conf)
	if err != nil {
		return nil, err
	}
	if errs := s.check(); len(errs) > 0 {
		return nil, errs[0]
	}
	o := &output{
		log:           mgr.Logger(),
		url:           s.url,
		staticTopic:   s.topic,
		topicIsStatic: s.topicStatic,
		partitions:    s.partitions,
		producerName:  s.producerName,
		sendTimeout:   s.sendTimeout,
	}
	if o.topic, err = conf.FieldInterpolatedString(fieldTopic); err != nil {
		return nil, err
	}
	if raw, err := conf.FieldString(fieldTopic); err == nil && raw == defaultTopic {
		o.topicIsDefault = true
	}
	if o.key, err = conf.FieldInterpolatedString(fieldKey); err != nil {
		return nil, err
	}
	if o.reliable, err = conf.FieldBool(fieldReliable); err != nil {
		return nil, err
	}
	if conf.Contains(fieldAttributes) {
		if o.attrs, err = conf.FieldMetadataFilter(fieldAttributes); err != nil {
			return nil, err
		}
		if o.attrs.IsEmpty() {
			o.attrs = nil
		}
	}
	if o.attrNames, err = parseAttrNames(conf); err != nil {
		return nil, err
	}
	var fallback *danube.SchemaRef
	if s.schemaSubject != "" {
		fallback = &danube.SchemaRef{Subject: s.schemaSubject, PinnedVersion: uint32(s.schemaVersion)}
	}
	o.schemas = newSchemaBindings(s.bindings, fallback, s.dlTopic)
	tlsConf, tlsOn, err := conf.FieldTLSToggled(fieldTLS)
	if err != nil {
		// Unlike the other field errors, Benthos' TLS errors (an unreadable
		// root_cas_file, say) do not name the field.
		return nil, fmt.Errorf("danube output: field tls: %w", err)
	}
	if tlsOn {
		o.clientOpts = append(o.clientOpts, danube.WithTLS(tlsConf))
	}
	o.checkScheme(tlsOn)
	token, err := conf.FieldString(fieldToken)
	if err != nil {
		return nil, err
	}
	tokenFile, err := conf.FieldString(fieldTokenFile)
	if err != nil {
		return nil, err
	}
	switch {
	case tokenFile != "":
		o.clientOpts = append(o.clientOpts, danube.WithTokenFile(tokenFile))
	case token != "":
		o.clientOpts = append(o.clientOpts, danube.WithToken(token))
	}
	// The client logs producer losses and re-creations through the output's logger.
	o.clientOpts = append(o.clientOpts, danube.WithLogger(benthoslog.New(o.log)))

	if o.dl, err = parseDeadLetters(conf.Namespace(fieldDeadLetter), mgr); err != nil {
		return nil, fmt.Errorf("danube output: %w", err)
	}

	m := mgr.Metrics()
	o.mOpen = m.NewGauge(MetricProducersOpen)
	o.mRetries = m.NewCounter(MetricSendRetries)
	o.mRecreated = m.NewCounter(MetricProducersRecreated)
	o.mOpen.Set(0)
	o.mRetries.Incr(0) // expose the series before the first retry
	o.mRecreated.Incr(0)

	o.closeCtx, o.closeCancel = context.WithCancel(context.Background())
	o.cache = newProducerCache(s.maxProducers, s.producerIdle, o.newProducer, func(n int) { o.mOpen.Set(int64(n)) })
	o.cache.refusal = func(err error) bool { return causeOf(err, "") != nil }
	o.seq = ordering.NewSequencer()
	return o, nil
}

// orderedBatchPolicy returns the user's batching policy with the ordering
// stage's stamper appended (see internal/ordering), numbering metaSeq.
func orderedBatchPolicy(env *service.Environment, conf *service.ParsedConfig) (service.BatchPolicy, error) {
	pol, err := ordering.BatchPolicy(env, conf, fieldBatching, stampProcessorName, metaSeq)
	if err != nil {
		return service.BatchPolicy{}, err
	}
	return pol, nil
}

// Connect creates the client on first use and checks that the broker is
// reachable. Producers are created lazily by WriteBatch.
func (o *output) Connect(ctx context.Context) error {
	o.closeMu.RLock()
	defer o.closeMu.RUnlock()
	if o.closed {
		return errClosed
	}
	o.clientMu.Lock()
	if o.client == nil {
		c, err := danube.NewClient(o.url, o.clientOpts...)
		if err != nil {
			o.clientMu.Unlock()
			return fmt.Errorf("danube output: creating client for %s: %w", o.shownURL(), err)
		}
		o.client = c
	}
	c := o.client
	o.clientMu.Unlock()

	pctx, cancel := context.WithTimeout(ctx, o.sendTimeout)
	defer cancel()
	if err := c.Ping(pctx); err != nil {
		return o.connectError(err)
	}
	return o.ensureSubjects(pctx, c)
}

func (o *output) getClient() *danube.Client {
	o.clientMu.RLock()
	defer o.clientMu.RUnlock()
	return o.client
}

// producerNameFor returns "<producer_name>-ns-t" for topic /ns/t.
func (o *output) producerNameFor(topic string) string {
	return o.producerName + "-" + strings.ReplaceAll(strings.TrimPrefix(topic, "/"), "/", "-")
}

func (o *output) newProducer(ctx context.Context, k producerKey) (*danube.Producer, error) {
	c := o.getClient()
	if c == nil {
		return nil, service.ErrNotConnected
	}
	dispatch := danube.DispatchNonReliable
	if k.reliable {
		dispatch = danube.DispatchReliable
	}
	p, err := c.NewProducer(ctx, danube.ProducerConfig{
		Topic:      k.topic,
		Name:       o.producerNameFor(k.topic),
		Partitions: k.partitions,
		Dispatch:   dispatch,
		Schema:     o.schemas.refFor(k.topic),
		Hooks: danube.ProducerHooks{
			OnRetry:    func(string) { o.mRetries.Incr(1) },
			OnRecreate: func(string) { o.mRecreated.Incr(1) },
		},
	})
	if err != nil {
		return nil, o.explain(fmt.Errorf("creating producer for %s: %w", k.topic, err))
	}
	return p, nil
}

// pending is one message of a WriteBatch call on its way to the broker.
type pending struct {
	idx     int
	key     producerKey
	msg     danube.Message
	seq     int64 // 0: not stamped
	ordered bool  // has a routing key: sent in sequence per (producer, key)
	err     error
	dl      *dlCause // the message can never be delivered: dead-letter it
	done    chan struct{}
}

// WriteBatch sends every message of the batch and returns once the broker
// acknowledged all of them or some failed.
func (o *output) WriteBatch(ctx context.Context, batch service.MessageBatch) error {
	o.closeMu.RLock()
	if o.closed {
		o.closeMu.RUnlock()
		return errClosed
	}
	o.inflight.Add(1)
	o.closeMu.RUnlock()
	defer o.inflight.Done()

	if o.getClient() == nil {
		return service.ErrNotConnected
	}

	var topicEx *service.MessageBatchInterpolationExecutor
	if !o.topicIsStatic {
		topicEx = batch.InterpolationExecutor(o.topic)
	}
	keyEx := batch.InterpolationExecutor(o.key)

	items := make([]*pending, 0, len(batch))
	var batchErr *service.BatchError
	var firstErr error
	fail := func(i int, err error) {
		if batchErr == nil {
			batchErr, firstErr = service.NewBatchError(batch, err), err
		}
		batchErr.Failed(i, err)
	}
	var doomed []*pending // never sent: dead-lettered (or failed) right away
	base := ordering.BatchStamp(batch, metaSeq)
	for i, msg := range batch {
		var seq int64
		if base > 0 {
			seq = base + int64(i)
		}
		p := o.prepare(i, seq, msg, topicEx, keyEx)
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

	sctx, cancel := context.WithTimeout(ctx, o.sendTimeout)
	defer cancel()
	stop := context.AfterFunc(o.closeCtx, cancel)
	defer stop()

	// Ordered messages go through the sequencer; unordered ones are sent
	// concurrently right away (inline when there is only one).
	var wg sync.WaitGroup
	var ordered []*pending
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
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.err = o.send(sctx, p)
		}()
	}
	if len(ordered) > 0 {
		for _, p := range ordered {
			p.done = make(chan struct{})
			o.seq.Submit(&ordering.Item{Seq: p.seq, Domain: p.key.String() + "\x00" + p.msg.Key, Run: func() {
				p.err = o.send(sctx, p)
				close(p.done)
			}})
		}
		for _, p := range ordered {
			<-p.done
		}
	}
	wg.Wait()

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
		if now := time.Now().UnixNano(); now-o.lastUnreachableLog.Load() >= int64(unreachableLogEvery) {
			o.lastUnreachableLog.Store(now)
			o.log.Warnf("Danube broker %s unreachable: %v", o.shownURL(), items[0].err)
		}
		return service.ErrNotConnected
	}
	if len(batch) == 1 {
		// The single message's error, unwrapped, so that logs show it
		// directly.
		return firstErr
	}
	return batchErr
}

// prepare resolves the routing of one message. A message that can never be
// sent as it is comes back with its dead-letter cause set.
func (o *output) prepare(i int, seq int64, msg *service.Message, topicEx, keyEx *service.MessageBatchInterpolationExecutor) *pending {
	p := &pending{idx: i, seq: seq}
	if p.dl = causeFromMeta(msg); p.dl != nil {
		if p.dl.topic == "" {
			// Marked by the pipeline: say where it was meant to go.
			p.dl.topic = o.staticTopic
			if !o.topicIsStatic {
				p.dl.topic, _ = topicEx.TryString(i)
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
		if topic, err = topicEx.TryString(i); err != nil {
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
	key, err := keyEx.TryString(i)
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

// Close waits for the sends in flight to finish (bounded by ctx and
// send_timeout), then closes the producers and the client.
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
	timer := time.NewTimer(o.sendTimeout)
	defer timer.Stop()
	select {
	case <-drained:
	case <-ctx.Done():
	case <-timer.C:
	}
	o.closeCancel()
	o.seq.Close()
	<-drained

	o.cache.close()
	o.mOpen.Set(0)
	if o.dl.out != nil {
		if err := o.dl.out.Close(ctx); err != nil {
			o.log.Warnf("danube output: closing the dead_letter output: %v", err)
		}
	}
	o.clientMu.Lock()
	c := o.client
	o.client = nil
	o.clientMu.Unlock()
	if c != nil {
		if err := c.Close(); err != nil {
			return fmt.Errorf("danube output: closing client: %w", err)
		}
	}
	return nil
}

func toInt64(v any) (int64, bool) {
	switch t := v.(type) {
	case int:
		return int64(t), true
	case int8:
		return int64(t), true
	case int16:
		return int64(t), true
	case int32:
		return int64(t), true
	case int64:
		return t, true
	case uint:
		return int64(t), true
	case uint8:
		return int64(t), true
	case uint16:
		return int64(t), true
	case uint32:
		return int64(t), true
	case uint64:
		return int64(t), true
	case float64:
		if t == float64(int64(t)) {
			return int64(t), true
		}
	case json.Number:
		n, err := t.Int64()
		return n, err == nil
	case string:
		n, err := strconv.ParseInt(strings.TrimSpace(t), 10, 64)
		return n, err == nil
	case []byte:
		n, err := strconv.ParseInt(strings.TrimSpace(string(t)), 10, 64)
		return n, err == nil
	}
	return 0, false
}

func toBool(v any) (bool, bool) {
	switch t := v.(type) {
	case bool:
		return t, true
	case string:
		b, err := strconv.ParseBool(strings.TrimSpace(t))
		return b, err == nil
	case []byte:
		b, err := strconv.ParseBool(strings.TrimSpace(string(t)))
		return b, err == nil
	}
	if n, ok := toInt64(v); ok {
		return n != 0, true
	}
	return false, false
}
