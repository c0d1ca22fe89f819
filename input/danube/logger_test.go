package danubein

import (
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/benthos-danube/benthos-danube/internal/componenttest"
	"github.com/benthos-danube/benthos-danube/internal/danube/danubetest"
	"github.com/benthos-danube/benthos-danube/internal/syncbuf"
)

// TestClientLogsReachBenthosLogger: the Danube client logs the lost receive
// stream after a broker restart and the resubscribe through the input's
// logger.
func TestClientLogsReachBenthosLogger(t *testing.T) {
	srv := danubetest.NewTestServer(t)
	const topic = "/default/logged"
	producer(t, srv, topic, 0) // Danube creates topics for producers only
	logs := &syncbuf.Buffer{}
	logger := service.NewLoggerFromSlog(slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	in := componenttest.New(t, Spec(), inputYAML(srv, "[ "+topic+" ]", ""), service.MockResources(service.MockResourcesOptUseLogger(logger)), newInput)
	componenttest.MustConnect(t, in)
	srv.Restart()
	waitFor(t, 10*time.Second, "resubscribe logged", func() bool {
		return strings.Contains(logs.String(), `msg="danube consumer resubscribed"`)
	})
	out := logs.String()
	for _, want := range []string{"topic=" + topic, "subscription=sub"} {
		if !strings.Contains(out, want) {
			t.Errorf("logs miss %q:\n%s", want, out)
		}
	}
}
