package mqtt

import (
	"context"
	"encoding/base64"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	paho5 "github.com/eclipse/paho.golang/paho"
	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/benthos-danube/benthos-danube/internal/deadletter"
	"github.com/benthos-danube/benthos-danube/internal/mqttmeta"
	"github.com/benthos-danube/benthos-danube/internal/mqtttest"
)

// TestV5PropertiesToMetadata: every MQTT 5 PUBLISH property arrives as the
// documented metadata, and mqttmeta.Attribute gives Danube Edge's names.
func TestV5PropertiesToMetadata(t *testing.T) {
	for _, bc := range testBrokers(t, false) {
		t.Run(bc.name, func(t *testing.T) {
			id := runID(t)
			rec := newReceived()
			ts := startStream(t, fmt.Sprintf(`
protocol_version: "5"
urls: [ %s ]
client_id: %s
topic_mappings:
  - mqtt_topic: %s/#
    danube_topic: /t/x
    qos: 1
`, bc.url, id, id), func(_ context.Context, m *service.Message) error { rec.add(m); return nil })
			ts.waitConnected(t)
			pub := mqtttest.NewPublisher5(t, bc.url, id+"-pub")
			big := strings.Repeat("v", 32<<10) // a 32 KiB user property value
			pf := byte(1)
			exp := uint32(3600)
			pub.Publish(t, &paho5.Publish{Topic: id + "/dev1", QoS: 1, Payload: []byte("p1"), Properties: &paho5.PublishProperties{
				ContentType:     "application/json",
				ResponseTopic:   "reply/dev1",
				CorrelationData: []byte{0, 1, 2, 0xff},
				PayloadFormat:   &pf,
				MessageExpiry:   &exp,
				User: paho5.UserProperties{
					{Key: "schema", Value: "telemetry-v2"}, {Key: "trace id", Value: "abc"},
					{Key: "dup", Value: "first"}, {Key: "dup", Value: "last"}, {Key: "big", Value: big},
				},
			}})
			pub.Publish(t, &paho5.Publish{Topic: id + "/dev1", QoS: 0, Payload: []byte("p2")})
			waitFor(t, 15*time.Second, "both messages", func() bool { return rec.unique() == 2 })
			m := rec.get("p1")[0]
			want := map[string]any{
				mqttmeta.ContentType:     "application/json",
				mqttmeta.ResponseTopic:   "reply/dev1",
				mqttmeta.CorrelationData: base64.StdEncoding.EncodeToString([]byte{0, 1, 2, 0xff}),
				mqttmeta.PayloadFormat:   1,
				"mqtt_user_schema":       "telemetry-v2",
				"mqtt_user_trace id":     "abc",
				"mqtt_user_dup":          "last",
				"mqtt_user_big":          big,
				mqttmeta.Topic:           id + "/dev1",
			}
			for k, v := range want {
				got, ok := m.MetaGetMut(k)
				if !ok || got != v {
					t.Errorf("%s = %v (set %v), want %v", k, trunc(got), ok, trunc(v))
				}
			}
			if e, _ := m.MetaGetMut(mqttmeta.MessageExpiry); e == nil || e.(int) < 3590 || e.(int) > 3600 {
				t.Errorf("%s = %v, want about 3600", mqttmeta.MessageExpiry, e)
			}
			plain := rec.get("p2")[0]
			var extra []string
			_ = plain.MetaWalkMut(func(k string, _ any) error {
				// (mochi gives every message its default expiry.)
				if strings.HasPrefix(k, mqttmeta.UserPrefix) || k == mqttmeta.ContentType || k == mqttmeta.CorrelationData {
					extra = append(extra, k)
				}
				return nil
			})
			if len(extra) > 0 {
				t.Errorf("a PUBLISH without properties got %v", extra)
			}
		})
	}
}

func trunc(v any) string {
	s := fmt.Sprint(v)
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}

func TestV5AttributeNames(t *testing.T) {
	for k, want := range map[string]string{
		mqttmeta.ContentType:     "mqtt.content_type",
		mqttmeta.ResponseTopic:   "mqtt.response_topic",
		mqttmeta.CorrelationData: "mqtt.correlation_data",
		mqttmeta.PayloadFormat:   "mqtt.payload_format",
		mqttmeta.MessageExpiry:   "mqtt.message_expiry",
		mqttmeta.SubscriptionIDs: "mqtt.subscription_ids",
		"mqtt_user_schema":       "mqtt.user.schema",
		"mqtt_user_a.b c":        "mqtt.user.a.b c",
		mqttmeta.Topic:           "mqtt.topic",
		"custom":                 "custom",
	} {
		if got := mqttmeta.Attribute(k); got != want {
			t.Errorf("Attribute(%q) = %q, want %q", k, got, want)
		}
	}
}

