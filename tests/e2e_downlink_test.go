package tests

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/benthos-danube/benthos-danube/internal/danube"
	"github.com/benthos-danube/benthos-danube/internal/danube/danubetest"
	"github.com/benthos-danube/benthos-danube/tests/harness"
)

// The downlink end to end: commands produced to a reliable Danube topic,
// config/danube-to-mqtt.yaml run by the real binary, MQTT subscribers on the
// devices' command topics.

// commands is a set of device commands: each device gets its own sequence,
// half of the devices named by the device_id attribute (binary payloads),
// the other half by the payload's JSON field device_id.
type commands struct {
	devs     []string
	byAttr   map[string]bool
	expected map[string][][]byte // per device, in production order
	order    [][2]int            // production order: (device index, seq)
}

func newCommands(prefix string, devs, perDev int) *commands {
	c := &commands{byAttr: map[string]bool{}, expected: map[string][][]byte{}}
	for d := 0; d < devs; d++ {
		dev := fmt.Sprintf("%s-d%d", prefix, d)
		c.devs = append(c.devs, dev)
		c.byAttr[dev] = d%2 == 0
	}
	for i := 0; i < perDev; i++ {
		for d, dev := range c.devs {
			var p []byte
			if c.byAttr[dev] {
				p = append([]byte(fmt.Sprintf("cmd %s %05d ", dev, i)), 0x00, 0xff, 0x80, '\n')
			} else {
				p = []byte(fmt.Sprintf(`{"device_id":%q,"seq":%d,"command":"set","value":"\u00e9"}`, dev, i))
			}
			c.expected[dev] = append(c.expected[dev], p)
			c.order = append(c.order, [2]int{d, i})
		}
	}
	return c
}

func (c *commands) total() int { return len(c.order) }

// message returns the i-th command in production order.
func (c *commands) message(i int) danube.Message {
	d, seq := c.order[i][0], c.order[i][1]
	dev := c.devs[d]
	m := danube.Message{Payload: c.expected[dev][seq]}
	if c.byAttr[dev] {
		m.Attributes = map[string]string{"device_id": dev}
	}
	return m
}

// commandProducer sends commands to a reliable Danube topic, retrying a send
// that fails (a broker restart): a retry may duplicate, never lose.
type commandProducer struct {
	t     testing.TB
	p     *danube.Producer
	mu    sync.Mutex
	sent  int
	retry int
}

func newCommandProducer(t testing.TB, srv *danubetest.Server, topic string) *commandProducer {
	t.Helper()
	c, err := danube.NewClient(srv.URL())
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	p, err := c.NewProducer(ctx, danube.ProducerConfig{Topic: topic, Name: "commands", Dispatch: danube.DispatchReliable,
		StrictOrder: true, BaseBackoff: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond})
	require.NoError(t, err)
	t.Cleanup(func() { _ = p.Close() })
	return &commandProducer{t: t, p: p}
}

func (cp *commandProducer) send(ctx context.Context, m danube.Message) error {
	for {
		sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := cp.p.Send(sctx, m)
		cancel()
		if err == nil {
			cp.mu.Lock()
			cp.sent++
			cp.mu.Unlock()
			return nil
		}
		if ctx.Err() != nil {
			return err
		}
		cp.mu.Lock()
		cp.retry++
		cp.mu.Unlock()
		time.Sleep(50 * time.Millisecond)
	}
}

func (cp *commandProducer) counts() (sent, retries int) {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	return cp.sent, cp.retry
}

// deviceSubscriber records what arrives on devices/<dev>/commands.
type deviceSubscriber struct {
	mu  sync.Mutex
	got map[string][][]byte
	n   int
}

