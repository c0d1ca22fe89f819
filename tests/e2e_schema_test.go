package tests

import (
	"context"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/benthos-danube/benthos-danube/internal/danube"
	"github.com/benthos-danube/benthos-danube/internal/danube/danubetest"
	"github.com/benthos-danube/benthos-danube/internal/deadletter"
)

// TestE2ESchemasConfig runs config/schemas.yaml with the real binary between
// a real MQTT broker and the test broker. /iot/status is set to the enforce
// policy with payload validation beforehand (its subject registered, as an
// administrator would). Valid telemetry arrives with the schema id and
// version of telemetry-v1, which the bridge registered; invalid telemetry is
// dead-lettered by the bridge (schema_invalid); a status payload that is not
// UTF-8 is refused by the broker and dead-lettered as schema_rejected; the
// messages behind both arrive. After a restart nothing is registered again.
func TestE2ESchemasConfig(t *testing.T) {
	id := uniqueID(t)
	mqttURL := mqttBroker(t)
	dn := danubeBroker(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c, err := danube.NewClient(dn.URL())
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	statusID, _, err := c.RegisterSchema(ctx, "device-status", danube.SchemaTypeString, nil)
	require.NoError(t, err)
	require.NoError(t, dn.CreateTopic("/iot/status", true)) // the mapping is QoS 1: reliable dispatch
	require.NoError(t, dn.SetTopicSchemaPolicy("/iot/status", "device-status", danubetest.PolicyEnforce, true))

	pub := newPublisher(t, mqttURL, id+"-pub")
	conf := configFile(t, "schemas.yaml", id)
	p := startBridge(t, conf, bridgeEnv(mqttURL, dn.URL(), id+"-bridge"))
	waitBridgeReady(t, pub, dn, id+"/devices/probe/status", 20*time.Second, "/iot/status")

	for _, m := range []struct{ topic, payload string }{
		{"devices/d1/telemetry", `{"device":"d1","temp":20.5}`},
		{"devices/d1/telemetry", `{"device":"d1","temp":"warm"}`},
		{"devices/d1/status", "\xff\xfe"},
		{"devices/d2/telemetry", `{"device":"d2","temp":19}`},
		{"devices/d2/status", "online"},
	} {
		require.NoError(t, pub.publish(id+"/"+m.topic, 1, false, []byte(m.payload)))
	}
	require.NoError(t, dn.WaitForMessages(ctx, "/iot/telemetry", 2))
	require.NoError(t, dn.WaitForMessages(ctx, deadletter.DefaultTopic, 2))
	require.Eventually(t, func() bool {
		for _, m := range dn.Messages("/iot/status") {
			if string(m.Payload) == "online" {
				return true
			}
		}
		return false
	}, 15*time.Second, 50*time.Millisecond, "the status behind the refused one arrives")

	telID, telVersion, err := c.LatestSchema(ctx, "telemetry-v1")
	require.NoError(t, err, "the bridge registered telemetry-v1")
	tel := dn.Messages("/iot/telemetry")
	// Order is kept per device (the message key), not across devices: d1's
	// dead-lettered message may let d2's overtake it.
	var payloads []string
	for _, m := range tel {
		payloads = append(payloads, string(m.Payload))
	}
	assert.ElementsMatch(t, []string{`{"device":"d1","temp":20.5}`, `{"device":"d2","temp":19}`}, payloads)
	for _, m := range tel {
		require.NotNil(t, m.SchemaID)
		require.NotNil(t, m.SchemaVersion)
		assert.Equal(t, telID, *m.SchemaID)
		assert.Equal(t, telVersion, *m.SchemaVersion)
		assert.Equal(t, "mqtt", m.Attributes["source"])
	}
	for _, m := range dn.Messages("/iot/status") {
		require.NotNil(t, m.SchemaID)
		assert.Equal(t, statusID, *m.SchemaID)
	}

	reasons := map[string]danubetest.Message{}
	for _, r := range dn.Messages(deadletter.DefaultTopic) {
		reasons[r.Attributes[deadletter.Reason]] = r
	}
	inv, ok := reasons[deadletter.ReasonSchemaInvalid]
	require.True(t, ok, "dead letters: %v", reasons)
	assert.Equal(t, `{"device":"d1","temp":"warm"}`, string(inv.Payload))
	assert.Equal(t, "/iot/telemetry", inv.Attributes[deadletter.Topic])
	assert.Contains(t, inv.Attributes[deadletter.Error], "at '/temp': got string, want number")
	rej, ok := reasons[deadletter.ReasonSchemaRejected]
	require.True(t, ok, "dead letters: %v", reasons)
	assert.Equal(t, "\xff\xfe", string(rej.Payload))
	assert.Equal(t, "/iot/status", rej.Attributes[deadletter.Topic])
	assert.Contains(t, rej.Attributes[deadletter.Error], "Schema validation failed")
	assert.Equal(t, id+"/devices/d1/status", rej.Attributes["mqtt.topic"])

	assert.Equal(t, 1, dn.SchemaRegistrations("telemetry-v1"))
	assert.Equal(t, 1, dn.SchemaRegistrations("device-status"), "the existing subject was not registered by the bridge")
	assert.Contains(t, p.stdout.String()+p.stderr.String(), "registered the subject")

	// A restart registers nothing again.
	p.signal(t, syscall.SIGTERM)
	assert.Equal(t, 0, p.wait(t, 20*time.Second))
	p = startBridge(t, conf, bridgeEnv(mqttURL, dn.URL(), id+"-bridge"))
	require.Eventually(t, func() bool {
		out := p.stdout.String() + p.stderr.String()
		return strings.Count(out, "subject exists") == 2
	}, 20*time.Second, 50*time.Millisecond, "both subjects found at start-up")
	require.NoError(t, pub.publish(id+"/devices/d3/telemetry", 1, false, []byte(`{"device":"d3","temp":1}`)))
	require.NoError(t, dn.WaitForMessages(ctx, "/iot/telemetry", 3))
	assert.Equal(t, telID, *dn.Messages("/iot/telemetry")[2].SchemaID)
	assert.Equal(t, 1, dn.SchemaRegistrations("telemetry-v1"))
	assert.Equal(t, 1, dn.SchemaRegistrations("device-status"))
}
