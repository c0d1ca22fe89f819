package demo

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/urfave/cli/v2"
)

// Command returns the `demo` CLI subcommand:
//
//	benthos-danube demo [--devices N] [--interval D] [--config FILE]
//
// It runs Run until SIGINT or SIGTERM and then exits with code 0.
func Command() *cli.Command {
	return &cli.Command{
		Name:  "demo",
		Usage: "Run a self-contained demo: embedded MQTT and Danube brokers, a simulated sensor fleet and config/mqtt-to-danube.yaml",
		Description: `Starts an embedded MQTT broker and an in-memory Danube broker on free
loopback ports, a simulated fleet of sensors publishing to the four topic
families of config/mqtt-to-danube.yaml, and that pipeline between them. The
live view shows the message count per Danube topic and partition and the
latest message with its attributes, refreshed every second. Ctrl-C stops it.
The fleet publishes MQTT 5 with properties (content type, response topic,
user properties); run config/mqtt5.yaml to see them as Danube attributes.

  benthos-danube demo
  benthos-danube demo --config config/mqtt5.yaml
  go run ./cmd/benthos-danube demo`,
		Flags: []cli.Flag{
			&cli.IntFlag{Name: "devices", Value: 3, Usage: "number of simulated telemetry devices"},
			&cli.DurationFlag{Name: "interval", Value: defaultInterval, Usage: "time between two rounds of readings of the fleet"},
			&cli.StringFlag{Name: "config", Usage: "run this pipeline file instead of the embedded config/mqtt-to-danube.yaml (MQTT_URL and DANUBE_URL are set to the demo brokers)"},
			&cli.BoolFlag{Name: "no-clear", Usage: "print one frame after the other instead of redrawing the screen"},
		},
		Action: func(c *cli.Context) error {
			ctx, stop := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
			defer stop()
			opts := Options{
				Out:             c.App.Writer,
				Devices:         c.Int("devices"),
				PublishInterval: c.Duration("interval"),
				ClearScreen:     !c.Bool("no-clear") && isTerminal(os.Stdout),
			}
			if opts.Out == nil {
				opts.Out = os.Stdout
			}
			if path := c.String("config"); path != "" {
				b, err := os.ReadFile(path)
				if err != nil {
					return cli.Exit(fmt.Sprintf("demo: reading %s: %v", path, err), 1)
				}
				opts.ConfigYAML, opts.ConfigName = b, path
			}
			if err := Run(ctx, opts); err != nil {
				return cli.Exit(fmt.Sprintf("demo: %v", err), 1)
			}
			return nil
		},
	}
}

// isTerminal reports whether f is a character device (a terminal).
func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
