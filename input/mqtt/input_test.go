package mqtt

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/benthos-danube/benthos-danube/internal/deadletter"
)

func metaAny(t *testing.T, m *service.Message, key string) any {
	t.Helper()
	v, ok := m.MetaGetMut(key)
	if !ok {
		return nil
	}
	return v
}

// TestMappingsRustExample runs the Rust connector's four example mappings
// (plus a placeholder mapping) and checks routing and metadata at QoS 0, 1
// and 2, against mochi and, when MQTT_TEST_URL is set, that broker.
func TestMappingsRustExample(t *testing.T) {
	for _, bc := range testBrokers(t, false) {
		t.Run(bc.name, func(t *testing.T) {
			id := runID(t)
			p := id // topic prefix
			rec := newReceived()
			ts := startStream(t, fmt.Sprintf(`
urls: [ %s ]
client_id: %s-bridge
topic_mappings:
  - mqtt_topic: %[3]s/sensors/+/zone1
    danube_topic: /iot/sensors_zone1
    qos: ExactlyOnce
    partitions: 4
  - mqtt_topic: %[3]s/devices/+/telemetry
    danube_topic: /iot/device_telemetry
    qos: 2
    partitions: 2
  - mqtt_topic: %[3]s/sensors/temp/#
    danube_topic: /iot/temperature
    qos: "2"
  - mqtt_topic: %[3]s/debug/#
    danube_topic: /iot/debug
    qos: AtMostOnce
  - mqtt_topic: %[3]s/kinds/{kind}/{site}
    danube_topic: /{site}/{kind}_raw
    qos: AtLeastOnce
    reliable_dispatch: false
`, bc.url, id, p), func(_ context.Context, m *service.Message) error {
				rec.add(m)
				return nil
			})
			ts.waitConnected(t)
			pub := newPublisher(t, bc.url, id+"-pub", true)

			type want struct {
				topic, danube string
				subQoS        byte
				parts         int
				reliable      bool
				errSet        bool
			}
			cases := []want{
				{"sensors/temp/zone1", "/iot/sensors_zone1", 2, 4, true, false}, // first match wins over sensors/temp/#
				{"sensors/humidity/zone1", "/iot/sensors_zone1", 2, 4, true, false},
				{"sensors/temp/zone2", "/iot/temperature", 2, 0, true, false},
				{"sensors/temp", "/iot/temperature", 2, 0, true, false}, // '#' matches the parent level
				{"devices/device001/telemetry", "/iot/device_telemetry", 2, 2, true, false},
				{"debug/a/b", "/iot/debug", 0, 0, false, false},
				{"kinds/temp/site1", "/site1/temp_raw", 1, 0, false, false},
				{"kinds/te.mp/site1", "", 1, 0, false, true}, // captured value invalid in a Danube name (topic_mappings[4])
			}
			var all []string
			for q := byte(0); q <= 2; q++ {
				for i, c := range cases {
					payload := fmt.Sprintf("q%d-%d", q, i)
					all = append(all, payload)
					pub.publishWait(t, p+"/"+c.topic, q, payload)
				}
				pub.publishWait(t, p+"/sensors/pressure/factory1", q, "never") // no subscription: never delivered
			}
			waitFor(t, 20*time.Second, "all messages", func() bool { return rec.unique() >= len(all) })
			if n, s := rec.missing(all); n > 0 {
				t.Fatalf("%d missing: %v", n, s)
			}
			for q := byte(0); q <= 2; q++ {
				for i, c := range cases {
					payload := fmt.Sprintf("q%d-%d", q, i)
					for _, m := range rec.get(payload) {
						wantQoS := min(q, c.subQoS)
						if got := metaAny(t, m, "mqtt_topic"); got != p+"/"+c.topic {
							t.Errorf("%s: mqtt_topic %v", payload, got)
						}
						if got := metaAny(t, m, "mqtt_qos"); got != int(wantQoS) {
							t.Errorf("%s: mqtt_qos %v, want %d", payload, got, wantQoS)
						}
						if got := metaAny(t, m, "mqtt_retained"); got != false {
							t.Errorf("%s: mqtt_retained %v", payload, got)
						}
						if got, ok := metaAny(t, m, "mqtt_duplicate").(bool); !ok {
							t.Errorf("%s: mqtt_duplicate %v", payload, got)
						}
						if got, ok := metaAny(t, m, "mqtt_message_id").(int); !ok || (wantQoS > 0) != (got > 0) {
							t.Errorf("%s: mqtt_message_id %v", payload, metaAny(t, m, "mqtt_message_id"))
						}
						if got := metaAny(t, m, "mqtt_filter"); got != nil {
							t.Errorf("%s: mqtt_filter %v is only set in the plain topics form", payload, got)
						}
						if c.errSet {
							if m.GetError() == nil || metaAny(t, m, "danube_topic") != nil {
								t.Errorf("%s: want an error and no danube_topic, got %v %v", payload, m.GetError(), metaAny(t, m, "danube_topic"))
							} else if !strings.Contains(m.GetError().Error(), "topic_mappings[4]") {
								t.Errorf("%s: error %q does not name the matching mapping topic_mappings[4]", payload, m.GetError())
							}
							// Marked for the dead-letter destination, with
							// the topic it was meant for and its mapping.
							for k, want := range map[string]any{
								deadletter.Reason:  deadletter.ReasonInvalidTopic,
								deadletter.Topic:   "/site1/te.mp_raw",
								deadletter.Mapping: p + "/kinds/{kind}/{site}",
							} {
								if got := metaAny(t, m, k); got != want {
									t.Errorf("%s: %s = %v, want %v", payload, k, got, want)
								}
							}
							if got, _ := metaAny(t, m, deadletter.Error).(string); !strings.Contains(got, "te.mp") {
								t.Errorf("%s: %s = %q", payload, deadletter.Error, got)
							}
							continue
						}
						if m.GetError() != nil {
							t.Errorf("%s: unexpected error %v", payload, m.GetError())
						}
						if got := metaAny(t, m, deadletter.Reason); got != nil {
							t.Errorf("%s: a routed message carries %s = %v", payload, deadletter.Reason, got)
						}
						if got := metaAny(t, m, "danube_topic"); got != c.danube {
							t.Errorf("%s: danube_topic %v, want %s", payload, got, c.danube)
						}
						if got := metaAny(t, m, "danube_partitions"); got != c.parts {
							t.Errorf("%s: danube_partitions %v, want %d", payload, got, c.parts)
						}
						if got := metaAny(t, m, "danube_reliable_dispatch"); got != c.reliable {
							t.Errorf("%s: danube_reliable_dispatch %v, want %v", payload, got, c.reliable)
						}
					}
				}
			}
			if len(rec.get("never")) > 0 {
				t.Errorf("an unsubscribed topic was delivered")
			}
			t.Logf("%d messages, %d unique, %d duplicates (overlapping subscriptions may be delivered twice by some brokers)", rec.total, rec.unique(), rec.duplicates())
		})
	}
}

