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

	paho "github.com/eclipse/paho.mqtt.golang"
)

// sensor is one simulated publisher: an MQTT topic, its QoS and a payload
// generator.
type sensor struct {
	topic   string
	qos     byte
	payload func(seq int, now time.Time) map[string]any
}

// fleet publishes readings of simulated sensors over one real MQTT
// connection. The topics cover the four mapped families of
// config/mqtt-to-danube.yaml, including the overlap of sensors/+/zone1 and
// sensors/temp/#.
type fleet struct {
	client    paho.Client
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
		}},
		{"sensors/humidity/zone1", 1, func(seq int, now time.Time) map[string]any {
			return map[string]any{"humidity": wave(45, 5, seq), "unit": "percent", "timestamp": now.Unix()}
		}},
		{"sensors/temp/zone2", 1, func(seq int, now time.Time) map[string]any {
			return map[string]any{"temperature": wave(18, 3, seq), "unit": "celsius", "timestamp": now.Unix()}
		}},
		{"sensors/temp/zone3/rack7", 1, func(seq int, now time.Time) map[string]any {
			return map[string]any{"temperature": wave(30, 1, seq), "unit": "celsius", "timestamp": now.Unix()}
		}},
		{"debug/gateway-1/heartbeat", 0, func(seq int, now time.Time) map[string]any {
			return map[string]any{"uptime_s": seq, "timestamp": now.Unix()}
		}},
	}
	for i := 1; i <= devices; i++ {
		s = append(s, sensor{fmt.Sprintf("devices/device%03d/telemetry", i), 1, func(seq int, now time.Time) map[string]any {
			return map[string]any{"battery": max(0, 100-seq/20), "signal": -50 - rand.IntN(30), "seq": seq, "timestamp": now.Unix()}
		}})
	}
	return s
}

func newFleet(mqttURL string, devices int) (*fleet, error) {
	opts := paho.NewClientOptions().
		AddBroker(mqttURL).
		SetClientID("demo-fleet").
		SetCleanSession(true).
		SetAutoReconnect(true).
		SetConnectRetry(true).
		SetConnectTimeout(5 * time.Second).
		SetOrderMatters(false)
	c := paho.NewClient(opts)
	tok := c.Connect()
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		c.Disconnect(0)
		return nil, fmt.Errorf("connecting the simulated fleet to %s: %v", mqttURL, tok.Error())
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
			tok := f.client.Publish(poisonTopic, 1, false, make([]byte, poisonSize))
			select {
			case <-tok.Done():
			case <-ctx.Done():
				return
			}
			if err := tok.Error(); err != nil {
				log.Warn("fleet publish failed", "topic", poisonTopic, "error", err)
			}
		}
		for _, s := range f.sensors {
			body, _ := json.Marshal(s.payload(seq, now))
			tok := f.client.Publish(s.topic, s.qos, false, body)
			select {
			case <-tok.Done():
			case <-ctx.Done():
				return
			}
			if err := tok.Error(); err != nil {
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

func (f *fleet) close() { f.client.Disconnect(250) }
