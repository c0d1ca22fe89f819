package danubeout

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/benthos-danube/benthos-danube/internal/danube/danubetest"
)

// TestCloseDrainsAndStopsGoroutines drives the output directly: sends in
// flight when Close is called complete, and no goroutine of the output, its
// producer cache or the client survives Close.
func TestCloseDrainsAndStopsGoroutines(t *testing.T) {
	srv := danubetest.NewTestServer(t)
	srv.SetLatency(200 * time.Millisecond)
	ignore := goleak.IgnoreCurrent()

	conf, err := Spec().ParseYAML(fmt.Sprintf(`url: %s
topic: /default/drain
producer_idle_timeout: 20ms`, srv.URL()), service.NewEnvironment())
	require.NoError(t, err)
	out, err := newOutput(conf, service.MockResources())
	require.NoError(t, err)
	ctx := context.Background()
	require.NoError(t, out.Connect(ctx))

	res := make(chan error, 1)
	go func() {
		m := service.NewMessage([]byte("in flight"))
		m.MetaSetMut("mqtt_topic", "dev/1")
		res <- out.WriteBatch(ctx, service.MessageBatch{m})
	}()
	time.Sleep(50 * time.Millisecond)
	require.NoError(t, out.Close(ctx))
	require.NoError(t, <-res, "the send in flight was drained, not cancelled")
	assert.Equal(t, 1, srv.MessageCount("/default/drain"))
	require.Error(t, out.WriteBatch(ctx, service.MessageBatch{service.NewMessage([]byte("late"))}))
	require.NoError(t, out.Close(ctx), "Close is idempotent")
	goleak.VerifyNone(t, ignore)
}

// TestCloseWithUnusedDeadLetterOutput: a dead_letter.output that never
// received a record does not hold Close up (Benthos starts an owned output
// at its first write, and its Close waits for a start that never came).
func TestCloseWithUnusedDeadLetterOutput(t *testing.T) {
	srv := danubetest.NewTestServer(t)
	conf, err := Spec().ParseYAML(fmt.Sprintf(`url: %s
topic: /default/t
dead_letter:
  output:
    drop: {}`, srv.URL()), service.NewEnvironment())
	require.NoError(t, err)
	out, err := newOutput(conf, service.MockResources())
	require.NoError(t, err)
	require.NoError(t, out.Connect(context.Background()))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	start := time.Now()
	require.NoError(t, out.Close(ctx))
	assert.Less(t, time.Since(start), time.Second, "Close waited for the unused dead_letter output")
}
