// Command minibridge is the minimal hand-written MQTT → Danube bridge that
// the end-to-end benchmark (tests/bench) runs beside benthos-danube as a
// ceiling: the same parts (paho, our Danube client) and the same guarantees,
// with nothing else.
//
//   - paho with manual acks; PUBACKs go out in arrival order per connection
//     [MQTT-4.6.0-2], and only after Danube acknowledged the message;
//   - each message is sent with Producer.Send, routing key = MQTT topic,
//     attributes = what the danube output writes by default: the mqtt
//     input's metadata as strings under the connector names (mqtt.topic …,
//     source=mqtt);
//   - one send in flight per MQTT topic and -inflight in all; when that many
//     messages are in the bridge, the paho handler (paho's router goroutine)
//     blocks, so QoS 0 is back-pressured into the broker instead of shed;
//   - a persistent session (by default), a fresh client per connection,
//     subscriptions sent again on every connect.
//
// It logs "MQTT connection lost" on every loss and "connected" on every
// connection.
//
//	minibridge -mqtt tcp://127.0.0.1:1883 -danube 127.0.0.1:6650 -client-id mini \
//	  -map 'sensors/+=/default/sensors,qos=1' [-map ...] [-pprof 127.0.0.1:6060]
package main

import (
	"context"
	"flag"
	"log"
	"net/http"
	_ "net/http/pprof" // served only with -pprof
	"os"
	"os/signal"
	"syscall"
	"time"
)

type config struct {
	mqttURL     string
	danubeURL   string
	clientID    string
	clean       bool
	keepalive   time.Duration
	connTimeout time.Duration
	inFlight    int
	sendTimeout time.Duration
	maps        []*mapping
}

func main() {
	var cfg config
	flag.StringVar(&cfg.mqttURL, "mqtt", "tcp://127.0.0.1:1883", "MQTT broker URL")
	flag.StringVar(&cfg.danubeURL, "danube", "127.0.0.1:6650", "Danube broker URL")
	flag.StringVar(&cfg.clientID, "client-id", "minibridge", "MQTT client id")
	flag.BoolVar(&cfg.clean, "clean", false, "clean session (default: persistent)")
	flag.DurationVar(&cfg.keepalive, "keepalive", 10*time.Second, "MQTT keepalive")
	flag.DurationVar(&cfg.connTimeout, "connect-timeout", 30*time.Second, "MQTT connect, subscribe and write timeout")
	flag.IntVar(&cfg.inFlight, "inflight", 64, "messages in the bridge at most (queued behind their topic or being sent)")
	flag.DurationVar(&cfg.sendTimeout, "send-timeout", 10*time.Second, "bound of one Danube send (then it is tried again)")
	flag.Func("map", "FILTER=TOPIC[,qos=N][,partitions=N][,reliable=BOOL] (repeatable)", func(s string) error {
		mp, err := parseMapping(s)
		if err == nil {
			cfg.maps = append(cfg.maps, mp)
		}
		return err
	})
	pprofAddr := flag.String("pprof", "", "serve net/http/pprof on this address")
	flag.Parse()
	log.SetFlags(log.LstdFlags | log.Lmicroseconds)
	if len(cfg.maps) == 0 {
		log.Fatal("minibridge: at least one -map is required")
	}
	if cfg.inFlight < 1 {
		log.Fatal("minibridge: -inflight must be at least 1")
	}
	if *pprofAddr != "" {
		go func() { log.Printf("pprof: %v", http.ListenAndServe(*pprofAddr, nil)) }()
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, cfg); err != nil {
		log.Printf("minibridge: %v", err)
		os.Exit(1)
	}
}
