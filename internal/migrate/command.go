package migrate

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/urfave/cli/v2"
)

// Command returns the `migrate` CLI subcommand:
//
//	benthos-danube migrate [--output FILE] [--ignore-env] [connector.toml]
//
// Without a path it reads CONNECTOR_CONFIG_PATH, like the Rust connector.
// The YAML goes to stdout (or --output), warnings to stderr. Conversion
// errors exit with code 1 and a one-line reason per problem.
func Command() *cli.Command {
	return &cli.Command{
		Name:      "migrate",
		Usage:     "Convert a Rust danube-source-mqtt connector.toml (danube-connect 0.1/0.2 or danube-connectors 0.3) into a pipeline config",
		ArgsUsage: "[connector.toml]",
		Description: `Reads the TOML of the Rust Danube MQTT source connector, in either
dialect: danube-connect 0.1/0.2 ([[mqtt.topic_mappings]] mqtt_topic/danube_topic)
or danube-connectors 0.3 ([[mqtt.routes]] from/to, [[schemas]]), told apart by
the file. For a 0.3 file the pipeline writes the payload bytes the 0.3
connector writes (--raw-payloads forwards them unchanged) and binds each
[[schemas]] topic to its subject. It applies the connector's
environment overrides (DANUBE_SERVICE_URL, CONNECTOR_NAME, MQTT_BROKER_HOST,
MQTT_BROKER_PORT, MQTT_CLIENT_ID, MQTT_USERNAME, MQTT_PASSWORD, MQTT_USE_TLS)
and prints the equivalent benthos-danube pipeline YAML. Without a path the
file named by CONNECTOR_CONFIG_PATH is read. Settings without an equivalent
and behaviour differences are printed as warnings on stderr and as comments
in the YAML. The MQTT password is never copied: the YAML reads it from
MQTT_PASSWORD at run time.

  benthos-danube migrate connector.toml > pipeline.yaml
  benthos-danube lint pipeline.yaml`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "write the YAML to this file instead of stdout"},
			&cli.BoolFlag{Name: "ignore-env", Usage: "do not apply the connector's environment overrides"},
			&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "do not print warnings on stderr"},
			&cli.BoolFlag{Name: "raw-payloads", Usage: "for a danube-connectors 0.3 file, forward MQTT payloads unchanged instead of the bytes the 0.3 connector writes (0.1/0.2 files always forward them unchanged)"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() > 1 {
				return cli.Exit("migrate takes at most one path", 1)
			}
			path := c.Args().First()
			if path == "" {
				path = os.Getenv("CONNECTOR_CONFIG_PATH")
			}
			if path == "" {
				return cli.Exit("migrate: give the connector TOML path, or set CONNECTOR_CONFIG_PATH", 1)
			}
			opts := Options{RawPayloads: c.Bool("raw-payloads")}
			if c.Bool("ignore-env") {
				opts.LookupEnv = NoEnv
			}
			stdout, stderr := c.App.Writer, c.App.ErrWriter
			if stdout == nil {
				stdout = os.Stdout
			}
			if stderr == nil {
				stderr = os.Stderr
			}
			return run(path, c.String("output"), opts, c.Bool("quiet"), stdout, stderr)
		},
	}
}

func run(path, output string, opts Options, quiet bool, stdout, stderr io.Writer) error {
	res, err := ConvertFile(path, opts)
	if err != nil {
		var msg string
		for _, line := range flatten(err) {
			msg += "migrate: " + line + "\n"
		}
		return cli.Exit(msg[:len(msg)-1], 1)
	}
	if !quiet {
		for _, w := range res.Warnings {
			fmt.Fprintf(stderr, "warning: %s\n", w)
		}
	}
	if output == "" {
		if _, err := stdout.Write(res.YAML); err != nil {
			return cli.Exit(fmt.Sprintf("migrate: writing YAML: %v", err), 1)
		}
		return nil
	}
	if err := os.WriteFile(output, res.YAML, 0o644); err != nil {
		return cli.Exit(fmt.Sprintf("migrate: writing %s: %v", output, err), 1)
	}
	return nil
}

// flatten lists the leaves of a tree of joined errors, one line each, with
// the context of their parents.
func flatten(err error) []string {
	type multi interface{ Unwrap() []error }
	var m multi
	if !errors.As(err, &m) {
		return []string{err.Error()}
	}
	var out []string
	for _, e := range m.Unwrap() {
		out = append(out, flatten(e)...)
	}
	return out
}
