package tests

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/benthos-danube/benthos-danube/internal/danube"
	"github.com/benthos-danube/benthos-danube/internal/danube/danubetest"
)

// TestE2ERoutingAttributesAndPayloads runs the shipped mqtt-to-danube.yaml
// and checks, for every mapped topic family, that each message lands on the
// right Danube topic and partition with the Rust connector's attributes and
// the exact payload bytes, including empty and non-UTF-8 payloads and a
// retained message.
func TestE2ERoutingAttributesAndPayloads(t *testing.T) {
	id := uniqueID(t)
	mqttURL := mqttBroker(t)
	dn := danubeBroker(t)
	pub := newPublisher(t, mqttURL, id+"-pub")

	// A retained message published before the bridge subscribes is replayed
	// to it with the retain flag; cleared again on cleanup (shared broker).
	retainedTopic := id + "/sensors/temp/zone9"
	require.NoError(t, pub.publish(retainedTopic, 1, true, []byte("retained-reading")))
	t.Cleanup(func() { _ = pub.publish(retainedTopic, 1, true, nil) })

	startBridge(t, shippedConfig(t, id), bridgeEnv(mqttURL, dn.URL(), id+"-bridge"))
	waitBridgeReady(t, pub, dn, id+"/debug/probe", 20*time.Second, "/iot/debug")

	big := bytes.Repeat([]byte("0123456789abcdef"), 4096) // 64 KiB
	cases := []struct {
		name    string
		topic   string // without the prefix
		qos     byte
		payload []byte
		danube  string
		parts   int
		wantQoS int // min(publish QoS, subscription QoS)
	}{
		{"json zone1", "sensors/humidity/zone1", 1, []byte(`{"humidity":40}`), "/iot/sensors_zone1", 4, 1},
		{"overlap goes to the first mapping", "sensors/temp/zone1", 1, []byte(`{"t":21.5}`), "/iot/sensors_zone1", 4, 1},
		{"non-UTF-8 bytes", "devices/dev-bin/telemetry", 1, []byte{0x00, 0xff, 0xfe, 0x80, 0x7f, 0xc3, 0x28}, "/iot/device_telemetry", 2, 1},
		{"empty payload", "devices/dev-empty/telemetry", 1, []byte{}, "/iot/device_telemetry", 2, 1},
		{"QoS 2 large payload", "sensors/temp/zone2", 2, big, "/iot/temperature", 0, 1},
		{"multi-level wildcard", "sensors/temp/zone3/rack7", 1, []byte("plain text"), "/iot/temperature", 0, 1},
		{"parent level of #", "sensors/temp", 1, []byte("parent"), "/iot/temperature", 0, 1},
		{"QoS 0 debug", "debug/gw-1/heartbeat", 0, []byte(`{"uptime_s":5}`), "/iot/debug", 0, 0},
	}
	for _, c := range cases {
		require.NoError(t, pub.publish(id+"/"+c.topic, c.qos, false, c.payload), c.name)
	}
	// An unmapped topic is never delivered to the bridge.
	require.NoError(t, pub.publish(id+"/sensors/pressure/factory1", 1, false, []byte("unmapped")))

	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			mqttTopic := id + "/" + c.topic
			name := c.danube
			if c.parts > 0 {
				name += "-part-" + strconv.Itoa(danube.PartitionForKey(mqttTopic, c.parts))
			}
			var got []danubetest.Message
			require.Eventually(t, func() bool {
				got = got[:0]
				for _, m := range dn.Messages(name) {
					if m.Attributes["mqtt.topic"] == mqttTopic {
						got = append(got, m)
					}
				}
				return len(got) > 0
			}, 15*time.Second, 50*time.Millisecond, "nothing from %s on %s; topics %v", mqttTopic, name, dn.Topics())
			require.Len(t, got, 1, "exactly one copy")
			m := got[0]
			assert.True(t, bytes.Equal(c.payload, m.Payload), "payload bytes differ: got %d bytes %q", len(m.Payload), truncate(m.Payload))
			assert.Equal(t, map[string]string{
				"mqtt.topic":  mqttTopic,
				"mqtt.qos":    strconv.Itoa(c.wantQoS),
				"mqtt.retain": "false",
				"mqtt.dup":    "false",
				"source":      "mqtt",
			}, m.Attributes)
			assert.Equal(t, mqttTopic, m.RoutingKey, "keyed by MQTT topic")
		})
	}

	t.Run("retained message", func(t *testing.T) {
		name := "/iot/temperature"
		require.Eventually(t, func() bool {
			for _, m := range dn.Messages(name) {
				if m.Attributes["mqtt.topic"] == retainedTopic {
					assert.Equal(t, "retained-reading", string(m.Payload))
					assert.Equal(t, "true", m.Attributes["mqtt.retain"])
					return true
				}
			}
			return false
		}, 10*time.Second, 50*time.Millisecond)
	})

	t.Run("nothing unmapped, nothing duplicated", func(t *testing.T) {
		seen := map[string]int{}
		for _, m := range allMessages(dn) {
			assert.NotEqual(t, "unmapped", string(m.Payload))
			if !strings.HasSuffix(m.Attributes["mqtt.topic"], "/probe") {
				seen[m.Attributes["mqtt.topic"]]++
			}
		}
		for topic, n := range seen {
			assert.Equal(t, 1, n, "copies of %s", topic)
		}
	})
}

