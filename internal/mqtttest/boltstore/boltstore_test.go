package boltstore_test

import (
	"path/filepath"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/benthos-danube/benthos-danube/internal/mqtttest"
	"github.com/benthos-danube/benthos-danube/internal/mqtttest/boltstore"
)

// TestQueuedMessagesSurviveRestart: QoS 1 messages queued for an offline
// persistent session are all delivered after a restart (without the packet
// id repair, the restored messages overwrite each other and one is left).
func TestQueuedMessagesSurviveRestart(t *testing.T) {
	mq := mqtttest.NewTestServer(t, boltstore.Option(filepath.Join(t.TempDir(), "mochi.db")))
	got := make(chan string, 100)
	h := func(_ paho.Client, m paho.Message) { got <- string(m.Payload()) }
	opts := func(id string, clean bool) *paho.ClientOptions {
		return paho.NewClientOptions().AddBroker(mq.URL()).SetClientID(id).SetCleanSession(clean).
			SetConnectTimeout(3 * time.Second).SetAutoReconnect(false).SetDefaultPublishHandler(h)
	}
	connect := func(o *paho.ClientOptions) paho.Client {
		t.Helper()
		c := paho.NewClient(o)
		if tok := c.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			t.Fatalf("connect: %v", tok.Error())
		}
		return c
	}
	sub := connect(opts("sub", false))
	if tok := sub.Subscribe("q/+", 1, nil); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}
	sub.Disconnect(50) // offline, session kept
	pub := connect(opts("pub", true))
	const n = 5
	for i := 0; i < n; i++ {
		if tok := pub.Publish("q/x", 1, false, []byte{'0' + byte(i)}); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			t.Fatalf("publish: %v", tok.Error())
		}
	}
	pub.Disconnect(50)
	if err := mq.Restart(); err != nil {
		t.Fatal(err)
	}
	sub = connect(opts("sub", false))
	t.Cleanup(func() { sub.Disconnect(50) })
	seen := map[string]bool{}
	deadline := time.After(10 * time.Second)
	for len(seen) < n {
		select {
		case m := <-got:
			seen[m] = true
		case <-deadline:
			t.Fatalf("after the restart %d of %d queued messages arrived: %v", len(seen), n, seen)
		}
	}
}
