package mqtt

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/redpanda-data/benthos/v4/public/service"
)

// benchWindow bounds published-but-not-received messages, so neither the
// broker's queues nor the input's QoS 0 bound drop anything.
const benchWindow = 500

// benchCounter counts received messages and releases publish credits.
type benchCounter struct {
	n       atomic.Int64
	credits chan struct{}
}

func newBenchCounter() *benchCounter {
	return &benchCounter{credits: make(chan struct{}, benchWindow)}
}

func (c *benchCounter) received() {
	c.n.Add(1)
	select {
	case <-c.credits:
	default:
	}
}

// benchLoad publishes n messages of 64 bytes at qos to topic, never more
// than benchWindow ahead of the receiver, and returns when all n were
// received.
func benchLoad(b *testing.B, pub paho.Client, topic string, qos byte, n int, c *benchCounter) {
	payload := []byte(strings.Repeat("x", 64))
	got := &c.n
	base := got.Load()
	for i := 0; i < n; i++ {
		c.credits <- struct{}{}
		pub.Publish(topic, qos, false, payload)
	}
	deadline := time.Now().Add(60 * time.Second)
	for got.Load()-base < int64(n) {
		if time.Now().After(deadline) {
			b.Fatalf("%s: received %d of %d", topic, got.Load()-base, n)
		}
		time.Sleep(100 * time.Microsecond)
	}
}

func benchPublisher(b *testing.B, url, id string) paho.Client {
	o := paho.NewClientOptions().AddBroker(url).SetClientID(id).SetCleanSession(true).SetOrderMatters(false)
	c := paho.NewClient(o)
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		b.Fatalf("publisher: %v", tok.Error())
	}
	b.Cleanup(func() { c.Disconnect(100) })
	return c
}

// benchRounds is how many times BenchmarkInputVsRawPaho alternates the raw
// subscriber and the input. Alternating, and summing the rounds, keeps a
// noisy neighbour from landing on one side of the ratio only.
const benchRounds = 3

// BenchmarkInputVsRawPaho compares the mqtt input feeding a consumer that
// drops every message with a raw paho subscriber (auto-ack, ordered router),
// under the same paced load from the same broker: mochi in-process, or
// MQTT_TEST_URL when set. Per QoS it runs benchRounds rounds of b.N messages
// to each side, alternating which side goes first, and reports the msgs/s of
// each over all rounds and "ratio" = input rate / raw paho rate.
//
//	MQTT_TEST_URL=tcp://127.0.0.1:1883 go test ./input/mqtt/ -run '^$' -bench BenchmarkInputVsRawPaho -benchtime 100000x -count 3
func BenchmarkInputVsRawPaho(b *testing.B) {
	url := externalBrokerURL(b)
	if url == "" {
		url = newTestBroker(b, false).url()
	}
	for _, qos := range []byte{0, 1} {
		b.Run(fmt.Sprintf("qos%d", qos), func(b *testing.B) {
			id := runID(b)

			// The raw paho subscriber.
			rawGot := newBenchCounter()
			o := paho.NewClientOptions().AddBroker(url).SetClientID(id + "-sub").SetCleanSession(true)
			sub := paho.NewClient(o)
			if tok := sub.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
				b.Fatalf("subscriber: %v", tok.Error())
			}
			defer sub.Disconnect(100)
			if tok := sub.Subscribe(id+"/raw/#", qos, func(paho.Client, paho.Message) { rawGot.received() }); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
				b.Fatalf("subscribe: %v", tok.Error())
			}

			// The mqtt input.
			inGot := newBenchCounter()
			ts := startStream(b, fmt.Sprintf(`
urls: [ %s ]
client_id: %s-in
topic_mappings:
  - mqtt_topic: %s/in/#
    danube_topic: /bench/t
    qos: %d
`, url, id, id, qos), func(context.Context, *service.Message) error {
				inGot.received()
				return nil
			})
			ts.waitConnected(b)

			pub := benchPublisher(b, url, id+"-pub")
			var rawTime, inTime time.Duration
			measure := func(topic string, c *benchCounter) time.Duration {
				start := time.Now()
				benchLoad(b, pub, topic, qos, b.N, c)
				return time.Since(start)
			}
			b.ResetTimer()
			for round := range benchRounds {
				if round%2 == 0 {
					rawTime += measure(id+"/raw/t", rawGot)
					inTime += measure(id+"/in/t", inGot)
				} else {
					inTime += measure(id+"/in/t", inGot)
					rawTime += measure(id+"/raw/t", rawGot)
				}
			}
			b.StopTimer()
			n := float64(benchRounds * b.N)
			rawRate, inRate := n/rawTime.Seconds(), n/inTime.Seconds()
			b.ReportMetric(rawRate, "raw_msgs/s")
			b.ReportMetric(inRate, "input_msgs/s")
			b.ReportMetric(inRate/rawRate, "ratio")
			if d := ts.in.dropped0.Load(); d > 0 {
				b.Fatalf("%d QoS 0 messages dropped", d)
			}
		})
	}
}

// BenchmarkMetadataKeys shows why mapped messages carry no mqtt_filter: the
// ninth metadata key makes Benthos grow the message's metadata map.
//
//	go test ./input/mqtt/ -run '^$' -bench BenchmarkMetadataKeys -benchmem
func BenchmarkMetadataKeys(b *testing.B) {
	keys := []string{"mqtt_topic", "mqtt_qos", "mqtt_retained", "mqtt_duplicate", "mqtt_message_id",
		"danube_partitions", "danube_reliable_dispatch", "danube_topic", "mqtt_filter"}
	for _, n := range []int{8, 9} {
		b.Run(fmt.Sprintf("keys=%d", n), func(b *testing.B) {
			for b.Loop() {
				m := service.NewMessage(nil)
				for i, k := range keys[:n] {
					m.MetaSetMut(k, i)
				}
			}
		})
	}
}
