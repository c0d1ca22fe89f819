package demo

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/benthos-danube/benthos-danube/config"
	"github.com/benthos-danube/benthos-danube/internal/danube"
	"github.com/benthos-danube/benthos-danube/internal/danube/danubetest"

	// The components config/danube-to-mqtt.yaml uses.
	_ "github.com/benthos-danube/benthos-danube/input/danube"
	_ "github.com/benthos-danube/benthos-danube/output/mqtt"
)

// The demo's command round trip: an application sends a command for one
// device to a Danube topic; the downlink (the embedded
// config/danube-to-mqtt.yaml) publishes it to the device's MQTT command
// topic; the simulated device answers on its telemetry topic, which the
// uplink brings back to Danube.
const (
	commandTopic   = "/iot/device_commands"
	commandDevice  = "device001"
	commandEvery   = 2 * time.Second
	replyTelemetry = "devices/" + commandDevice + "/telemetry"
)

// downlink runs the command round trip.
type downlink struct {
	strm     *service.Stream
	done     chan struct{} // closed when the pipeline stopped; then err is set
	err      error
	client   *danube.Client
	producer *danube.Producer
	device   paho.Client

	sent, delivered, replied atomic.Int64
	mu                       sync.Mutex
	sentAt                   map[int64]time.Time
	lastRTT                  time.Duration // command sent -> reply in Danube
	seenReply                map[int64]bool
}

// startDownlink creates the command topic (a consumer never creates one),
// starts the downlink pipeline and the simulated device.
func startDownlink(mqttURL string, dn *danubetest.Server, spool string, logger *slog.Logger) (*downlink, error) {
	d := &downlink{done: make(chan struct{}), sentAt: map[int64]time.Time{}, seenReply: map[int64]bool{}}
	var err error
	if d.client, err = danube.NewClient(dn.URL()); err != nil {
		return nil, fmt.Errorf("connecting the command sender to Danube: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	d.producer, err = d.client.NewProducer(ctx, danube.ProducerConfig{Topic: commandTopic, Name: "demo-commands", Dispatch: danube.DispatchReliable})
	if err != nil {
		d.close()
		return nil, fmt.Errorf("creating the command producer: %w", err)
	}
	if err := d.startDevice(mqttURL); err != nil {
		d.close()
		return nil, err
	}
	d.strm, err = buildStreamEnv(config.DanubeToMQTT, map[string]string{
		"MQTT_URL":              mqttURL,
		"DANUBE_URL":            dn.URL(),
		"MQTT_CLIENT_ID":        "benthos-danube-demo-downlink",
		"HTTP_ENABLED":          "false",
		"DANUBE_COMMANDS_TOPIC": commandTopic,
		"DEAD_LETTER_SPOOL_DIR": spool,
	}, logger)
	if err != nil {
		d.close()
		return nil, err
	}
	go func() {
		d.err = d.strm.Run(context.Background())
		close(d.done)
	}()
	return d, nil
}

// startDevice connects the simulated device: it answers every command on
// its telemetry topic.
func (d *downlink) startDevice(mqttURL string) error {
	opts := paho.NewClientOptions().AddBroker(mqttURL).SetClientID("demo-" + commandDevice).
		SetCleanSession(true).SetAutoReconnect(true).SetConnectTimeout(5 * time.Second).
		SetOnConnectHandler(func(c paho.Client) {
			c.Subscribe("devices/"+commandDevice+"/commands", 1, func(c paho.Client, m paho.Message) {
				d.delivered.Add(1)
				var cmd struct {
					ID      int64  `json:"id"`
					Command string `json:"command"`
				}
				_ = json.Unmarshal(m.Payload(), &cmd)
				reply, _ := json.Marshal(map[string]any{"reply_to": cmd.ID, "command": cmd.Command, "status": "done", "timestamp": time.Now().Unix()})
				// Not waited for here: the handler runs on paho's router.
				c.Publish(replyTelemetry, 1, false, reply)
				d.replied.Add(1)
			})
		})
	d.device = paho.NewClient(opts)
	tok := d.device.Connect()
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		return fmt.Errorf("connecting the simulated device to %s: %v", mqttURL, tok.Error())
	}
	return nil
}

// run sends a command every interval until ctx is done.
func (d *downlink) run(ctx context.Context, interval time.Duration, log *slog.Logger) {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	commands := []string{"reboot", "set_interval", "blink", "report_config"}
	for id := int64(1); ; id++ {
		body, _ := json.Marshal(map[string]any{"id": id, "command": commands[int(id)%len(commands)]})
		d.mu.Lock()
		d.sentAt[id] = time.Now()
		d.mu.Unlock()
		sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := d.producer.Send(sctx, danube.Message{Payload: body, Attributes: map[string]string{"device_id": commandDevice}})
		cancel()
		if err == nil {
			d.sent.Add(1)
		} else if ctx.Err() == nil {
			log.Warn("sending a command failed", "error", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// lines is the round trip's part of the live view: the replies found in
// Danube and the latest round trip time.
func (d *downlink) lines(srv *danubetest.Server) []string {
	back := 0
	for _, name := range srv.Topics() {
		if !strings.HasPrefix(name, "/iot/device_telemetry") {
			continue
		}
		for _, m := range srv.Messages(name) {
			var r struct {
				ReplyTo int64 `json:"reply_to"`
			}
			if json.Unmarshal(m.Payload, &r) != nil || r.ReplyTo == 0 {
				continue
			}
			back++
			d.mu.Lock()
			if !d.seenReply[r.ReplyTo] {
				d.seenReply[r.ReplyTo] = true
				if at, ok := d.sentAt[r.ReplyTo]; ok {
					d.lastRTT = time.Since(at)
					delete(d.sentAt, r.ReplyTo)
				}
			}
			d.mu.Unlock()
		}
	}
	d.mu.Lock()
	rtt := d.lastRTT
	d.mu.Unlock()
	line := fmt.Sprintf("commands sent to Danube %s: %d   delivered to %s over MQTT: %d   replies back in Danube: %d",
		commandTopic, d.sent.Load(), commandDevice, d.delivered.Load(), back)
	if rtt > 0 {
		line += fmt.Sprintf("   (last reply within %s of its command)", rtt.Round(time.Millisecond))
	}
	return []string{"Downlink (config/danube-to-mqtt.yaml): Danube -> MQTT -> device -> MQTT -> Danube", line}
}

// stopped is closed when the downlink pipeline stopped; err then says why.
func (d *downlink) stopped() <-chan struct{} { return d.done }

func (d *downlink) close() {
	if d.strm != nil {
		_ = d.strm.StopWithin(10 * time.Second)
		<-d.done
	}
	if d.device != nil {
		d.device.Disconnect(250)
	}
	if d.producer != nil {
		_ = d.producer.Close()
	}
	if d.client != nil {
		_ = d.client.Close()
	}
}
