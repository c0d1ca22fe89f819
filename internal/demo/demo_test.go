package demo

import (
	"bytes"
	"context"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/benthos-danube/benthos-danube/config"
	"github.com/benthos-danube/benthos-danube/internal/syncbuf"
)

var arrivedRE = regexp.MustCompile(`arrived in Danube: (\d+)`)

func TestRunShowsArrivalsAndStopsCleanly(t *testing.T) {
	out := &syncbuf.Buffer{}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Options{Out: out, Refresh: 200 * time.Millisecond, PublishInterval: 100 * time.Millisecond})
	}()

	// Every topic family shows up within the demo's 10 s promise.
	// The fleet's oversized message is dead-lettered and the rest flows on.
	want := []string{"/iot/sensors_zone1", "/iot/device_telemetry", "/iot/temperature", "/iot/debug", "/default/dead_letter", "mqtt.topic=", "source=mqtt"}
	require.Eventually(t, func() bool {
		s := out.String()
		for _, w := range want {
			if !bytes.Contains([]byte(s), []byte(w)) {
				return false
			}
		}
		return true
	}, 10*time.Second, 100*time.Millisecond, "live view so far:\n%s", out)

	cancel()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(20 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	s := out.String()
	m := arrivedRE.FindAllStringSubmatch(s, -1)
	require.NotEmpty(t, m)
	n, _ := strconv.Atoi(m[len(m)-1][1])
	assert.Positive(t, n)
	assert.Contains(t, s, "Stopping the demo.")
	if i := bytes.LastIndex([]byte(s), []byte("benthos-danube demo")); i >= 0 {
		t.Logf("last frame:\n%s", s[i:])
	}
}

// TestRunMQTT5: with config/mqtt5.yaml the fleet's MQTT 5 properties show up
// as Danube Edge's attributes.
func TestRunMQTT5(t *testing.T) {
	out := &syncbuf.Buffer{}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Options{Out: out, Refresh: 200 * time.Millisecond, PublishInterval: 100 * time.Millisecond,
			ConfigYAML: config.MQTT5, ConfigName: "config/mqtt5.yaml"})
	}()
	want := []string{"/iot/device_telemetry", "mqtt.user.schema=telemetry-v2", "mqtt.content_type=application/json", "mqtt.user.device=device", "mqtt.response_topic=devices/"}
	require.Eventually(t, func() bool {
		s := out.String()
		for _, w := range want {
			if !bytes.Contains([]byte(s), []byte(w)) {
				return false
			}
		}
		return true
	}, 10*time.Second, 100*time.Millisecond, "live view so far:\n%s", out)
	cancel()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(20 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
}

func TestRunBadConfig(t *testing.T) {
	err := Run(context.Background(), Options{Out: &syncbuf.Buffer{}, ConfigYAML: []byte("input:\n  nope: {}\n")})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "loading the pipeline config")
}

func TestSplitPartition(t *testing.T) {
	tests := []struct {
		in   string
		base string
		p    int
	}{
		{"/iot/a-part-3", "/iot/a", 3},
		{"/iot/a", "/iot/a", -1},
		{"/iot/a-part-x", "/iot/a-part-x", -1},
	}
	for _, tt := range tests {
		b, p := splitPartition(tt.in)
		assert.Equal(t, tt.base, b)
		assert.Equal(t, tt.p, p)
	}
}

func TestPrintable(t *testing.T) {
	assert.Equal(t, "hello", printable([]byte("hello"), 10))
	assert.Equal(t, "0x00ff", printable([]byte{0, 0xff}, 10))
	assert.Equal(t, "abc...", printable([]byte("abcdef"), 3))
}
