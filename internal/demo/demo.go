// Package demo implements the one-command demo of benthos-danube: an embedded
// MQTT broker (mochi), the in-memory Danube test broker, a simulated fleet of
// sensors publishing over MQTT, and the real config/mqtt-to-danube.yaml
// pipeline between them, with a live view of what arrives in Danube.
//
// Nothing outside the process is needed; both brokers listen on free
// loopback ports.
package demo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/benthos-danube/benthos-danube/config"
	"github.com/benthos-danube/benthos-danube/internal/danube/danubetest"
	"github.com/benthos-danube/benthos-danube/internal/mqtttest"

	// The components config/mqtt-to-danube.yaml uses.
	_ "github.com/benthos-danube/benthos-danube/input/mqtt"
	_ "github.com/benthos-danube/benthos-danube/metrics/prometheus"
	_ "github.com/benthos-danube/benthos-danube/output/danube"
	_ "github.com/redpanda-data/benthos/v4/public/components/pure"
)

// Options configure a demo run. The zero value is a sensible demo.
type Options struct {
	// Out receives the live view. Nil means os.Stdout.
	Out io.Writer
	// Refresh is the live view's period. Zero means one second.
	Refresh time.Duration
	// PublishInterval is the time between two rounds of the fleet (one
	// message per simulated sensor and device). Zero means 500ms.
	PublishInterval time.Duration
	// Devices is the number of simulated telemetry devices. Zero means 3.
	Devices int
	// ConfigYAML is the pipeline to run. Nil means the embedded
	// config/mqtt-to-danube.yaml.
	ConfigYAML []byte
	// ConfigName names the pipeline in the view.
	ConfigName string
	// ClearScreen redraws the view in place with ANSI escapes instead of
	// printing one frame after the other. Command sets it for terminals.
	ClearScreen bool
}

// defaultInterval is the fleet's default publish period.
const defaultInterval = 500 * time.Millisecond

func (o *Options) defaults() {
	if o.Out == nil {
		o.Out = os.Stdout
	}
	if o.Refresh <= 0 {
		o.Refresh = time.Second
	}
	if o.PublishInterval <= 0 {
		o.PublishInterval = defaultInterval
	}
	if o.Devices <= 0 {
		o.Devices = 3
	}
	if o.ConfigYAML == nil {
		o.ConfigYAML = config.MQTTToDanube
		if o.ConfigName == "" {
			o.ConfigName = config.MQTTToDanubePath
		}
	}
	if o.ConfigName == "" {
		o.ConfigName = "custom pipeline"
	}
}

// Run starts the brokers, the pipeline and the fleet, and draws the live view
// until ctx is cancelled. It then stops everything it started and returns nil;
// it returns an error if something fails to start or the pipeline stops on
// its own.
func Run(ctx context.Context, opts Options) (err error) {
	opts.defaults()
	started := time.Now()
	logs := newLogRing(8)
	logger := slog.New(logs)

	mq, mqttURL, err := startMQTT()
	if err != nil {
		return err
	}
	defer mq.Close()

	dn, err := danubetest.NewServer(danubetest.WithNamespaces("iot"),
		danubetest.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		return fmt.Errorf("starting the in-memory Danube broker: %w", err)
	}
	defer dn.Close()

	spool, err := os.MkdirTemp("", "benthos-danube-demo-spool-")
	if err != nil {
		return fmt.Errorf("creating the dead-letter spool: %w", err)
	}
	defer os.RemoveAll(spool)

	strm, err := buildStream(opts.ConfigYAML, mqttURL, dn.URL(), spool, logger)
	if err != nil {
		return err
	}

	runCtx, cancelRun := context.WithCancel(context.Background())
	defer cancelRun()
	streamDone := make(chan error, 1)
	go func() { streamDone <- strm.Run(runCtx) }()
	defer func() {
		if serr := strm.StopWithin(10 * time.Second); serr != nil && err == nil && !errors.Is(serr, context.Canceled) {
			err = fmt.Errorf("stopping the pipeline: %w", serr)
		}
	}()

	fl, err := newFleet(mqttURL, opts.Devices)
	if err != nil {
		return err
	}
	var wg sync.WaitGroup
	fleetCtx, stopFleet := context.WithCancel(ctx)
	defer func() {
		stopFleet()
		wg.Wait()
		fl.close()
	}()
	wg.Add(1)
	go func() {
		defer wg.Done()
		fl.run(fleetCtx, opts.PublishInterval, logger)
	}()

	// The command round trip (downlink.go).
	dl, err := startDownlink(mqttURL, dn, spool, logger)
	if err != nil {
		return err
	}
	defer func() {
		stopFleet() // ends dl.run before its producer closes
		dl.close()
	}()
	wg.Add(1)
	go func() {
		defer wg.Done()
		dl.run(fleetCtx, commandEvery, logger)
	}()

	v := &view{
		out: opts.Out, clear: opts.ClearScreen, srv: dn, fleet: fl, logs: logs,
		started: started, mqttURL: mqttURL, danubeURL: dn.URL(), configName: opts.ConfigName,
		counts: map[string]int{}, downlink: dl,
	}
	tick := time.NewTicker(opts.Refresh)
	defer tick.Stop()
	v.draw()
	for {
		select {
		case <-ctx.Done():
			v.draw()
			fmt.Fprintln(opts.Out, "Stopping the demo.")
			return nil
		case serr := <-streamDone:
			if serr == nil {
				serr = errors.New("the input ended")
			}
			return fmt.Errorf("the pipeline stopped: %w", serr)
		case <-dl.stopped():
			serr := dl.err
			if serr == nil {
				serr = errors.New("the input ended")
			}
			return fmt.Errorf("the downlink pipeline stopped: %w", serr)
		case <-tick.C:
			v.draw()
		}
	}
}

// startMQTT starts an embedded mochi broker on a free loopback port.
func startMQTT() (*mqtttest.Server, string, error) {
	srv, err := mqtttest.NewServer()
	if err != nil {
		return nil, "", fmt.Errorf("starting the embedded MQTT broker: %w", err)
	}
	return srv, srv.URL(), nil
}

// buildStream builds the pipeline with the demo's brokers substituted for
// the environment variables of the config.
func buildStream(yaml []byte, mqttURL, danubeURL, spool string, logger *slog.Logger) (*service.Stream, error) {
	return buildStreamEnv(yaml, map[string]string{
		"MQTT_URL":              mqttURL,
		"DANUBE_URL":            danubeURL,
		"MQTT_CLIENT_ID":        "benthos-danube-demo",
		"HTTP_ENABLED":          "false",
		"DEAD_LETTER_SPOOL_DIR": spool,
	}, logger)
}

// buildStreamEnv builds a pipeline with env as its environment variables.
func buildStreamEnv(yaml []byte, env map[string]string, logger *slog.Logger) (*service.Stream, error) {
	b := service.NewStreamBuilder()
	b.SetEnvVarLookupFunc(func(k string) (string, bool) {
		v, ok := env[k]
		return v, ok
	})
	if err := b.SetYAML(string(yaml)); err != nil {
		return nil, fmt.Errorf("loading the pipeline config: %w", err)
	}
	b.SetLogger(logger)
	strm, err := b.Build()
	if err != nil {
		return nil, fmt.Errorf("building the pipeline: %w", err)
	}
	return strm, nil
}
