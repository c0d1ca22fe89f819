package tests

import (
	"bytes"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/benthos-danube/benthos-danube/internal/danube/danubetest"
)

// TestE2EMinimalPipelineAttributes: the mqtt input straight into the danube
// output, no processor. Danube gets the Rust connector's attribute names
// (mqtt.topic, mqtt.qos, mqtt.retain, mqtt.dup, source=mqtt), a mapping's
// placeholder attribute, and the payload unchanged; with attribute_names:
// metadata the Benthos names instead.
func TestE2EMinimalPipelineAttributes(t *testing.T) {
	for _, mode := range []string{"", "metadata", "both"} {
		t.Run("attribute_names="+mode, func(t *testing.T) {
			id := uniqueID(t)
			mqttURL := mqttBroker(t)
			dn := danubeBroker(t)
			names := ""
			if mode != "" {
				names = "\n    attribute_names: " + mode
			}
			startBridge(t, fmt.Sprintf(`
http: { enabled: false }
input:
  mqtt:
    urls: [ %s ]
    client_id: %s-bridge
    topic_mappings:
      - mqtt_topic: %s/devices/{device}/telemetry
        danube_topic: /iot/telemetry
        attributes: { device_id: "{device}" }
output:
  danube:
    url: %s%s
`, mqttURL, id, id, dn.URL(), names), nil)
			pub := newPublisher(t, mqttURL, id+"-pub")
			waitBridgeReady(t, pub, dn, id+"/devices/probe/telemetry", 20*time.Second, "/iot/telemetry")

			topic := id + "/devices/dev-7/telemetry"
			payload := []byte("{ \"b\": 1,\n \"a\": 2 }\xff") // not JSON: forwarded as it is
			require.NoError(t, pub.publish(topic, 1, false, payload))

			var got *danubetest.Message
			require.Eventually(t, func() bool {
				for _, m := range dn.Messages("/iot/telemetry") {
					if bytes.Equal(m.Payload, payload) {
						got = &m
						return true
					}
				}
				return false
			}, 15*time.Second, 50*time.Millisecond, "topics %v", dn.Topics())

			a := got.Attributes
			connector := map[string]string{"mqtt.topic": topic, "mqtt.qos": "1", "mqtt.retain": "false", "mqtt.dup": "false", "source": "mqtt"}
			metadata := map[string]string{"mqtt_topic": topic, "mqtt_qos": "1", "mqtt_retained": "false", "mqtt_duplicate": "false"}
			want := map[string]string{"device_id": "dev-7"}
			switch mode {
			case "", "both":
				for k, v := range connector {
					want[k] = v
				}
			}
			switch mode {
			case "metadata", "both":
				for k, v := range metadata {
					want[k] = v
				}
			}
			msgID, err := strconv.Atoi(a["mqtt_message_id"])
			assert.NoError(t, err, "mqtt_message_id keeps its name: %v", a)
			assert.Positive(t, msgID)
			delete(a, "mqtt_message_id")
			assert.Equal(t, want, a)
		})
	}
}
