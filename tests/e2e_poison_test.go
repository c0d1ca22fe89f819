package tests

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/benthos-danube/benthos-danube/internal/danube/danubetest"
	"github.com/benthos-danube/benthos-danube/internal/deadletter"
)

// poisonConfig is a pipeline that sets no dead-letter field. ghost adds a
// mapping that the second configuration drops while the persistent session
// keeps its subscription.
func poisonConfig(prefix string, ghost bool) string {
	var g string
	if ghost {
		g = fmt.Sprintf(`
      - mqtt_topic: %s/ghost/#
        danube_topic: /iot/ghost`, prefix)
	}
	return fmt.Sprintf(`
input:
  mqtt:
    urls: [ "${MQTT_URL}" ]
    client_id: "${MQTT_CLIENT_ID}"
    clean_session: false
    topic_mappings:
      - mqtt_topic: %[1]s/sensors/{kind}/zone1
        danube_topic: /iot/{kind}_zone1
      - mqtt_topic: %[1]s/good/#
        danube_topic: /iot/good%[2]s
      - mqtt_topic: %[1]s/nons/#
        danube_topic: /nosuchns/readings
pipeline:
  threads: 1
output:
  danube:
    url: "${DANUBE_URL}"
`, prefix, g)
}

// TestE2EPoisonMessagesNeverStall sends each of the four everyday kinds of
// message that can never reach its Danube topic, then 200 good QoS 1
// messages, with a SIGKILL of the bridge in between. All good messages must
// arrive within 10 s of the last publish, and each poison message must be on
// /default/dead_letter with its reason (the too-large one whole in the
// spool).
func TestE2EPoisonMessagesNeverStall(t *testing.T) {
	id := uniqueID(t)
	mqttURL := mqttBroker(t)
	dn := danubetest.NewTestServer(t, danubetest.WithNamespaces("iot"))
	pub := newPublisher(t, mqttURL, id+"-pub")
	env := bridgeEnv(mqttURL, dn.URL(), id+"-bridge")
	work := t.TempDir() // the bridge's working directory: the default spool lands here

	write := func(name, yaml string) string {
		path := filepath.Join(t.TempDir(), name)
		require.NoError(t, os.WriteFile(path, []byte(yaml), 0o600))
		return path
	}
	withGhost := write("a.yaml", poisonConfig(id, true))
	withoutGhost := write("b.yaml", poisonConfig(id, false))

	// The first configuration creates the session's ghost subscription.
	b := startBinIn(t, work, env, "-c", withGhost)
	waitBridgeReady(t, pub, dn, id+"/good/probe", 20*time.Second, "/iot/good")
	b.signal(t, syscall.SIGTERM)
	require.Equal(t, 0, b.wait(t, 30*time.Second))

	b = startBinIn(t, work, env, "-c", withoutGhost)
	big := bytes.Repeat([]byte("firmware"), (5<<20)/8)
	poison := []struct {
		topic   string
		payload []byte
		reason  string
		intent  string
	}{
		{id + "/sensors/te.mp/zone1", []byte(`{"t":1}`), deadletter.ReasonInvalidTopic, "/iot/te.mp_zone1"},
		{id + "/ghost/g1", []byte("ghost"), deadletter.ReasonNoMapping, ""},
		{id + "/good/big", big, deadletter.ReasonTooLarge, "/iot/good"},
		{id + "/nons/n1", []byte("nons"), deadletter.ReasonNamespaceMissing, "/nosuchns/readings"},
	}
	for _, p := range poison {
		require.NoError(t, pub.publish(p.topic, 1, false, p.payload))
	}
	good := func(i int) []byte { return []byte(fmt.Sprintf("good-%03d", i)) }
	for i := range 100 {
		require.NoError(t, pub.publish(fmt.Sprintf("%s/good/d%d", id, i%10), 1, false, good(i)))
	}
	// A crash in the middle, then the rest.
	b.signal(t, syscall.SIGKILL)
	b.wait(t, 10*time.Second)
	startBinIn(t, work, env, "-c", withoutGhost)
	for i := 100; i < 200; i++ {
		require.NoError(t, pub.publish(fmt.Sprintf("%s/good/d%d", id, i%10), 1, false, good(i)))
	}
	last := time.Now()

	seen := func() map[string]bool {
		m := map[string]bool{}
		for _, msg := range dn.Messages("/iot/good") {
			m[string(msg.Payload)] = true
		}
		return m
	}
	require.Eventually(t, func() bool {
		s := seen()
		for i := range 200 {
			if !s[string(good(i))] {
				return false
			}
		}
		return true
	}, 10*time.Second-time.Since(last), 20*time.Millisecond, "good messages behind the poison: %d of 200 arrived", len(seen()))
	t.Logf("all 200 good messages arrived %v after the last publish", time.Since(last).Round(time.Millisecond))

	// Each poison message is on the dead-letter topic with its reason.
	require.Eventually(t, func() bool {
		got := map[string]bool{}
		for _, r := range dn.Messages(deadletter.DefaultTopic) {
			got[r.Attributes["mqtt_topic"]] = true
		}
		for _, p := range poison {
			if !got[p.topic] {
				return false
			}
		}
		return true
	}, 10*time.Second, 50*time.Millisecond)
	for _, p := range poison {
		var recs []danubetest.Message
		for _, r := range dn.Messages(deadletter.DefaultTopic) {
			if r.Attributes["mqtt_topic"] == p.topic {
				recs = append(recs, r)
			}
		}
		r := recs[0]
		assert.Equal(t, p.reason, r.Attributes[deadletter.Reason], p.topic)
		assert.Equal(t, p.intent, r.Attributes[deadletter.Topic], p.topic)
		assert.NotEmpty(t, r.Attributes[deadletter.Error], p.topic)
		assert.NotEmpty(t, r.Attributes[deadletter.Time], p.topic)
		assert.Equal(t, "1", r.Attributes["mqtt_qos"], p.topic)
		if p.reason != deadletter.ReasonTooLarge {
			assert.Equal(t, p.payload, r.Payload, "%s: byte for byte", p.topic)
			continue
		}
		sum := sha256.Sum256(big)
		assert.Equal(t, hex.EncodeToString(sum[:]), r.Attributes[deadletter.SHA256])
		assert.Equal(t, fmt.Sprint(len(big)), r.Attributes[deadletter.Size])
		assert.Equal(t, big[:len(r.Payload)], r.Payload, "the record starts with the payload")
		path := r.Attributes[deadletter.SpoolFile]
		assert.True(t, strings.HasPrefix(path, filepath.Join(work, "dead-letter-spool")), "spooled under the default spool_dir: %s", path)
		whole, err := os.ReadFile(path)
		require.NoError(t, err)
		assert.True(t, bytes.Equal(big, whole), "the spool holds the whole payload")
	}
	assert.Zero(t, dn.MessageCount("/nosuchns/readings"))
}
