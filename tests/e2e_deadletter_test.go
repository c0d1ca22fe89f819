package tests

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/benthos-danube/benthos-danube/internal/danube"
	"github.com/benthos-danube/benthos-danube/internal/danube/danubetest"
)

// TestE2EDeadLetterConfig runs config/dead-letter.yaml: valid JSON keeps its
// topic; a payload that is not JSON and one too large for Danube land on
// /iot/dead_letter with their reasons, each logged once, not once per retry.
func TestE2EDeadLetterConfig(t *testing.T) {
	id := uniqueID(t)
	mqttURL := mqttBroker(t)
	dn := danubeBroker(t)
	pub := newPublisher(t, mqttURL, id+"-pub")
	p := startBridge(t, configFile(t, "dead-letter.yaml", id), bridgeEnv(mqttURL, dn.URL(), id+"-bridge"))
	waitBridgeReady(t, pub, dn, id+"/sensors/probe/zone1", 20*time.Second, "/iot/dead_letter") // the probe is not JSON

	validTopic := id + "/devices/d1/telemetry"
	require.NoError(t, pub.publish(validTopic, 1, false, []byte(`{"battery":80}`)))
	bad := []byte{'{', 0xff, 'x'}
	require.NoError(t, pub.publish(id+"/devices/d2/telemetry", 1, false, bad))
	big := make([]byte, 5<<20)
	require.NoError(t, pub.publish(id+"/devices/d3/telemetry", 1, false, big))

	// The plain-text probes went to the dead-letter topic too; look for d2
	// and d3.
	find := func(topic string) []danubetest.Message {
		var out []danubetest.Message
		for _, m := range dn.Messages("/iot/dead_letter") {
			if m.Attributes["mqtt_topic"] == topic {
				out = append(out, m)
			}
		}
		return out
	}
	require.Eventually(t, func() bool {
		return len(find(id+"/devices/d2/telemetry")) > 0 && len(find(id+"/devices/d3/telemetry")) > 0
	}, 15*time.Second, 50*time.Millisecond, "topics: %v", dn.Topics())
	dl := find(id + "/devices/d2/telemetry")
	require.Len(t, dl, 1)
	assert.Equal(t, bad, dl[0].Payload)
	assert.Equal(t, "invalid_payload", dl[0].Attributes["dead_letter_reason"])
	assert.Equal(t, "/iot/device_telemetry", dl[0].Attributes["dead_letter_topic"])
	assert.Contains(t, dl[0].Attributes["dead_letter_error"], "payload is not a JSON object")
	assert.Equal(t, id+"/devices/d2/telemetry", dl[0].Attributes["mqtt.topic"])
	dl = find(id + "/devices/d3/telemetry")
	require.Len(t, dl, 1)
	assert.Equal(t, "true", dl[0].Attributes["dead_letter_truncated"])

	part := "/iot/device_telemetry-part-" + strconv.Itoa(danube.PartitionForKey(validTopic, 2))
	wctx, wcancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer wcancel()
	require.NoError(t, dn.WaitForMessages(wctx, part, 1))
	assert.Equal(t, `{"battery":80}`, string(dn.Messages(part)[0].Payload))

	// Each undeliverable message is logged once: it is never replayed.
	time.Sleep(time.Second)
	logs := p.stderr.String() + p.stdout.String()
	assert.Zero(t, strings.Count(logs, "Failed to send message"), "no failed-send retries:\n%s", logs)
	assert.LessOrEqual(t, strings.Count(logs, "d3/telemetry"), 1, "the oversized message is logged once:\n%s", logs)
}