// TestPlainTopics runs the plain topics form: messages carry mqtt_filter and
// no danube_* metadata.
func TestPlainTopics(t *testing.T) {
	for _, bc := range testBrokers(t, false) {
		t.Run(bc.name, func(t *testing.T) {
			id := runID(t)
			rec := newReceived()
			ts := startStream(t, fmt.Sprintf(`
urls: [ %s ]
client_id: %s-bridge
topics: [ %[2]s/a/#, %[2]s/b/+ ]
qos: 1
`, bc.url, id), func(_ context.Context, m *service.Message) error {
				rec.add(m)
				return nil
			})
			ts.waitConnected(t)
			pub := newPublisher(t, bc.url, id+"-pub", true)
			cases := []struct{ topic, filter string }{
				{"a/x/y", "a/#"},
				{"a", "a/#"},
				{"b/z", "b/+"},
			}
			for i, c := range cases {
				pub.publishWait(t, id+"/"+c.topic, 1, fmt.Sprintf("p%d", i))
			}
			waitFor(t, 20*time.Second, "all messages", func() bool { return rec.unique() >= len(cases) })
			for i, c := range cases {
				for _, m := range rec.get(fmt.Sprintf("p%d", i)) {
					if got := metaAny(t, m, "mqtt_filter"); got != id+"/"+c.filter {
						t.Errorf("%s: mqtt_filter %v, want %s", c.topic, got, id+"/"+c.filter)
					}
					if got := metaAny(t, m, "mqtt_topic"); got != id+"/"+c.topic {
						t.Errorf("%s: mqtt_topic %v", c.topic, got)
					}
					for _, k := range []string{"danube_topic", "danube_partitions", "danube_reliable_dispatch"} {
						if got := metaAny(t, m, k); got != nil {
							t.Errorf("%s: %s = %v in the plain form", c.topic, k, got)
						}
					}
					if m.GetError() != nil {
						t.Errorf("%s: unexpected error %v", c.topic, m.GetError())
					}
				}
			}
		})
	}
}

