package demo

import (
	"context"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/benthos-danube/benthos-danube/internal/syncbuf"
)

var roundTripRE = regexp.MustCompile(`delivered to device001 over MQTT: (\d+)\s+replies back in Danube: (\d+)`)

// TestRunShowsCommandRoundTrip: a command goes down to the simulated
// device over the downlink and its reply comes back up to Danube.
func TestRunShowsCommandRoundTrip(t *testing.T) {
	out := &syncbuf.Buffer{}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Options{Out: out, Refresh: 200 * time.Millisecond, PublishInterval: 200 * time.Millisecond})
	}()
	require.Eventually(t, func() bool {
		m := roundTripRE.FindAllStringSubmatch(out.String(), -1)
		if len(m) == 0 {
			return false
		}
		delivered, _ := strconv.Atoi(m[len(m)-1][1])
		back, _ := strconv.Atoi(m[len(m)-1][2])
		return delivered > 0 && back > 0
	}, 15*time.Second, 100*time.Millisecond, "live view so far:\n%s", out)
	require.Contains(t, out.String(), "last reply within")
	cancel()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(20 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
}
