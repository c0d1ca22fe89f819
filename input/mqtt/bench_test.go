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
			b.Fatalf("received %d of %d", got.Load()-base, n)
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

// BenchmarkInputVsRawPaho compares the mqtt input feeding a consumer that
// drops every message with a raw paho subscriber (auto-ack, ordered router),
// under the same paced load from the same broker: mochi in-process, or
// MQTT_TEST_URL when set. It reports msgs/s for each and, on the mqtt_input
// runs, "ratio" = input rate / raw paho rate of the preceding raw run.
//
//	go test ./input/mqtt/ -run '^$' -bench BenchmarkInputVsRawPaho -benchtime 50000x -count 3
func BenchmarkInputVsRawPaho(b *testing.B) {
	url := externalBrokerURL(b)
	if url == "" {
		url = newTestBroker(b, false).url()
	}
	for _, qos := range []byte{0, 1} {
		var rawRate float64
		b.Run(fmt.Sprintf("raw_paho_qos%d", qos), func(b *testing.B) {
			id := runID(b)
			got := newBenchCounter()
			o := paho.NewClientOptions().AddBroker(url).SetClientID(id + "-sub").SetCleanSession(true)
			sub := paho.NewClient(o)
			if tok := sub.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
				b.Fatalf("subscriber: %v", tok.Error())
			}
			defer sub.Disconnect(100)
			if tok := sub.Subscribe(id+"/#", qos, func(paho.Client, paho.Message) { got.received() }); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
				b.Fatalf("subscribe: %v", tok.Error())
			}
			pub := benchPublisher(b, url, id+"-pub")
			b.ResetTimer()
			start := time.Now()
			benchLoad(b, pub, id+"/t", qos, b.N, got)
			rawRate = float64(b.N) / time.Since(start).Seconds()
			b.ReportMetric(rawRate, "msgs/s")
		})
		b.Run(fmt.Sprintf("mqtt_input_qos%d", qos), func(b *testing.B) {
			id := runID(b)
			got := newBenchCounter()
			ts := startStream(b, fmt.Sprintf(`
urls: [ %s ]
client_id: %s-in
topic_mappings:
  - mqtt_topic: %s/#
    danube_topic: /bench/t
    qos: %d
`, url, id, id, qos), func(context.Context, *service.Message) error {
				got.received()
				return nil
			})
			ts.waitConnected(b)
			pub := benchPublisher(b, url, id+"-pub")
			b.ResetTimer()
			start := time.Now()
			benchLoad(b, pub, id+"/t", qos, b.N, got)
			rate := float64(b.N) / time.Since(start).Seconds()
			b.ReportMetric(rate, "msgs/s")
			if rawRate > 0 {
				b.ReportMetric(rate/rawRate, "ratio")
			}
			b.StopTimer()
			if d := ts.in.dropped0.Load(); d > 0 {
				b.Fatalf("%d QoS 0 messages dropped", d)
			}
		})
	}
}
