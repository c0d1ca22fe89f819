package mqtt

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/packets"
	paho5 "github.com/eclipse/paho.golang/paho"
	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/benthos-danube/benthos-danube/tests/harness"
)

// BenchmarkInputV5VsRawPahoGolang is BenchmarkInputVsRawPaho over MQTT 5:
// the mqtt input with protocol_version 5 into a dropping consumer against a
// raw paho.golang subscriber (automatic acks), same paced 3.1.1 publisher,
// same broker, alternating rounds.
//
//	MQTT_TEST_URL=tcp://127.0.0.1:1883 go test ./input/mqtt/ -run '^$' -bench BenchmarkInputV5VsRawPahoGolang -benchtime 50000x -count 3
func BenchmarkInputV5VsRawPahoGolang(b *testing.B) {
	url := externalBrokerURL(b)
	if url == "" {
		url = newTestBroker(b, false).url()
	}
	for _, qos := range []byte{0, 1} {
		b.Run(fmt.Sprintf("qos%d", qos), func(b *testing.B) {
			id := runID(b)
			rawGot := newBenchCounter()
			conn, err := net.DialTimeout("tcp", strings.TrimPrefix(url, "tcp://"), 5*time.Second)
			if err != nil {
				b.Fatal(err)
			}
			sub := paho5.NewClient(paho5.ClientConfig{ClientID: id + "-sub", Conn: packets.NewThreadSafeConn(conn),
				OnPublishReceived: []func(paho5.PublishReceived) (bool, error){func(paho5.PublishReceived) (bool, error) {
					rawGot.received()
					return true, nil
				}}})
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if _, err := sub.Connect(ctx, &paho5.Connect{ClientID: id + "-sub", CleanStart: true, KeepAlive: 30}); err != nil {
				b.Fatal(err)
			}
			defer func() { _ = sub.Disconnect(&paho5.Disconnect{}) }()
			if _, err := sub.Subscribe(ctx, &paho5.Subscribe{Subscriptions: []paho5.SubscribeOptions{{Topic: id + "/raw/#", QoS: qos}}}); err != nil {
				b.Fatal(err)
			}

			inGot := newBenchCounter()
			ts := startStream(b, fmt.Sprintf(`
protocol_version: "5"
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
			if d := ts.metrics.counter(metricQoS0Dropped); d > 0 {
				b.Fatalf("%d QoS 0 messages dropped", d)
			}
		})
	}
}

// BenchmarkV5ReceiveMaximum measures QoS 1 throughput of the input over
// MQTT 5 into a dropping consumer for combinations of its Receive Maximum
// (max_unacked) and Mosquitto's max_inflight_messages, on a private
// Mosquitto (skipped without a mosquitto binary).
//
//	go test ./input/mqtt/ -run '^$' -bench BenchmarkV5ReceiveMaximum -benchtime 20000x
func BenchmarkV5ReceiveMaximum(b *testing.B) {
	if !harness.MosquittoAvailable() {
		b.Skip("no mosquitto binary on PATH")
	}
	for _, inflight := range []int{20, 1000} {
		m, err := harness.StartMosquitto(context.Background(), harness.MosquittoOptions{Dir: b.TempDir(), MaxInflight: inflight})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(m.Close)
		for _, recvMax := range []int{20, 100, 1024} {
			for _, protocol := range []string{protocol311, protocol5} {
				b.Run(fmt.Sprintf("max_inflight=%d/max_unacked=%d/mqtt%s", inflight, recvMax, protocol), func(b *testing.B) {
					id := runID(b)
					got := newBenchCounter()
					ts := startStream(b, fmt.Sprintf(`
protocol_version: %q
urls: [ %s ]
client_id: %s-in
max_unacked: %d
topic_mappings:
  - mqtt_topic: %s/#
    danube_topic: /bench/t
    qos: 1
`, protocol, m.URL(), id, recvMax, id), func(context.Context, *service.Message) error {
						got.received()
						return nil
					})
					ts.waitConnected(b)
					pub := benchPublisher(b, m.URL(), id+"-pub")
					b.ResetTimer()
					start := time.Now()
					benchLoad(b, pub, id+"/t", 1, b.N, got)
					b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
				})
			}
		}
	}
}
