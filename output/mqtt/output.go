// Package mqttout provides the `mqtt` Benthos output of benthos-danube: an
// MQTT 3.1.1 publisher (Eclipse Paho) that acknowledges a QoS 1/2 message to
// the pipeline only after the broker's PUBACK (QoS 2: PUBCOMP), publishes in
// pipeline order, dead-letters what can never be published and does not
// publish what came from MQTT (the loop guard).
//
// Importing the package registers the output as `mqtt` in Benthos' global
// environment; Register adds it to another environment.
//
// Files: output.go (the output, its wiring, Connect and Close), config.go
// (the ParsedConfig read into an output at start-up), check.go (the checks
// lint and start-up share), spec.go (the spec, field names, registration),
// write.go (WriteBatch: prepare, hand off, await, settle the outcomes),
// suspects.go (messages suspected of closing the connection, published
// alone), loop.go (the loop guard), deadletter.go (dead letters),
// transport.go (the connection seam) and transport311.go (MQTT 3.1.1 on
// paho.mqtt.golang).
package mqttout

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/benthos-danube/benthos-danube/internal/drain"
	"github.com/benthos-danube/benthos-danube/internal/mqttconn"
	"github.com/benthos-danube/benthos-danube/internal/ordering"
	"github.com/benthos-danube/benthos-danube/internal/redact"
)

// Metric names.
const (
	metricLoopSkipped       = "mqtt_output_loop_skipped"
	metricDeadLettered      = "mqtt_output_dead_lettered"
	metricDeadLetterFailure = "mqtt_output_dead_letter_failures"
	metricAckTimeouts       = "mqtt_output_ack_timeouts"
	metricReconnects        = "mqtt_output_reconnects"
)

// The graceful DISCONNECT on Close, and how often repeated warnings are logged.
const (
	quiesce  = 250 * time.Millisecond
	logEvery = 10 * time.Second
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

	connMu    sync.Mutex // serialises Connect and Close
	cur       atomic.Pointer[live]
	reconnect mqttconn.Backoff

	seq *ordering.Sequencer[struct{}]
	sus *suspects

	gate drain.Gate // writes in flight, which Close waits for

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

// wire creates the output's metrics, exposed at 0 from the start, and the
// rate-limited "connection lost" warning of its transports.
func (o *output) wire(m *service.Metrics) {
	o.mSkipped = m.NewCounter(metricLoopSkipped)
	o.mTimeouts = m.NewCounter(metricAckTimeouts)
	o.mReconnects = m.NewCounter(metricReconnects)
	for _, c := range []*service.MetricCounter{o.mSkipped, o.mTimeouts, o.mReconnects} {
		c.Incr(0)
	}
	o.conn.onLost = func(err error) {
		if now := time.Now().UnixNano(); now-o.lastLostLog.Load() >= int64(logEvery) {
			o.lastLostLog.Store(now)
			o.log.Warnf("MQTT connection lost: %v", redact.Error(err))
		}
	}
}

// Connect connects a fresh transport unless the current one is alive. It
// returns a *service.ErrBackOff with an exponentially growing wait when the
// broker is unreachable or refuses the connection.
func (o *output) Connect(ctx context.Context) error {
	o.connMu.Lock()
	defer o.connMu.Unlock()
	if o.gate.Closed() {
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
		return service.NewErrBackOff(err, o.reconnect.Failed())
	}
	if o.reconnect.Succeeded() {
		o.mReconnects.Incr(1)
	}
	o.cur.Store(&live{t: t})
	o.log.Infof("Connected to MQTT broker %v as client_id %q", redact.URLs(o.conn.urls), o.conn.clientID)
	return nil
}

// Close waits for the writes in flight (bounded by ctx and write_timeout),
// then disconnects and closes the dead-letter output.
func (o *output) Close(ctx context.Context) error {
	drained, first := o.gate.Close()
	if !first {
		return nil
	}
	drain.Wait(ctx, drained, o.writeTimeout)
	o.connMu.Lock()
	if lc := o.cur.Load(); lc != nil {
		lc.t.close(quiesce) // fails the deliveries still waiting
	}
	o.connMu.Unlock()
	o.seq.Close()
	<-drained
	return o.dl.close(ctx)
}
