package mqttout

import (
	"context"
	"testing"
	"time"

	"github.com/benthos-danube/benthos-danube/internal/mqtttest"
)

// BenchmarkTransports publishes pipelined QoS 1 messages (up to window
// awaiting their PUBACK; over MQTT 5 also at most the broker's Receive
// Maximum, 20 on a default Mosquitto 2) through each transport against MQTT_TEST_URL, side by side:
//
//	MQTT_TEST_URL=tcp://127.0.0.1:1883 go test -run '^$' -bench Transports ./output/mqtt/
func BenchmarkTransports(b *testing.B) {
	url := externalBrokerURL(b)
	if url == "" {
		b.Skip("MQTT_TEST_URL not set")
	}
	for _, tc := range []struct {
		name   string
		dial   dialFunc
		window int
	}{{"v3.1.1/window16", dial311, 16}, {"v5/window16", dial5, 16}, {"v3.1.1/window64", dial311, 64}, {"v5/window64", dial5, 64}} {
		b.Run(tc.name, func(b *testing.B) {
			id := mqtttest.RunID(b)
			tr, err := tc.dial(context.Background(), connConfig{urls: []string{url}, clientID: id, keepalive: 30 * time.Second, connectTimeout: 5 * time.Second, writeTimeout: 10 * time.Second})
			if err != nil {
				b.Fatal(err)
			}
			defer tr.close(0)
			payload := make([]byte, 100)
			window := make(chan delivery, tc.window)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if len(window) == cap(window) {
					d := <-window
					<-d.Done()
					if err := d.Error(); err != nil {
						b.Fatal(err)
					}
				}
				window <- tr.publish(publication{topic: "bench/" + id, qos: 1, payload: payload})
			}
			for len(window) > 0 {
				d := <-window
				<-d.Done()
				if err := d.Error(); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
		})
	}
}