func truncate(b []byte) string {
	if len(b) > 40 {
		return string(b[:40]) + "..."
	}
	return string(b)
}

// TestE2EPerDeviceOrder publishes interleaved numbered readings from several
// devices and checks every device's readings arrive in its partition
// complete and in publish order.
func TestE2EPerDeviceOrder(t *testing.T) {
	id := uniqueID(t)
	mqttURL := mqttBroker(t)
	dn := danubeBroker(t)
	pub := newPublisher(t, mqttURL, id+"-pub")
	startBridge(t, shippedConfig(t, id), bridgeEnv(mqttURL, dn.URL(), id+"-bridge"))
	waitBridgeReady(t, pub, dn, id+"/debug/probe", 20*time.Second, "/iot/debug")

	const devices, perDevice = 6, 150
	for seq := range perDevice {
		for d := range devices {
			topic := fmt.Sprintf("%s/devices/dev%d/telemetry", id, d)
			require.NoError(t, pub.publish(topic, 1, false, []byte(strconv.Itoa(seq))))
		}
	}

	require.Eventually(t, func() bool {
		return dn.MessageCount("/iot/device_telemetry-part-0")+dn.MessageCount("/iot/device_telemetry-part-1") >= devices*perDevice
	}, 30*time.Second, 100*time.Millisecond, "have %d of %d",
		dn.MessageCount("/iot/device_telemetry-part-0")+dn.MessageCount("/iot/device_telemetry-part-1"), devices*perDevice)

	for d := range devices {
		topic := fmt.Sprintf("%s/devices/dev%d/telemetry", id, d)
		part := fmt.Sprintf("/iot/device_telemetry-part-%d", danube.PartitionForKey(topic, 2))
		var seqs []int
		var trace []string
		for _, m := range dn.Messages(part) {
			if m.Attributes["mqtt.topic"] == topic {
				n, err := strconv.Atoi(string(m.Payload))
				require.NoError(t, err)
				seqs = append(seqs, n)
				if len(seqs) > 1 && n < seqs[len(seqs)-2] {
					trace = append(trace, fmt.Sprintf("seq %d after %d (offset %d, dup=%s, request %d)",
						n, seqs[len(seqs)-2], m.Offset, m.Attributes["mqtt.dup"], m.RequestID))
				}
			}
		}
		assert.Empty(t, trace, "device %d: out of order in %s", d, part)
		want := make([]int, perDevice)
		for i := range want {
			want[i] = i
		}
		assert.Equal(t, want, seqs, "device %d: complete and in order in %s", d, part)
	}
}

// TestE2ESIGTERMDrainsWithoutLoss publishes continuously, stops the bridge
// with SIGTERM mid-stream (exit code 0), keeps publishing while it is down,
// restarts it with the same persistent session and checks that every
// message the broker accepted reached Danube.
func TestE2ESIGTERMDrainsWithoutLoss(t *testing.T) {
	id := uniqueID(t)
	mqttURL := mqttBroker(t)
	dn := danubeBroker(t)
	dn.SetLatency(5 * time.Millisecond) // keep sends in flight when SIGTERM lands
	pub := newPublisher(t, mqttURL, id+"-pub")
	cfg := shippedConfig(t, id)
	env := bridgeEnv(mqttURL, dn.URL(), id+"-bridge")

	first := startBridge(t, cfg, env)
	waitBridgeReady(t, pub, dn, id+"/sensors/temp/probe", 20*time.Second, "/iot/temperature")

	// Publish numbered QoS 1 messages over three device topics until told to
	// stop; acked counts those the broker acknowledged.
	stop := make(chan struct{})
	acked := make(chan int, 1)
	go func() {
		n := 0
		defer func() { acked <- n }()
		for {
			select {
			case <-stop:
				return
			default:
			}
			topic := fmt.Sprintf("%s/devices/dev%d/telemetry", id, n%3)
			if err := pub.publish(topic, 1, false, []byte(strconv.Itoa(n))); err != nil {
				t.Errorf("publish %d: %v", n, err)
				return
			}
			n++
			time.Sleep(3 * time.Millisecond)
		}
	}()

	time.Sleep(1500 * time.Millisecond)
	first.signal(t, syscall.SIGTERM)
	assert.Equal(t, 0, first.wait(t, 30*time.Second), "graceful stop exits 0")
	time.Sleep(300 * time.Millisecond) // the broker queues these for the session
	close(stop)
	total := <-acked
	require.Positive(t, total)
	beforeRestart := dn.TotalMessages()

	startBridge(t, cfg, env)
	got := func() map[int]int {
		seen := map[int]int{}
		for _, m := range allMessages(dn) {
			if strings.HasPrefix(m.Attributes["mqtt.topic"], id+"/devices/") {
				n, err := strconv.Atoi(string(m.Payload))
				if err == nil {
					seen[n]++
				}
			}
		}
		return seen
	}
	require.Eventually(t, func() bool { return len(got()) >= total }, 40*time.Second, 100*time.Millisecond,
		"received %d distinct of %d", len(got()), total)

	seen := got()
	var missing []int
	dups := 0
	for n := range total {
		if seen[n] == 0 {
			missing = append(missing, n)
		}
		if seen[n] > 1 {
			dups += seen[n] - 1
		}
	}
	assert.Empty(t, missing, "lost messages")
	t.Logf("published %d; %d in Danube before the restart; after it all delivered with %d duplicates (at-least-once)",
		total, beforeRestart, dups)
}
