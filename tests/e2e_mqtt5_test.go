package tests

import (
	"context"
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	paho5 "github.com/eclipse/paho.golang/paho"
	"github.com/stretchr/testify/require"

	"github.com/benthos-danube/benthos-danube/internal/danube/danubetest"
	"github.com/benthos-danube/benthos-danube/internal/mqtttest"
	"github.com/benthos-danube/benthos-danube/tests/harness"
)

// deviceMessage is message seq of device dev, with MQTT 5 properties.
func deviceMessage(topic string, dev, seq int) *paho5.Publish {
	return &paho5.Publish{Topic: topic, QoS: 1, Payload: []byte(fmt.Sprintf("dev%d-%04d", dev, seq)), Properties: &paho5.PublishProperties{
		ContentType:     "application/json",
		ResponseTopic:   fmt.Sprintf("devices/dev%d/reply", dev),
		CorrelationData: []byte{byte(dev), byte(seq >> 8), byte(seq)},
		User:            paho5.UserProperties{{Key: "schema", Value: "telemetry-v2"}, {Key: "seq", Value: strconv.Itoa(seq)}},
	}}
}

// TestE2EMQTT5 runs the shipped config/mqtt5.yaml against Mosquitto (a
// private broker, restarted mid-test) and mochi, both in MQTT 5 mode: the
// properties arrive in Danube under Danube Edge's names, nothing is missing
// across a SIGKILL of the bridge (and a broker restart), every device keeps
// its order, and a retained message is forwarded once across the restart.
func TestE2EMQTT5(t *testing.T) {
	type broker struct {
		name    string
		url     string
		restart func() // nil: not restarted
		// ordered: the broker keeps a topic's order across a reconnect.
		// mochi 2.7 resends the messages it queued for the session
		// (phase 2) interleaved with newer ones, so order is checked on
		// Mosquitto only; nothing may be missing on either.
		ordered bool
	}
	var brokers []broker
	if harness.MosquittoAvailable() {
		m := harness.NewTestMosquitto(t, harness.MosquittoOptions{})
		brokers = append(brokers, broker{name: "mosquitto", url: m.URL(), restart: func() { require.NoError(t, m.Restart(context.Background())) }, ordered: true})
	} else {
		t.Log("mosquitto not on PATH: MQTT 5 against mochi only")
	}
	brokers = append(brokers, broker{name: "mochi", url: mqtttest.NewTestServer(t).URL()})

	for _, b := range brokers {
		t.Run(b.name, func(t *testing.T) {
			id := uniqueID(t)
			dn := danubeBroker(t)
			cfg := configFile(t, "mqtt5.yaml", id)
			env := bridgeEnv(b.url, dn.URL(), id+"-bridge")
			topic := func(dev int) string { return fmt.Sprintf("%s/devices/dev%d/telemetry", id, dev) }
			const devices, perPhase = 3, 40

			pub := mqtttest.NewPublisher5(t, b.url, id+"-pub")
			ret := &paho5.Publish{Topic: id + "/devices/state/events", QoS: 1, Retain: true, Payload: []byte("retained-state"),
				Properties: &paho5.PublishProperties{User: paho5.UserProperties{{Key: "kind", Value: "state"}}}}
			pub.Publish(t, ret)
			t.Cleanup(func() { // leave no retained state behind
				p := mqtttest.NewPublisher5(t, b.url, id+"-clean")
				p.Publish(t, &paho5.Publish{Topic: ret.Topic, QoS: 1, Retain: true})
			})

			seq := 0
			phase := func(p *mqtttest.Publisher5) {
				for range perPhase {
					for d := range devices {
						p.Publish(t, deviceMessage(topic(d), d, seq))
					}
					seq++
				}
			}
			count := func() int {
				n := 0
				for _, m := range allMessages(dn) {
					if strings.HasPrefix(string(m.Payload), "dev") {
						n++
					}
				}
				return n
			}

			bridge := startBridge(t, cfg, env)
			require.Eventually(t, func() bool { return count() > 0 || len(allMessages(dn)) > 0 }, 20*time.Second, 50*time.Millisecond, "the bridge forwards")
			phase(pub)
			require.Eventually(t, func() bool { return count() >= perPhase*devices/2 }, 20*time.Second, 20*time.Millisecond)
			bridge.signal(t, syscall.SIGKILL)
			bridge.wait(t, 10*time.Second)
			phase(pub) // queued for the session while the bridge is down
			if b.restart != nil {
				b.restart()
				pub = mqtttest.NewPublisher5(t, b.url, id+"-pub2")
			}
			startBridge(t, cfg, env)
			phase(pub)
			want := 3 * perPhase * devices
			require.Eventually(t, func() bool { return uniqueDevicePayloads(dn) == want }, 60*time.Second, 50*time.Millisecond,
				"every device message after the SIGKILL (want %d)", want)
			// A probe after the restart's replays: the retained message is
			// still there once.
			pub.Publish(t, deviceMessage(topic(0), 0, seq))
			require.Eventually(t, func() bool { return uniqueDevicePayloads(dn) == want+1 }, 20*time.Second, 50*time.Millisecond)

			retained, disorder := 0, 0
			last := map[string]int{}
			for _, m := range allMessages(dn) {
				p := string(m.Payload)
				if p == "retained-state" {
					retained++
					require.Equal(t, "state", m.Attributes["mqtt.user.kind"])
					continue
				}
				if !strings.HasPrefix(p, "dev") {
					continue
				}
				a := m.Attributes
				dev, s := p[:4], 0
				_, err := fmt.Sscanf(p[5:], "%d", &s)
				require.NoError(t, err)
				require.Equal(t, "application/json", a["mqtt.content_type"], p)
				require.Equal(t, "devices/"+dev+"/reply", a["mqtt.response_topic"], p)
				require.Equal(t, base64.StdEncoding.EncodeToString([]byte{byte(dev[3] - '0'), byte(s >> 8), byte(s)}), a["mqtt.correlation_data"], p)
				require.Equal(t, "telemetry-v2", a["mqtt.user.schema"], p)
				require.Equal(t, strconv.Itoa(s), a["mqtt.user.seq"], p)
				require.Equal(t, "1", a["mqtt.qos"], p)
				// Per device order: a redelivery repeats an earlier message,
				// but no message arrives before an earlier one first did.
				if prev, ok := last[dev]; ok && s > prev+1 {
					if b.ordered {
						t.Fatalf("%s: %d arrived after %d: a message is missing or out of order", dev, s, prev)
					}
					disorder++
				}
				last[dev] = max(last[dev], s)
			}
			require.Equal(t, 1, retained, "the retained message reaches Danube once across the restart")
			t.Logf("%d device messages, %d in total, %d out of order (mochi's resend of queued messages)", want+1, len(allMessages(dn)), disorder)
		})
	}
}

// uniqueDevicePayloads counts the distinct device messages in srv.
func uniqueDevicePayloads(srv *danubetest.Server) int {
	seen := map[string]bool{}
	for _, m := range allMessages(srv) {
		if strings.HasPrefix(string(m.Payload), "dev") {
			seen[string(m.Payload)] = true
		}
	}
	return len(seen)
}
