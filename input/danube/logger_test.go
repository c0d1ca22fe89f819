package danubein

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"

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
	conf, err := Spec().ParseYAML(inputYAML(srv, "[ "+topic+" ]", ""), service.NewEnvironment())
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncbuf.Buffer{}
	logger := service.NewLoggerFromSlog(slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	in, err := newInput(conf, service.MockResources(service.MockResourcesOptUseLogger(logger)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = in.Close(context.Background()) })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := in.Connect(ctx); err != nil {
		t.Fatal(err)
	}
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
