package demo

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"sync/atomic"
	"time"

	paho "github.com/eclipse/paho.golang/paho"

	"github.com/benthos-danube/benthos-danube/internal/mqtttest"
)

// sensor is one simulated publisher: an MQTT topic, its QoS, its MQTT 5
// user properties and a payload generator.
type sensor struct {
	topic   string
	qos     byte
	payload func(seq int, now time.Time) map[string]any
	user    paho.UserProperties
}

// fleet publishes readings of simulated sensors over one real MQTT 5
// connection, each with MQTT 5 properties: content type application/json and
// user properties naming the schema (and, for devices, the device and its
// firmware); devices also carry a response topic. The topics cover the four
// mapped families of config/mqtt-to-danube.yaml, including the overlap of
// sensors/+/zone1 and sensors/temp/#, and the device topics of
// config/mqtt5.yaml. A 3.1.1 subscriber gets the messages without the
// properties.
type fleet struct {
	client    *paho.Client
	sensors   []sensor
	published atomic.Int64
	failed    atomic.Int64
}

// fleetTopics lists the simulated topics for n devices.
func fleetSensors(devices int) []sensor {
	wave := func(base, amp float64, seq int) float64 {
		v := base + amp*math.Sin(float64(seq)/10) + rand.Float64()*amp/5
		return math.Round(v*10) / 10
	}
	s := []sensor{
		{"sensors/temp/zone1", 1, func(seq int, now time.Time) map[string]any {
			return map[string]any{"temperature": wave(21, 2, seq), "unit": "celsius", "timestamp": now.Unix()}
		}, nil},
		{"sensors/humidity/zone1", 1, func(seq int, now time.Time) map[string]any {
			return map[string]any{"humidity": wave(45, 5, seq), "unit": "percent", "timestamp": now.Unix()}
		}, nil},
		{"sensors/temp/zone2", 1, func(seq int, now time.Time) map[string]any {
			return map[string]any{"temperature": wave(18, 3, seq), "unit": "celsius", "timestamp": now.Unix()}
		}, nil},
		{"sensors/temp/zone3/rack7", 1, func(seq int, now time.Time) map[string]any {
			return map[string]any{"temperature": wave(30, 1, seq), "unit": "celsius", "timestamp": now.Unix()}
		}, nil},
		{"debug/gateway-1/heartbeat", 0, func(seq int, now time.Time) map[string]any {
			return map[string]any{"uptime_s": seq, "timestamp": now.Unix()}
		}, nil},
	}
	for i := range s {
		s[i].user = paho.UserProperties{{Key: "schema", Value: "reading-v1"}}
	}
	for i := 1; i <= devices; i++ {
		dev := fmt.Sprintf("device%03d", i)
		s = append(s, sensor{"devices/" + dev + "/telemetry", 1, func(seq int, now time.Time) map[string]any {
			return map[string]any{"battery": max(0, 100-seq/20), "signal": -50 - rand.IntN(30), "seq": seq, "timestamp": now.Unix()}
		}, paho.UserProperties{{Key: "schema", Value: "telemetry-v2"}, {Key: "device", Value: dev}, {Key: "firmware", Value: "1.4." + fmt.Sprint(i%3)}}})
	}
	return s
}

// publish sends one message and waits for the broker's PUBACK (QoS 1).
func (f *fleet) publish(ctx context.Context, s sensor, body []byte) error {
	props := &paho.PublishProperties{ContentType: "application/json", User: s.user}
	if len(body) > 0 && body[0] != '{' {
		props.ContentType = "application/octet-stream"
	}
	if s.qos > 0 {
		props.ResponseTopic = s.topic + "/reply"
	}
	_, err := f.client.Publish(ctx, &paho.Publish{Topic: s.topic, QoS: s.qos, Payload: body, Properties: props})
	return err
}

// newFleet connects the fleet to the demo's embedded broker (which never
// restarts, so the fleet does not reconnect).
func newFleet(mqttURL string, devices int) (*fleet, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := mqtttest.Connect5(ctx, mqttURL, "demo-fleet")
	if err != nil {
		return nil, fmt.Errorf("connecting the simulated fleet: %w", err)
	}
	return &fleet{client: c, sensors: fleetSensors(devices)}, nil
}

// poisonSeq is the round in which the fleet publishes one message that can
// never be delivered: a 5 MiB "firmware dump", over Danube's 4 MiB limit. It
// goes to /default/dead_letter (whole in the spool), and the fleet's other
// messages flow on behind it.
const (
	poisonSeq   = 2
	poisonTopic = "devices/device001/telemetry"
	poisonSize  = 5 << 20
)

// run publishes one reading per sensor every interval until ctx is done.
func (f *fleet) run(ctx context.Context, interval time.Duration, log *slog.Logger) {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for seq := 0; ; seq++ {
		now := time.Now()
		if seq == poisonSeq {
			poison := sensor{topic: poisonTopic, qos: 1, user: paho.UserProperties{{Key: "schema", Value: "firmware-dump"}}}
			if err := f.publish(ctx, poison, make([]byte, poisonSize)); err != nil {
				if ctx.Err() != nil {
					return
				}
				log.Warn("fleet publish failed", "topic", poisonTopic, "error", err)
			}
		}
		for _, s := range f.sensors {
			body, _ := json.Marshal(s.payload(seq, now))
			if err := f.publish(ctx, s, body); err != nil {
				if ctx.Err() != nil {
					return
				}
				f.failed.Add(1)
				log.Warn("fleet publish failed", "topic", s.topic, "error", err)
				continue
			}
			f.published.Add(1)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

func (f *fleet) close() { _ = f.client.Disconnect(&paho.Disconnect{}) }