// subscribeDevices subscribes at QoS 1 to every device's command topic. A
// persistent session (clean false) keeps the subscription and the queued
// messages across a restart of the broker.
func subscribeDevices(t testing.TB, brokerURL, clientID string, devs []string) *deviceSubscriber {
	t.Helper()
	s := &deviceSubscriber{got: map[string][][]byte{}}
	filters := map[string]byte{}
	for _, d := range devs {
		filters["devices/"+d+"/commands"] = 1
	}
	handler := func(_ paho.Client, m paho.Message) {
		dev := strings.TrimSuffix(strings.TrimPrefix(m.Topic(), "devices/"), "/commands")
		s.mu.Lock()
		s.got[dev] = append(s.got[dev], append([]byte(nil), m.Payload()...))
		s.n++
		s.mu.Unlock()
	}
	o := paho.NewClientOptions().AddBroker(brokerURL).SetClientID(clientID).SetCleanSession(false).
		SetOrderMatters(true).SetAutoReconnect(true).SetConnectRetry(true).
		SetConnectRetryInterval(100 * time.Millisecond).SetMaxReconnectInterval(500 * time.Millisecond).
		SetDefaultPublishHandler(handler).
		SetOnConnectHandler(func(c paho.Client) { c.SubscribeMultiple(filters, handler) })
	c := paho.NewClient(o)
	tok := c.Connect()
	require.True(t, tok.WaitTimeout(10*time.Second), "connecting the subscriber")
	require.NoError(t, tok.Error())
	t.Cleanup(func() { c.Disconnect(100) })
	time.Sleep(200 * time.Millisecond) // the SUBACK
	return s
}

func (s *deviceSubscriber) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.n
}

// verdict compares what arrived with what was produced: per device, the
// first copy of each command must come in production order and byte for
// byte; a later copy of an earlier command is a duplicate.
type verdict struct {
	missing, duplicates, outOfOrder, foreign int
	sample                                   []string
}

func (s *deviceSubscriber) verdict(c *commands) verdict {
	s.mu.Lock()
	defer s.mu.Unlock()
	var v verdict
	for _, dev := range c.devs {
		want := c.expected[dev]
		index := map[string]int{}
		for i, p := range want {
			index[string(p)] = i
		}
		next := 0
		seen := map[int]bool{}
		for _, p := range s.got[dev] {
			i, ok := index[string(p)]
			switch {
			case !ok:
				v.foreign++
				if len(v.sample) < 5 {
					v.sample = append(v.sample, fmt.Sprintf("%s: unexpected %q", dev, p))
				}
			case seen[i]:
				v.duplicates++
			default:
				seen[i] = true
				if i != next && len(v.sample) < 5 {
					v.sample = append(v.sample, fmt.Sprintf("%s: command %d arrived where %d was due", dev, i, next))
				}
				if i != next {
					v.outOfOrder++
				}
				next = i + 1
			}
		}
		v.missing += len(want) - len(seen)
	}
	return v
}

// downlinkEnv is the environment of config/danube-to-mqtt.yaml.
func downlinkEnv(danubeURL, topic, mqttURL, id string) map[string]string {
	return map[string]string{
		"DANUBE_URL":            danubeURL,
		"DANUBE_COMMANDS_TOPIC": topic,
		"DANUBE_SUBSCRIPTION":   id,
		"DANUBE_CONSUMER_NAME":  id,
		"MQTT_URL":              mqttURL,
		"MQTT_CLIENT_ID":        id + "-out",
		"HTTP_ENABLED":          "false",
	}
}

func downlinkConfig() string { return filepath.Join(repoRoot, "config", "danube-to-mqtt.yaml") }

// produceAll sends every command in production order, paced by every
// (calls it between sends with the index), and returns when done.
func produceAll(ctx context.Context, t testing.TB, cp *commandProducer, c *commands, every func(i int)) {
	t.Helper()
	for i := 0; i < c.total(); i++ {
		if every != nil {
			every(i)
		}
		require.NoError(t, cp.send(ctx, c.message(i)))
	}
}

