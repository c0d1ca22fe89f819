// Package mqtt provides the `mqtt` Benthos input of benthos-danube: an MQTT
// 3.1.1 and 5 subscriber (Eclipse Paho) that routes messages to Danube topics
// through topic_mappings and acknowledges each message to the broker
// (PUBACK/PUBREC) only after the Benthos pipeline acknowledged it.
//
// Importing the package registers the input as `mqtt` in Benthos' global
// environment; Register adds it to another environment.
//
// Files: input.go (registration, the input, its constructor and Close),
// config.go (the ParsedConfig read at start-up), check.go (the checks lint
// and start-up share), spec.go (the spec and field names); connect.go
// (Connect, back-off, subscriptions and each connection's PUBLISH handler),
// transport.go, transport3.go and transport5.go (the MQTT 3.1.1 and 5
// sessions); queue.go (received messages waiting for the pipeline), read.go
// (ReadBatch's natural batches), message.go (routing and metadata of each
// message), captureattrs.go and properties.go (more metadata: placeholder
// captures, MQTT 5 properties), retained.go (retained replays on resume);
// ack.go (the batch ack: settle or nack), retry.go (the re-delivery queue of
// nacked messages), ackorder.go (acknowledgements in arrival order),
// ledger.go and pending.go (what is in the pipeline, reported on Close);
// metrics.go (metrics and the gauge loop) and warn.go (rate-limited
// warnings).
package mqtt

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/benthos-danube/benthos-danube/internal/mqttconn"
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

	connMu    sync.Mutex // serialises Connect and Close
	conn      atomic.Pointer[connection]
	reconnect mqttconn.Backoff
	closed    chan struct{}
	closeOnce sync.Once
	gaugeOnce sync.Once
	gaugeWG   sync.WaitGroup // the gauge loop, started by the first Connect

	mUnmatched, mPlaceholder, mQoS0Dropped, mAcks, mDup, mNackDropped, mReconnects, mExpired *service.MetricCounter
	gUnacked, gQueued, gOldest                                                               *service.MetricGauge
	unacked                                                                                  atomic.Int64
	unacked0                                                                                 atomic.Int64 // the QoS 0 part of unacked (see take)
	nRetries                                                                                 atomic.Int64 // len(retries), read without retryMu

	warnUnmatched, warnPlaceholder, warnQoS0, warnNack, warnExpired rateLimited

	skipped *replayCounter // retained replays not forwarded (retained.go)
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
	in := &input{
		cfg:         cfg,
		log:         mgr.Logger(),
		q:           newQueue(cfg.maxUnacked, maxBlockFor(cfg)),
		slots:       make(chan struct{}, cfg.maxUnacked),
		closed:      make(chan struct{}),
		autoReplay:  autoReplay,
		retryNotify: make(chan struct{}, 1),
	}
	in.newMetrics(mgr.Metrics())
	for _, mp := range cfg.mappings {
		in.subs = append(in.subs, subscription{filter: mp.filter.Subscription(), qos: mp.qos})
	}
	for _, w := range cfg.warnings {
		in.log.Warn(w)
	}
	return in, nil
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
		c.markLost() // first: releases a handler blocked on the queue's back-pressure
		c.client.disconnect(true)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
