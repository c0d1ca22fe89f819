package tests

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/benthos-danube/benthos-danube/internal/danube"
)

// TestBidirectionalNoEcho runs the shipped bidirectional setup
// (config/bidirectional: uplink and downlink streams in one process, streams
// mode) with the downlink misconfigured to read the very Danube topic the
// uplink writes device replies to. The replies a device publishes reach
// Danube, come back through the downlink and are not published again
// (skip_mqtt_origin): the device's command topic gets only the real
// command. With the guard off, the same setup echoes every reply, which
// shows what the guard prevents.
func TestBidirectionalNoEcho(t *testing.T) {
	for _, guard := range []bool{true, false} {
		t.Run(fmt.Sprintf("skip_mqtt_origin=%v", guard), func(t *testing.T) {
			id := uniqueID(t)
			mqttURL := mqttBroker(t)
			srv := danubeBroker(t)
			const replies = "/iot/device_replies"
			require.NoError(t, srv.CreateTopic(replies, true))
			dir := t.TempDir()
			// The uplink's filters under a prefix, so tests on a shared
			// broker do not see each other.
			uplink := configFile(t, "bidirectional/uplink.yaml", id)
			b, err := os.ReadFile(filepath.Join(repoRoot, "config", "bidirectional", "downlink.yaml"))
			require.NoError(t, err)
			downlink := string(b)
			if !guard {
				downlink = strings.Replace(downlink, "skip_mqtt_origin: true", "skip_mqtt_origin: false", 1)
				require.Contains(t, downlink, "skip_mqtt_origin: false")
			}
			for name, text := range map[string]string{"uplink.yaml": uplink, "downlink.yaml": downlink, "root.yaml": "http:\n  enabled: false\n"} {
				require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte(text), 0o600))
			}
			env := map[string]string{
				"MQTT_URL":                mqttURL,
				"DANUBE_URL":              srv.URL(),
				"MQTT_UPLINK_CLIENT_ID":   id + "-up",
				"MQTT_DOWNLINK_CLIENT_ID": id + "-down",
				"DANUBE_COMMANDS_TOPIC":   replies, // the misconfiguration
				"DANUBE_SUBSCRIPTION":     id,
			}
			startBin(t, env, "streams", "--no-api", "-o", filepath.Join(dir, "root.yaml"),
				filepath.Join(dir, "uplink.yaml"), filepath.Join(dir, "downlink.yaml"))
			deadline := time.Now().Add(20 * time.Second)
			for {
				if _, _, ok := srv.Unacked(replies, id); ok {
					break
				}
				require.True(t, time.Now().Before(deadline), "the downlink did not subscribe")
				time.Sleep(20 * time.Millisecond)
			}
			dev := id + "-d0"
			sub := subscribeDevices(t, mqttURL, id+"-sub", []string{dev})
			pub := newPublisher(t, mqttURL, id+"-device")
			// The uplink subscribes asynchronously: publish replies until
			// Danube has them.
			replyTopic := id + "/devices/" + dev + "/replies"
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			n := 0
			for {
				require.NoError(t, ctx.Err(), "the uplink forwarded nothing")
				require.NoError(t, pub.publish(replyTopic, 1, false, []byte(fmt.Sprintf(`{"device_id":%q,"reply":%d}`, dev, n))))
				n++
				wctx, wcancel := context.WithTimeout(ctx, 50*time.Millisecond)
				err := srv.WaitForMessages(wctx, replies, 1)
				wcancel()
				if err == nil {
					break
				}
			}
			for i := 0; i < 20; i++ {
				require.NoError(t, pub.publish(replyTopic, 1, false, []byte(fmt.Sprintf(`{"device_id":%q,"reply":%d}`, dev, n))))
				n++
			}
			require.NoError(t, srv.WaitForMessages(ctx, replies, n))
			for _, m := range srv.Messages(replies) {
				assert.Equal(t, "mqtt", m.Attributes["source"], "the uplink marks its messages")
			}
			// A real command on the same topic, after the replies: when
			// it arrives, every reply before it went through the downlink.
			cp := newCommandProducer(t, srv, replies)
			require.NoError(t, cp.send(ctx, danube.Message{Payload: []byte("reboot"), Attributes: map[string]string{"device_id": dev}}))
			waitFor := func(cond func() bool) bool {
				end := time.Now().Add(15 * time.Second)
				for !cond() {
					if time.Now().After(end) {
						return false
					}
					time.Sleep(20 * time.Millisecond)
				}
				return true
			}
			gotCommand := func() bool {
				sub.mu.Lock()
				defer sub.mu.Unlock()
				for _, p := range sub.got[dev] {
					if string(p) == "reboot" {
						return true
					}
				}
				return false
			}
			require.True(t, waitFor(gotCommand), "the real command arrived")
			waitAcked(t, srv, replies, id, n+1)
			sub.mu.Lock()
			got := len(sub.got[dev])
			sub.mu.Unlock()
			if guard {
				assert.Equal(t, 1, got, "only the command reached the device, no reply echoed")
			} else {
				assert.Equal(t, n+1, got, "without the guard every reply is echoed to the command topic")
			}
			t.Logf("replies published %d, messages on the command topic %d", n, got)
		})
	}
}
