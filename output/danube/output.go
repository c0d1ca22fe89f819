package danubeout

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/benthos-danube/benthos-danube/internal/danube"
	"github.com/benthos-danube/benthos-danube/internal/danubeconn"
	"github.com/benthos-danube/benthos-danube/internal/drain"
	"github.com/benthos-danube/benthos-danube/internal/metaref"
	"github.com/benthos-danube/benthos-danube/internal/ordering"
)

// Metric names emitted through mgr.Metrics().
const (
	metricProducersOpen      = "danube_output_producers_open"
	metricSendRetries        = "danube_output_send_retries"
	metricProducersRecreated = "danube_output_producers_recreated"
)

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
	topicF, keyF   metaref.Field // topic and key, with their fast paths
	partitions     int
	reliable       bool
	producerName   string
	attrs          *service.MetadataFilter // nil: all metadata except danube_*
	attrNames      attrNames               // attribute_names (attributes.go)
	schemas        *schemaBindings         // subjects per topic (schemas.go)
	sendTimeout    time.Duration
	log            *service.Logger
	dl             *deadLetters
	conn           *danubeconn.Conn // tls, token and token_file, for the hints

	mOpen      *service.MetricGauge
	mRetries   *service.MetricCounter
	mRecreated *service.MetricCounter

	clientMu sync.RWMutex
	client   *danube.Client

	cache *producerCache
	seq   *ordering.Sequencer[seqDomain]

	// closeCtx is cancelled by Close once in-flight sends were given the
	// chance to drain; it bounds every send.
	closeCtx    context.Context
	closeCancel context.CancelFunc
	gate        drain.Gate // writes and connects in flight, which Close waits for

	// lastUnreachableLog (unix ns) rate-limits the "unreachable" warning:
	// every writer goroutine hits it during an outage.
	lastUnreachableLog atomic.Int64
}

func newFromConfig(env *service.Environment, conf *service.ParsedConfig, mgr *service.Resources) (service.BatchOutput, service.BatchPolicy, int, error) {
	o, err := newOutput(conf, mgr)
	if err != nil {
		return nil, service.BatchPolicy{}, 0, err
	}
	pol, err := batchPolicy(env, conf, o.key)
	if err != nil {
		return nil, service.BatchPolicy{}, 0, err
	}
	mif, err := conf.FieldMaxInFlight() // checked by newOutput
	if err != nil {
		return nil, service.BatchPolicy{}, 0, err
	}
	return o, pol, mif, nil
}

// wire creates what the configured output runs with: its metrics, the
// lifetime context, the producer cache and the sequencer.
func (o *output) wire(m *service.Metrics, maxProducers int, producerIdle time.Duration) {
	o.mOpen = m.NewGauge(metricProducersOpen)
	o.mRetries = m.NewCounter(metricSendRetries)
	o.mRecreated = m.NewCounter(metricProducersRecreated)
	o.mOpen.Set(0)
	o.mRetries.Incr(0) // expose the series before the first retry
	o.mRecreated.Incr(0)

	o.closeCtx, o.closeCancel = context.WithCancel(context.Background())
	o.cache = newProducerCache(maxProducers, producerIdle, o.newProducer, func(n int) { o.mOpen.Set(int64(n)) })
	o.cache.refusal = func(err error) bool { return causeOf(err, "") != nil }
	o.seq = ordering.NewSequencer[seqDomain]()
}

// Connect creates the client on first use and checks that the broker is
// reachable. Producers are created lazily by WriteBatch.
func (o *output) Connect(ctx context.Context) error {
	done, ok := o.gate.Enter()
	if !ok {
		return errClosed
	}
	defer done()
	o.clientMu.Lock()
	if o.gate.Closed() {
		// Close began and may have taken the client already: do not
		// leave a new one behind.
		o.clientMu.Unlock()
		return errClosed
	}
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

// newProducer is how the producer cache creates a producer on the client.
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

// Close waits for the sends in flight to finish (bounded by ctx and
// send_timeout), then closes the producers and the client.
func (o *output) Close(ctx context.Context) error {
	drained, first := o.gate.Close()
	if !first {
		return nil
	}
	drain.Wait(ctx, drained, o.sendTimeout)
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