// TestV5PubackAfterDelivery: over MQTT 5 too, a QoS 1 message is PUBACKed
// only after the output confirmed it, a nacked one is retried from the MQTT
// message, and the broker's in-flight window drains.
func TestV5PubackAfterDelivery(t *testing.T) {
	b := newTestBroker(t, false)
	id := runID(t)
	const n, failures = 30, 2
	rec := newReceived()
	var mu sync.Mutex
	attempts := map[string]int{}
	early := 0
	ts := startStream(t, fmt.Sprintf(`
protocol_version: "5"
urls: [ %s ]
client_id: %s
topic_mappings:
  - mqtt_topic: %s/#
    danube_topic: /t/x
    qos: 1
`, b.url(), id, id), func(_ context.Context, m *service.Message) error {
		body, _ := m.AsBytes()
		mid, _ := m.MetaGetMut("mqtt_message_id")
		mu.Lock()
		defer mu.Unlock()
		if b.obs.acked(id, uint16(mid.(int))) > 0 {
			early++
		}
		attempts[string(body)]++
		if attempts[string(body)] <= failures {
			return fmt.Errorf("output down")
		}
		rec.add(m)
		return nil
	})
	ts.waitConnected(t)
	pub := mqtttest.NewPublisher5(t, b.url(), id+"-pub")
	all := ids("m", n)
	for _, p := range all {
		pub.Publish(t, &paho5.Publish{Topic: id + "/a", QoS: 1, Payload: []byte(p)})
	}
	waitFor(t, 30*time.Second, "every message delivered", func() bool { return rec.unique() == n })
	waitFor(t, 10*time.Second, "every PUBACK", func() bool { return b.obs.totalAcks(id) >= n })
	waitFor(t, 10*time.Second, "broker in-flight to drain", func() bool { return b.clientInflight(id) == 0 })
	mu.Lock()
	defer mu.Unlock()
	if early != 0 {
		t.Fatalf("%d PUBACKs were sent before the output succeeded", early)
	}
}

// TestV5ExpiredInBridge: a message whose expiry runs out while the output
// is down is dead-lettered (dead_letter_reason: expired), not dropped.
func TestV5ExpiredInBridge(t *testing.T) {
	b := newTestBroker(t, false)
	id := runID(t)
	rec := newReceived()
	var mu sync.Mutex
	fail := true
	ts := startStream(t, fmt.Sprintf(`
protocol_version: "5"
urls: [ %s ]
client_id: %s
topic_mappings:
  - mqtt_topic: %s/#
    danube_topic: /t/x
    qos: 1
`, b.url(), id, id), func(_ context.Context, m *service.Message) error {
		mu.Lock()
		defer mu.Unlock()
		if fail {
			return fmt.Errorf("output down")
		}
		rec.add(m)
		return nil
	})
	ts.waitConnected(t)
	pub := mqtttest.NewPublisher5(t, b.url(), id+"-pub")
	exp := uint32(1)
	pub.Publish(t, &paho5.Publish{Topic: id + "/a", QoS: 1, Payload: []byte("short"), Properties: &paho5.PublishProperties{MessageExpiry: &exp}})
	time.Sleep(1500 * time.Millisecond)
	mu.Lock()
	fail = false
	mu.Unlock()
	waitFor(t, 15*time.Second, "the expired message", func() bool { return rec.unique() == 1 })
	m := rec.get("short")[0]
	if r, _ := m.MetaGetMut(deadletter.Reason); r != deadletter.ReasonExpired {
		t.Fatalf("dead_letter_reason = %v, want %s", r, deadletter.ReasonExpired)
	}
	if e, _ := m.MetaGetMut(mqttmeta.MessageExpiry); e != 0 {
		t.Fatalf("mqtt_message_expiry = %v, want 0", e)
	}
	if dt, _ := m.MetaGetMut(deadletter.Mapping); dt != id+"/#" {
		t.Fatalf("dead_letter_mapping = %v", dt)
	}
}