// TestGaugesFollowThePipeline stalls the pipeline with max_unacked
// messages in it and checks that mqtt_input_unacked and mqtt_input_queued
// show it, and return to 0 once everything is acknowledged.
// stalledGaugeStream starts a stream whose consumer holds every message
// until release is closed (counting them in got); capture is ts.metrics.
func stalledGaugeStream(t *testing.T, b *testBroker, id, extra string) (ts *testStream, capture *metricsCapture, release chan struct{}, got *atomic.Int64) {
	t.Helper()
	release = make(chan struct{})
	got = &atomic.Int64{}
	ts = startStream(t, fmt.Sprintf(`
urls: [ %s ]
client_id: %s-bridge
%stopic_mappings:
  - mqtt_topic: %[2]s/#
    danube_topic: /g/t
    qos: 1
`, b.url(), id, extra), func(ctx context.Context, _ *service.Message) error {
		select {
		case <-release:
		case <-ctx.Done():
			return ctx.Err()
		}
		got.Add(1)
		return nil
	})
	ts.waitConnected(t)
	return ts, ts.metrics, release, got
}

func TestGaugesFollowThePipeline(t *testing.T) {
	b := newTestBroker(t, false)
	id := runID(t)
	ts, capture, release, got := stalledGaugeStream(t, b, id, "max_unacked: 4\n")
	pub := newPublisher(t, b.url(), id+"-pub", true)
	// max_unacked in the pipeline and as many again in the input's queue,
	// its bound (more would wait in the broker until the stall is
	// detected, queue.go).
	const n = 8
	for i := range n {
		pub.c.Publish(fmt.Sprintf("%s/d%d", id, i), 1, false, "x")
	}
	// The consumer holds one message and Benthos the others of its batch;
	// the rest wait in the input's queue. Both gauges must show what the
	// input holds.
	waitFor(t, 10*time.Second, "gauges that match the stalled pipeline", func() bool {
		u, _ := capture.gauge(metricUnacked)
		q, _ := capture.gauge(metricQueued)
		return u > 0 && q > 0 && u+q == n && u == ts.in.unacked.Load() && q == int64(ts.in.q.len())
	})
	close(release)
	waitFor(t, 10*time.Second, "all messages", func() bool { return got.Load() == n })
	waitFor(t, 10*time.Second, "both gauges back at 0", func() bool {
		u, _ := capture.gauge(metricUnacked)
		q, _ := capture.gauge(metricQueued)
		return u == 0 && q == 0
	})
}

// TestOldestUnackedAge: the age of the oldest unacknowledged message rises
// while the pipeline holds it, whatever the cause, and falls back to 0 once
// it is acknowledged.
func TestOldestUnackedAge(t *testing.T) {
	b := newTestBroker(t, false)
	id := runID(t)
	_, capture, release, got := stalledGaugeStream(t, b, id, "")
	waitFor(t, 5*time.Second, "the gauge at 0 when idle", func() bool {
		v, ok := capture.gauge(metricOldestUnacked)
		return ok && v == 0
	})
	pub := newPublisher(t, b.url(), id+"-pub", true)
	for i := range 3 {
		pub.c.Publish(fmt.Sprintf("%s/d%d", id, i), 1, false, "x")
	}
	waitFor(t, 10*time.Second, "the age of a held message to reach 2 s", func() bool {
		v, _ := capture.gauge(metricOldestUnacked)
		return v >= 2
	})
	close(release)
	waitFor(t, 10*time.Second, "all 3 messages", func() bool { return got.Load() == 3 })
	waitFor(t, 5*time.Second, "the gauge back at 0", func() bool {
		v, _ := capture.gauge(metricOldestUnacked)
		return v == 0
	})
}

func TestLedgerOldest(t *testing.T) {
	var l ledger
	if _, ok := l.oldest(); ok {
		t.Fatal("empty ledger has an oldest entry")
	}
	ds := make([]*delivery, 2000)
	for i := range ds {
		ds[i] = &delivery{at: int64(i + 1)}
		l.add(ds[i])
	}
	// Out of order: the oldest stays until it is done itself.
	l.done(ds[1])
	if at, _ := l.oldest(); at != 1 {
		t.Fatalf("oldest %d, want 1", at)
	}
	l.done(ds[0])
	if at, _ := l.oldest(); at != 3 {
		t.Fatalf("oldest %d, want 3", at)
	}
	for _, d := range ds[2:1500] {
		l.done(d)
	}
	if at, _ := l.oldest(); at != 1501 {
		t.Fatalf("oldest %d, want 1501 after compaction", at)
	}
	for _, d := range ds[1500:] {
		l.done(d)
	}
	if _, ok := l.oldest(); ok || len(l.items) != 0 {
		t.Fatalf("ledger not empty: %d", len(l.items))
	}
}
