// Command benthos-danube is a Benthos distribution that bridges MQTT to
// Danube: the Benthos core (pure and io components) plus the `mqtt` and `danube`
// inputs, the `danube` output and the `prometheus` metrics exporter.
//
// Build with a version:
//
//	go build -ldflags "-X main.version=v0.1.0 -X main.dateBuilt=$(date -u +%Y-%m-%dT%H:%M:%SZ)" ./cmd/benthos-danube
package main

import (
	"context"

	"github.com/redpanda-data/benthos/v4/public/service"
	"github.com/urfave/cli/v2"

	_ "github.com/redpanda-data/benthos/v4/public/components/io"
	_ "github.com/redpanda-data/benthos/v4/public/components/pure"

	"github.com/benthos-danube/benthos-danube/internal/demo"
	"github.com/benthos-danube/benthos-danube/internal/migrate"

	_ "github.com/benthos-danube/benthos-danube/input/danube"
	_ "github.com/benthos-danube/benthos-danube/input/mqtt"
	_ "github.com/benthos-danube/benthos-danube/metrics/prometheus"
	_ "github.com/benthos-danube/benthos-danube/output/danube"
	_ "github.com/benthos-danube/benthos-danube/output/mqtt"
	_ "github.com/benthos-danube/benthos-danube/processor/connectorpayload"
)

// Set at build time with -ldflags "-X main.version=... -X main.dateBuilt=...".
var (
	version   = "dev"
	dateBuilt = "unknown"
)

// extraCommands are subcommands added to the Benthos CLI.
// The `demo` (internal/demo) and `migrate` (internal/migrate) commands are
// appended here.
func extraCommands() []*cli.Command {
	return []*cli.Command{demo.Command(), migrate.Command()}
}

func cliOptions() []service.CLIOptFunc {
	opts := []service.CLIOptFunc{
		service.CLIOptSetBinaryName("benthos-danube"),
		service.CLIOptSetProductName("benthos-danube"),
		service.CLIOptSetVersion(version, dateBuilt),
	}
	for _, c := range extraCommands() {
		opts = append(opts, service.CLIOptAddCommand(c))
	}
	return opts
}

func main() {
	service.RunCLI(context.Background(), cliOptions()...)
}
