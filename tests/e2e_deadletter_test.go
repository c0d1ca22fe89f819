package tests

import (
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/benthos-danube/benthos-danube/internal/danube"
	"github.com/benthos-danube/benthos-danube/internal/danube/danubetest"
)

// TestE2EDeadLetterConfig runs config/dead-letter.yaml: valid JSON keeps its
// topic, anything else lands unchanged on /iot/dead_letter with the reason.
func TestE2EDeadLetterConfig(t *testing.T) {
	id := uniqueID(t)
	mqttURL := mqttBroker(t)
	dn := danubeBroker(t)
	pub := newPublisher(t, mqttURL, id+"-pub")
	startBridge(t, configFile(t, "dead-letter.yaml", id), bridgeEnv(mqttURL, dn.URL(), id+"-bridge"))
	waitBridgeReady(t, pub, dn, id+"/sensors/probe/zone1", 20*time.Second)

	validTopic := id + "/devices/d1/telemetry"
	require.NoError(t, pub.publish(validTopic, 1, false, []byte(`{"battery":80}`)))
	bad := []byte{'{', 0xff, 'x'}
	require.NoError(t, pub.publish(id+"/devices/d2/telemetry", 1, false, bad))

	// The plain-text probes went to the dead-letter topic too; look for d2.
	var dl []danubetest.Message
	require.Eventually(t, func() bool {
		dl = dl[:0]
		for _, m := range dn.Messages("/iot/dead_letter") {
			if m.Attributes["mqtt.topic"] == id+"/devices/d2/telemetry" {
				dl = append(dl, m)
			}
		}
		return len(dl) > 0
	}, 15*time.Second, 50*time.Millisecond, "topics: %v", dn.Topics())
	require.Len(t, dl, 1)
	assert.Equal(t, bad, dl[0].Payload)
	assert.Equal(t, "/iot/device_telemetry", dl[0].Attributes["original_topic"])
	assert.Contains(t, dl[0].Attributes["error"], "payload is not a JSON object")
	assert.Equal(t, id+"/devices/d2/telemetry", dl[0].Attributes["mqtt.topic"])

	part := "/iot/device_telemetry-part-" + strconv.Itoa(danube.PartitionForKey(validTopic, 2))
	require.Eventually(t, func() bool { return dn.MessageCount(part) > 0 }, 15*time.Second, 50*time.Millisecond)
	assert.Equal(t, `{"battery":80}`, string(dn.Messages(part)[0].Payload))
}
