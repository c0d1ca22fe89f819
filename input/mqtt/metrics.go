package mqtt

import (
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"
)

// Metric names.
const (
	metricUnmatched   = "mqtt_input_unmatched"
	metricPlaceholder = "mqtt_input_placeholder_errors"
	metricQoS0Dropped = "mqtt_input_qos0_dropped"
	metricAcks        = "mqtt_input_acks_sent"
	metricDuplicates  = "mqtt_input_duplicates"
	metricNackDropped = "mqtt_input_nack_dropped"
	metricReconnects  = "mqtt_input_reconnects"
	metricExpired     = "mqtt_input_expired"
	metricUnacked     = "mqtt_input_unacked"
	metricQueued      = "mqtt_input_queued"
)

// newMetrics creates the input's metrics and exposes them (exposeMetrics).
func (in *input) newMetrics(m *service.Metrics) {
	in.mUnmatched = m.NewCounter(metricUnmatched)
	in.mPlaceholder = m.NewCounter(metricPlaceholder)
	in.mQoS0Dropped = m.NewCounter(metricQoS0Dropped)
	in.mAcks = m.NewCounter(metricAcks)
	in.mDup = m.NewCounter(metricDuplicates)
	in.mNackDropped = m.NewCounter(metricNackDropped)
	in.mReconnects = m.NewCounter(metricReconnects)
	in.mExpired = m.NewCounter(metricExpired)
	in.gUnacked = m.NewGauge(metricUnacked)
	in.gQueued = m.NewGauge(metricQueued)
	in.gOldest = m.NewGauge(metricOldestUnacked)
	in.skipped = newReplayCounter(m)
	in.exposeMetrics()
}

// exposeMetrics publishes every metric of the input at 0 from the start. A
// series appears in /metrics only once it was first set or incremented, so
// without this mqtt_input_reconnects or mqtt_input_acks_sent would be missing
// until the first reconnect or acknowledgement, and queries such as
// increase(mqtt_input_reconnects[1h]) would see no data instead of 0.
func (in *input) exposeMetrics() {
	for _, c := range []*service.MetricCounter{
		in.mUnmatched, in.mPlaceholder, in.mQoS0Dropped, in.mAcks, in.mDup, in.mNackDropped, in.mReconnects, in.mExpired,
	} {
		c.Incr(0)
	}
	in.gUnacked.Set(0)
	in.gQueued.Set(0)
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