func waitCount(t testing.TB, s *deviceSubscriber, n int, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for s.count() < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d commands arrived within %v", s.count(), n, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitSettled waits until every command arrived at least once (the
// verdict's missing is 0), then a little longer for duplicates in flight.
func waitSettled(t testing.TB, s *deviceSubscriber, c *commands, timeout time.Duration) verdict {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		v := s.verdict(c)
		if v.missing == 0 {
			time.Sleep(300 * time.Millisecond)
			return s.verdict(c)
		}
		if time.Now().After(deadline) {
			return v
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestDownlinkDeliversInDeviceOrder: N commands produced with reliable
// dispatch reach each device's command topic byte for byte and in order.
func TestDownlinkDeliversInDeviceOrder(t *testing.T) {
	id := uniqueID(t)
	mqttURL := mqttBroker(t)
	srv := danubeBroker(t)
	topic := "/iot/" + strings.ReplaceAll(id, "-", "_")
	cp := newCommandProducer(t, srv, topic)
	c := newCommands(id, 6, 100)
	sub := subscribeDevices(t, mqttURL, id+"-sub", c.devs)
	startDownlink(t, srv, downlinkEnv(srv.URL(), topic, mqttURL, id))
	produceAll(context.Background(), t, cp, c, nil)
	v := waitSettled(t, sub, c, 30*time.Second)
	t.Logf("commands %d: missing %d, duplicates %d, out of order %d", c.total(), v.missing, v.duplicates, v.outOfOrder)
	assert.Zero(t, v.missing, "missing %v", v.sample)
	assert.Zero(t, v.outOfOrder, "%v", v.sample)
	assert.Zero(t, v.foreign, "%v", v.sample)
	assert.Zero(t, v.duplicates, "no failure, no duplicate")
	waitAcked(t, srv, topic, id, c.total())
}

// startDownlink runs config/danube-to-mqtt.yaml and waits until its
// subscription exists on Danube (a new subscription starts at the end of the
// topic: commands produced before it would never reach the bridge).
func startDownlink(t testing.TB, srv *danubetest.Server, env map[string]string) *proc {
	t.Helper()
	p := startBin(t, env, "-c", downlinkConfig())
	deadline := time.Now().Add(20 * time.Second)
	for {
		if _, _, ok := srv.Unacked(env["DANUBE_COMMANDS_TOPIC"], env["DANUBE_SUBSCRIPTION"]); ok {
			return p
		}
		if time.Now().After(deadline) {
			t.Fatal("the downlink did not subscribe within 20s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitAcked waits until Danube has every message of the subscription
// acknowledged: the bridge acked each after its PUBACK.
func waitAcked(t testing.TB, srv *danubetest.Server, topic, sub string, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		unacked, acked, ok := srv.Unacked(topic, sub)
		if ok && unacked == 0 && acked >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("Danube subscription %s on %s: %d unacked, %d acked (ok %v), want all %d acked", sub, topic, unacked, acked, ok, n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestDownlinkSurvivesSIGKILL: the bridge is SIGKILLed halfway through and
// started again; Danube redelivers what was not acknowledged: 0 missing,
// duplicates counted.
func TestDownlinkSurvivesSIGKILL(t *testing.T) {
	id := uniqueID(t)
	mqttURL := mqttBroker(t)
	srv := danubeBroker(t)
	topic := "/iot/" + strings.ReplaceAll(id, "-", "_")
	cp := newCommandProducer(t, srv, topic)
	c := newCommands(id, 6, 150)
	sub := subscribeDevices(t, mqttURL, id+"-sub", c.devs)
	env := downlinkEnv(srv.URL(), topic, mqttURL, id)
	bridge := startDownlink(t, srv, env)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	produced := make(chan struct{})
	go func() {
		defer close(produced)
		for i := 0; i < c.total(); i++ {
			if err := cp.send(ctx, c.message(i)); err != nil {
				t.Errorf("producing: %v", err)
				return
			}
			time.Sleep(200 * time.Microsecond)
		}
	}()
	waitCount(t, sub, c.total()/2, 30*time.Second)
	bridge.signal(t, syscall.SIGKILL)
	bridge.wait(t, 10*time.Second)
	atKill := sub.count()
	startBin(t, env, "-c", downlinkConfig())
	<-produced
	v := waitSettled(t, sub, c, 40*time.Second)
	t.Logf("commands %d, %d arrived before the SIGKILL: missing %d, duplicates %d, out of order (first copies) %d", c.total(), atKill, v.missing, v.duplicates, v.outOfOrder)
	assert.Zero(t, v.missing, "missing %v", v.sample)
	assert.Zero(t, v.foreign, "%v", v.sample)
	waitAcked(t, srv, topic, id, c.total())
}

// TestDownlinkSurvivesBrokerRestarts: a Danube broker restart, then a
// (private) Mosquitto restart, both while commands flow: 0 missing.
func TestDownlinkSurvivesBrokerRestarts(t *testing.T) {
	mq := harness.NewTestMosquitto(t, harness.MosquittoOptions{})
	id := uniqueID(t)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	srv := danubeBroker(t)
	topic := "/iot/" + strings.ReplaceAll(id, "-", "_")
	cp := newCommandProducer(t, srv, topic)
	c := newCommands(id, 6, 150)
	sub := subscribeDevices(t, mq.URL(), id+"-sub", c.devs)
	env := downlinkEnv(srv.URL(), topic, mq.URL(), id)
	startDownlink(t, srv, env)
	third := c.total() / 3
	produceAll(ctx, t, cp, c, func(i int) {
		switch i {
		case third:
			waitCount(t, sub, third/2, 30*time.Second)
			srv.Restart()
		case 2 * third:
			waitCount(t, sub, third, 30*time.Second)
			require.NoError(t, mq.Restart(ctx))
		}
		time.Sleep(200 * time.Microsecond)
	})
	v := waitSettled(t, sub, c, 60*time.Second)
	sent, retries := cp.counts()
	t.Logf("commands %d (producer sends %d, retried %d): missing %d, duplicates %d, out of order (first copies) %d", c.total(), sent, retries, v.missing, v.duplicates, v.outOfOrder)
	assert.Zero(t, v.missing, "missing %v", v.sample)
	assert.Zero(t, v.foreign, "%v", v.sample)
	assert.Empty(t, mq.PersistenceErrors())
}

// refusingMosquitto starts a private Mosquitto whose ACL lets anonymous
// clients write the commands of devices id-d0 and id-d1 only, with a
// max_packet_size of 4096.
func refusingMosquitto(t *testing.T, id string) *harness.Mosquitto {
	t.Helper()
	dir := t.TempDir()
	acl := filepath.Join(dir, "acl")
	require.NoError(t, os.WriteFile(acl, []byte("topic read #\ntopic write devices/"+id+"-d0/#\ntopic write devices/"+id+"-d1/#\n"), 0o644))
	return harness.NewTestMosquitto(t, harness.MosquittoOptions{Dir: dir, Extra: []string{
		"acl_file " + acl, "max_packet_size 4096", "max_queued_messages 1000", "log_type all"}})
}

// TestDownlinkRefusals: a command whose device id cannot form an MQTT topic
// and a command larger than the broker's max_packet_size are dead-lettered
// to /default/dead_letter on Danube with their reason; a command to a topic
// the broker's ACL denies is acknowledged by Mosquitto (MQTT 3.1.1 has no
// refusal) and dropped there; the commands around them are delivered.
func TestDownlinkRefusals(t *testing.T) {
	id := uniqueID(t)
	mq := refusingMosquitto(t, id)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	srv := danubeBroker(t)
	topic := "/iot/" + strings.ReplaceAll(id, "-", "_")
	cp := newCommandProducer(t, srv, topic)
	good := newCommands(id, 2, 20) // devices d0, d1
	denied := id + "-denied"
	sub := subscribeDevices(t, mq.URL(), id+"-sub", append(append([]string(nil), good.devs...), denied))
	startDownlink(t, srv, downlinkEnv(srv.URL(), topic, mq.URL(), id))
	big := bytes.Repeat([]byte("B"), 8192)
	for i := 0; i < good.total(); i++ {
		require.NoError(t, cp.send(ctx, good.message(i)))
		switch i {
		case 5:
			require.NoError(t, cp.send(ctx, danube.Message{Payload: []byte("no id")}))
		case 10:
			require.NoError(t, cp.send(ctx, danube.Message{Payload: []byte("to a/+"), Attributes: map[string]string{"device_id": "a/+"}}))
		case 15:
			require.NoError(t, cp.send(ctx, danube.Message{Payload: big, Attributes: map[string]string{"device_id": good.devs[0]}}))
		case 20:
			require.NoError(t, cp.send(ctx, danube.Message{Payload: []byte("denied cmd"), Attributes: map[string]string{"device_id": denied}}))
		}
	}
	v := waitSettled(t, sub, good, 30*time.Second)
	assert.Zero(t, v.missing, "the refusals did not stop the flow: %v", v.sample)
	assert.Zero(t, v.foreign, "the big command was not delivered: %v", v.sample)
	dead := waitDeadLetters(t, srv, map[string]string{"no id": "invalid_device_id", "to a/+": "invalid_device_id", "BBBBBBBBBB": "rejected"}, 20*time.Second)
	for _, m := range dead {
		if deadLetterKey(m) == "BBBBBBBBBB" {
			assert.Len(t, m.Payload, len(big), "the big command kept whole")
			assert.Equal(t, "devices/"+good.devs[0]+"/commands", m.Attributes["dead_letter_mqtt_topic"])
		}
	}
	sub.mu.Lock()
	assert.Empty(t, sub.got[denied], "Mosquitto dropped the ACL-denied command")
	sub.mu.Unlock()
	logText, err := os.ReadFile(mq.LogPath())
	require.NoError(t, err)
	assert.Contains(t, string(logText), "Denied PUBLISH", "Mosquitto denied it (and PUBACKed it: the bridge acknowledged it)")
	waitAcked(t, srv, topic, id, good.total()+4)
}

// TestDownlinkRefusalsV5: over MQTT 5 (MQTT_PROTOCOL_VERSION=5) the broker's
// refusals are detected by reason code: a command to a device topic the
// Mosquitto ACL denies (PUBACK 0x87) is dead-lettered to /default/dead_letter
// as permission_denied, and one over the broker's Maximum Packet Size as
// too_large; the commands around them are delivered and everything is
// acknowledged to Danube.
func TestDownlinkRefusalsV5(t *testing.T) {
	id := uniqueID(t)
	mq := refusingMosquitto(t, id)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	srv := danubeBroker(t)
	topic := "/iot/" + strings.ReplaceAll(id, "-", "_")
	cp := newCommandProducer(t, srv, topic)
	good := newCommands(id, 2, 20)
	denied := id + "-denied"
	sub := subscribeDevices(t, mq.URL(), id+"-sub", append(append([]string(nil), good.devs...), denied))
	env := downlinkEnv(srv.URL(), topic, mq.URL(), id)
	env["MQTT_PROTOCOL_VERSION"] = "5"
	startDownlink(t, srv, env)
	big := bytes.Repeat([]byte("B"), 8192)
	for i := 0; i < good.total(); i++ {
		require.NoError(t, cp.send(ctx, good.message(i)))
		switch i {
		case 5:
			require.NoError(t, cp.send(ctx, danube.Message{Payload: []byte("denied cmd"), Attributes: map[string]string{"device_id": denied}}))
		case 15:
			require.NoError(t, cp.send(ctx, danube.Message{Payload: big, Attributes: map[string]string{"device_id": good.devs[0]}}))
		}
	}
	v := waitSettled(t, sub, good, 30*time.Second)
	assert.Zero(t, v.missing, "the refusals did not stop the flow: %v", v.sample)
	assert.Zero(t, v.outOfOrder, "%v", v.sample)
	assert.Zero(t, v.foreign, "%v", v.sample)
	dead := waitDeadLetters(t, srv, map[string]string{"denied cmd": "permission_denied", "BBBBBBBBBB": "too_large"}, 20*time.Second)
	for _, m := range dead {
		if deadLetterKey(m) == "denied cmd" {
			assert.Equal(t, "devices/"+denied+"/commands", m.Attributes["dead_letter_mqtt_topic"])
			assert.Contains(t, m.Attributes["dead_letter_error"], "0x87")
		}
	}
	sub.mu.Lock()
	assert.Empty(t, sub.got[denied])
	sub.mu.Unlock()
	waitAcked(t, srv, topic, id, good.total()+2)
}

// deadLetterKey names a dead letter of the refusal tests by the first ten
// bytes of its payload.
func deadLetterKey(m danubetest.Message) string {
	p := string(m.Payload)
	if len(p) > 10 {
		p = p[:10]
	}
	return p
}

// waitDeadLetters waits until the dead letters on /default/dead_letter are
// exactly want (deadLetterKey to dead_letter_reason) and returns them. It
// compares what arrived, not how many: a dead letter may be written twice
// (at least once) while a slower one is still on its way.
func waitDeadLetters(t *testing.T, srv *danubetest.Server, want map[string]string, timeout time.Duration) []danubetest.Message {
	t.Helper()
	var (
		msgs []danubetest.Message
		got  map[string]string
	)
	deadline := time.Now().Add(timeout)
	for {
		msgs = srv.Messages("/default/dead_letter")
		got = map[string]string{}
		for _, m := range msgs {
			got[deadLetterKey(m)] = m.Attributes["dead_letter_reason"]
		}
		if reflect.DeepEqual(got, want) || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	require.Equal(t, want, got, "the dead letters within %s", timeout)
	return msgs
}
