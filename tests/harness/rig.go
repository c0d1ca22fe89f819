package harness

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/benthos-danube/benthos-danube/internal/danube/danubetest"
)

// BridgeConfig is the YAML config of a bridge under test: the mqtt input
// with persistent sessions, the danube output and the HTTP server (pprof).
type BridgeConfig struct {
	HTTPPort  int
	LogLevel  string // default info
	MQTTURL   string
	ClientID  string
	Keepalive string // default 10s
	// InputExtra are extra lines under the mqtt input (e.g.
	// "connect_timeout: 3s").
	InputExtra []string
	// Mappings are topic_mappings entries, each a flow mapping such as
	// `{ mqtt_topic: "a/+", danube_topic: /default/a, qos: 1 }`.
	Mappings  []string
	DanubeURL string
	// OutputExtra are extra lines under the danube output.
	OutputExtra []string
}

// YAML renders the config.
func (c BridgeConfig) YAML() string {
	level, keepalive := c.LogLevel, c.Keepalive
	if level == "" {
		level = "info"
	}
	if keepalive == "" {
		keepalive = "10s"
	}
	var b strings.Builder
	fmt.Fprintf(&b, `http:
  enabled: true
  address: 127.0.0.1:%d
  debug_endpoints: true
logger:
  level: %s
  format: logfmt
shutdown_timeout: 5s
input:
  mqtt:
    urls: [ %q ]
    client_id: %s
    clean_session: false
    keepalive: %s
`, c.HTTPPort, level, c.MQTTURL, c.ClientID, keepalive)
	for _, l := range c.InputExtra {
		b.WriteString("    " + l + "\n")
	}
	b.WriteString("    topic_mappings:\n")
	for _, m := range c.Mappings {
		b.WriteString("      - " + m + "\n")
	}
	fmt.Fprintf(&b, "output:\n  danube:\n    url: %q\n", c.DanubeURL)
	for _, l := range c.OutputExtra {
		b.WriteString("    " + l + "\n")
	}
	return b.String()
}

// RigConfig configures StartRig.
type RigConfig struct {
	// LogDir receives the bridge's logs and Mosquitto's directory (config,
	// persistence, log) under "mosquitto".
	LogDir    string
	Mosquitto MosquittoOptions // Dir is set by StartRig
	// Bridge is the bridge's config; StartRig fills in MQTTURL, DanubeURL
	// and HTTPPort.
	Bridge BridgeConfig
	// Env is added to the bridge's environment.
	Env []string
	// ProbeTopic is the MQTT topic StartRig publishes probes to until one
	// reaches one of the Danube topics ProbeDanube through the bridge.
	ProbeTopic  string
	ProbeDanube []string
}

// Rig is what the chaos soak and the end-to-end benchmark run on: the Danube
// test broker, a Mosquitto subprocess and the bridge binary between them.
type Rig struct {
	Bin      string // the benthos-danube binary
	Danube   *danubetest.Server
	MQTT     *Mosquitto
	Bridge   *Bridge
	HTTPPort int
}

// StartRig builds the binary, starts the Danube test broker, Mosquitto and
// the bridge, and returns once a probe went through the bridge, so that its
// persistent session exists. Everything stops on cleanup; t fails on error.
func StartRig(t testing.TB, ctx context.Context, cfg RigConfig) *Rig {
	t.Helper()
	bctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	bin, err := BuildBinary(bctx, t.TempDir())
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	srv := danubetest.NewTestServer(t)
	mo := cfg.Mosquitto
	mo.Dir = filepath.Join(cfg.LogDir, "mosquitto")
	if err := mkdir(mo.Dir); err != nil {
		t.Fatal(err)
	}
	mq, err := StartMosquitto(ctx, mo)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(mq.Close)
	port, err := FreePort()
	if err != nil {
		t.Fatal(err)
	}
	bc := cfg.Bridge
	bc.MQTTURL, bc.DanubeURL, bc.HTTPPort = mq.URL(), srv.URL(), port
	bridge, err := NewBridge(bin, cfg.LogDir, bc.YAML())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(bridge.Close)
	bridge.Env = cfg.Env
	if err := bridge.Start(); err != nil {
		t.Fatal(err)
	}
	arrived := func(ctx context.Context) error { return WaitAny(ctx, srv, cfg.ProbeDanube...) }
	if err := WaitThrough(ctx, mq.URL(), cfg.ProbeTopic, arrived); err != nil {
		t.Fatalf("bridge not ready: %v\nbridge log:\n%s", err, TailFile(bridge.LogPath(), 4000))
	}
	return &Rig{Bin: bin, Danube: srv, MQTT: mq, Bridge: bridge, HTTPPort: port}
}

// WaitThrough publishes probe messages (device "probe", QoS 1, 10/s, clean
// session) to topic on the MQTT broker at url until arrived returns nil:
// arrived blocks until a probe went through the process under test, or its
// context (90 s at most) is done.
func WaitThrough(ctx context.Context, url, topic string, arrived func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	p, err := NewPublisher(PublisherConfig{URL: url, ClientID: "probe-" + strings.NewReplacer("/", "-", "+", "-", "#", "-").Replace(topic),
		Topic: func(string) string { return topic }, Devices: []string{"probe"}, QoS: 1, Clean: true, Rate: 10})
	if err != nil {
		return err
	}
	defer p.Close()
	pctx, stop := context.WithCancel(ctx)
	defer stop() // before Close
	go p.Run(pctx)
	if err := arrived(ctx); err != nil {
		return fmt.Errorf("no probe on %s went through: %w", topic, err)
	}
	return nil
}
