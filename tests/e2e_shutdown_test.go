package tests

import (
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestE2EShutdownReportsUnacknowledged: SIGTERM while Danube is unreachable
// leaves the received messages unacknowledged; the bridge says how many and
// that the persistent session gets them redelivered.
func TestE2EShutdownReportsUnacknowledged(t *testing.T) {
	id := uniqueID(t)
	mqttURL := mqttBroker(t)
	httpAddr := freeAddr(t)
	env := bridgeEnv(mqttURL, "http://"+freeAddr(t), id+"-bridge")
	env["HTTP_ENABLED"] = "true"
	env["HTTP_ADDRESS"] = httpAddr
	p := startBridge(t, shippedConfig(t, id), env)
	waitReady(t, httpAddr, 30*time.Second, func(_ int, body string) bool {
		return strings.Contains(body, `"path":"input","connected":true`)
	})
	pub := newPublisher(t, mqttURL, id+"-pub")
	const n = 5
	for i := range n {
		require.NoError(t, pub.publish(fmt.Sprintf("%s/devices/d%d/telemetry", id, i), 1, false, []byte("m")))
	}
	// The input's gauges (refreshed every second) show when all n are in.
	re := regexp.MustCompile(`(?m)^mqtt_input_(unacked|queued)\{[^}]*\} (\d+)`)
	require.Eventually(t, func() bool {
		resp, err := http.Get("http://" + httpAddr + "/metrics")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		sum := 0
		for _, m := range re.FindAllStringSubmatch(string(b), -1) {
			v, _ := strconv.Atoi(m[2])
			sum += v
		}
		return sum == n
	}, 20*time.Second, 200*time.Millisecond, "the bridge did not receive the %d messages", n)

	p.signal(t, syscall.SIGTERM)
	p.wait(t, 60*time.Second)
	out := p.stdout.String() + p.stderr.String()
	assert.Contains(t, out, fmt.Sprintf("Closing with %d messages unacknowledged to the MQTT broker", n))
	assert.Contains(t, out, fmt.Sprintf("QoS 1/2: %d, kept by the broker in the persistent session of client_id", n))
	// A clean-session connect with the bridge's id drops the session the
	// test left on a shared broker.
	newPublisher(t, mqttURL, id+"-bridge")
}
