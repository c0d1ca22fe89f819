package tests

import (
	"io"
	"net/http"
	"regexp"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/benthos-danube/benthos-danube/internal/danube/danubetest"
	"github.com/benthos-danube/benthos-danube/tests/harness"
)

// retainedSkippedRe finds the mqtt_input_retained_skipped counter in the
// Prometheus text format.
var retainedSkippedRe = regexp.MustCompile(`(?m)^mqtt_input_retained_skipped(?:\{[^}]*\})? (\d+)$`)

// TestE2ERetainedOnceAcrossRestart runs the shipped mqtt-to-danube.yaml
// (persistent session) and restarts it: a retained message published before
// the first start, and one published while the bridge is down, each reach
// Danube once. The first is on sensors/temp/zone1, which two mappings match
// (sensors/+/zone1 and sensors/temp/#): the broker replays it once per
// subscription, the new session forwards the first copy. The copies not
// forwarded are counted in mqtt_input_retained_skipped on /metrics.
func TestE2ERetainedOnceAcrossRestart(t *testing.T) {
	id := uniqueID(t)
	mqttURL := mqttBroker(t)
	dn := danubeBroker(t)
	pub := newPublisher(t, mqttURL, id+"-pub")
	before, offline := id+"/sensors/temp/zone1", id+"/devices/dev1/telemetry"
	t.Cleanup(func() { // the broker may be shared: leave no retained state
		_ = pub.publish(before, 1, true, nil)
		_ = pub.publish(offline, 1, true, nil)
	})
	require.NoError(t, pub.publish(before, 1, true, []byte("state-before")))

	cfg := shippedConfig(t, id)
	run := func() (*proc, string) {
		port, err := harness.FreePort()
		require.NoError(t, err)
		addr := "127.0.0.1:" + strconv.Itoa(port)
		env := bridgeEnv(mqttURL, dn.URL(), id+"-bridge")
		env["HTTP_ENABLED"], env["HTTP_ADDRESS"] = "true", addr
		return startBridge(t, cfg, env), addr
	}
	payloads := func() map[string][]danubetest.Message {
		out := map[string][]danubetest.Message{}
		for _, m := range allMessages(dn) {
			out[string(m.Payload)] = append(out[string(m.Payload)], m)
		}
		return out
	}
	// probe publishes a plain message and waits for it: the broker sends a
	// client's messages in order, so the replays of the SUBSCRIBE were
	// handled by then.
	probe := func(name string) {
		t.Helper()
		require.Eventually(t, func() bool {
			if len(payloads()[name]) > 0 {
				return true
			}
			_ = pub.publish(id+"/devices/probe/telemetry", 1, false, []byte(name))
			return false
		}, 20*time.Second, 300*time.Millisecond, "probe %s", name)
	}

	first, addr := run()
	probe("probe-1")
	require.Eventually(t, func() bool { return len(payloads()["state-before"]) > 0 }, 10*time.Second, 50*time.Millisecond)
	assert.Equal(t, 1, retainedSkipped(t, addr), "the second copy of the new session")
	first.signal(t, syscall.SIGTERM)
	require.Equal(t, 0, first.wait(t, 30*time.Second), "graceful stop exits 0")

	require.NoError(t, pub.publish(offline, 1, true, []byte("state-offline")))
	_, addr = run()
	probe("probe-2")

	got := payloads()
	require.Len(t, got["state-before"], 1, "the retained message published before the first start")
	require.Len(t, got["state-offline"], 1, "the retained message published while the bridge was down")
	assert.Equal(t, "true", got["state-before"][0].Attributes["mqtt.retain"], "a new session gets it as a retained message")
	assert.Equal(t, "false", got["state-offline"][0].Attributes["mqtt.retain"], "the session queued it for an established subscription")
	assert.Equal(t, 3, retainedSkipped(t, addr), "after the restart: two replays of state-before, one of state-offline")
}

// retainedSkipped scrapes mqtt_input_retained_skipped from a bridge's
// /metrics.
func retainedSkipped(t *testing.T, addr string) int {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	require.NoError(t, err)
	body, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	require.NoError(t, err)
	m := retainedSkippedRe.FindStringSubmatch(string(body))
	if m == nil {
		return 0 // a counter never incremented may not be exported yet
	}
	n, err := strconv.Atoi(m[1])
	require.NoError(t, err)
	return n
}
