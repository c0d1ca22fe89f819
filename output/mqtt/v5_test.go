package mqttout

import (
	"context"
	"encoding/base64"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/packets"
	paho5 "github.com/eclipse/paho.golang/paho"
	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/redpanda-data/benthos/v4/public/service"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/benthos-danube/benthos-danube/internal/mqtttest"
)

// subscriber5 records what an MQTT 5 (paho.golang) client subscribed to a
// filter receives, properties included.
type subscriber5 struct {
	mu   sync.Mutex
	msgs []*paho5.Publish
}

func subscribe5(t testing.TB, url, filter string) *subscriber5 {
	t.Helper()
	s := &subscriber5{}
	conn, err := net.DialTimeout("tcp", strings.TrimPrefix(url, "tcp://"), 5*time.Second)
	require.NoError(t, err)
	id := mqtttest.RunID(t) + "-sub5"
	c := paho5.NewClient(paho5.ClientConfig{ClientID: id, Conn: packets.NewThreadSafeConn(conn),
		OnPublishReceived: []func(paho5.PublishReceived) (bool, error){func(pr paho5.PublishReceived) (bool, error) {
			s.mu.Lock()
			s.msgs = append(s.msgs, pr.Packet)
			s.mu.Unlock()
			return true, nil
		}}})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err = c.Connect(ctx, &paho5.Connect{ClientID: id, CleanStart: true, KeepAlive: 30})
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Disconnect(&paho5.Disconnect{}) })
	_, err = c.Subscribe(ctx, &paho5.Subscribe{Subscriptions: []paho5.SubscribeOptions{{Topic: filter, QoS: 2}}})
	require.NoError(t, err)
	return s
}

func (s *subscriber5) all() []*paho5.Publish {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*paho5.Publish(nil), s.msgs...)
}

// TestV5AckWaitsForPUBACK: over MQTT 5 a QoS 1/2 message is acknowledged
// only after its PUBACK/PUBCOMP (mochi withholds it: no ack within
// write_timeout), other topics flow meanwhile, and the retry succeeds.
func TestV5AckWaitsForPUBACK(t *testing.T) {
	for _, qos := range []int{1, 2} {
		t.Run(fmt.Sprintf("qos%d", qos), func(t *testing.T) {
			b := newBroker(t)
			id := mqtttest.RunID(t)
			b.hook.withhold(id + "/held")
			sub := subscribe5(t, b.url(), id+"/#")
			ts := startStream(t, fmt.Sprintf(`
mqtt:
  urls: [ %s ]
  protocol_version: "5"
  topic: '%s/${! @t }'
  qos: %d
  write_timeout: 1500ms
`, b.url(), id, qos))
			res := make(chan error, 1)
			start := time.Now()
			go func() { res <- ts.send(context.Background(), service.MessageBatch{msg("x", "t", "held")}) }()
			select {
			case err := <-res:
				t.Fatalf("acknowledged without a PUBACK after %v: %v", time.Since(start), err)
			case <-time.After(1 * time.Second):
			}
			err := <-res
			require.Error(t, err)
			assert.Contains(t, err.Error(), "no acknowledgement")
			assert.EqualValues(t, 1, b.hook.dropped.Load(), "the broker received it")
			require.NoError(t, ts.send(context.Background(), service.MessageBatch{msg("y", "t", "free")}))
			b.hook.withhold("")
			require.NoError(t, ts.send(context.Background(), service.MessageBatch{msg("x", "t", "held")}))
			waitFor(t, 5*time.Second, "y and x at the subscriber", func() bool { return len(sub.all()) >= 2 })
			for _, m := range sub.all() {
				assert.EqualValues(t, qos, m.QoS)
			}
		})
	}
}

// TestV5Refusals: a publish the broker refuses by reason code (PUBACK 0x87
// for an ACL-denied topic: mochi's ACL hook, and Mosquitto 2 with an
// acl_file when available) is dead-lettered as permission_denied with the
// reason code in dead_letter_error, at once and without a reconnect, and
// the messages behind it are delivered. A message whose properties can
// never be sent (correlation data not base64) is dead-lettered as
// invalid_message.
func TestV5Refusals(t *testing.T) {
	type brokerRun struct {
		name string
		url  func(t *testing.T, id string) string
	}
	runs := []brokerRun{
		{"mochi", func(t *testing.T, id string) string {
			b := newBroker(t)
			b.hook.deny("secret/")
			return b.url()
		}},
		{"mosquitto", func(t *testing.T, id string) string { return startACLMosquitto(t, "max_queued_messages 1000").URL() }},
	}
	for _, run := range runs {
		t.Run(run.name, func(t *testing.T) {
			id := mqtttest.RunID(t)
			url := run.url(t, id)
			sub := subscribe5(t, url, "devices/#")
			dlPath := filepath.Join(t.TempDir(), "dl.jsonl")
			ts := startStream(t, fmt.Sprintf(`
mqtt:
  urls: [ %s ]
  protocol_version: "5"
  topic: '${! @t }'
  connect_timeout: 2s
  dead_letter:
    output:
      file: { path: %s, codec: lines }
      processors:
        - mapping: 'root = meta("dead_letter_reason") + " " + content().string() + " " + meta("dead_letter_error")'
`, url, dlPath))
			batch := service.MessageBatch{
				msg("ok1", "t", "devices/"+id+"/a"),
				msg("denied", "t", "secret/"+id),
				msg("badcorr", "t", "devices/"+id+"/a", "mqtt.correlation_data", "not base64!"),
				msg("ok2", "t", "devices/"+id+"/b"),
			}
			done := make(chan error, 1)
			go func() { done <- ts.send(context.Background(), batch) }()
			select {
			case err := <-done:
				require.NoError(t, err, "every message acknowledged: delivered or dead-lettered")
			case <-time.After(15 * time.Second):
				t.Fatal("a refused message stopped the flow")
			}
			bs, err := os.ReadFile(dlPath)
			require.NoError(t, err)
			lines := strings.Split(strings.TrimSpace(string(bs)), "\n")
			require.Len(t, lines, 2, "dead letters: %q", lines)
			text := string(bs)
			assert.Contains(t, text, "permission_denied denied the broker refused the message: reason code 0x87")
			assert.Contains(t, text, "invalid_message badcorr")
			waitFor(t, 5*time.Second, "ok1, ok2", func() bool { return len(sub.all()) >= 2 })
			var got []string
			for _, m := range sub.all() {
				got = append(got, string(m.Payload))
			}
			assert.Equal(t, []string{"ok1", "ok2"}, got)
			// Another write still flows (the connection was kept or replaced).
			require.NoError(t, ts.send(context.Background(), service.MessageBatch{msg("ok3", "t", "devices/"+id+"/a")}))
		})
	}
}

// TestV5Properties: metadata arrives at an MQTT 5 subscriber as user
// properties (sorted, the routing and internal keys left out, mqtt.user.k
// as k), and mqtt.content_type, mqtt.response_topic, mqtt.correlation_data
// as the PUBLISH properties; user_properties narrows the user properties.
func TestV5Properties(t *testing.T) {
	for _, bc := range brokers(t) {
		t.Run(bc.name, func(t *testing.T) {
			id := mqtttest.RunID(t)
			for _, tc := range []struct {
				name, filter string
				want         []paho5.UserProperty
			}{
				{"all", "", []paho5.UserProperty{{Key: "device_id", Value: "d1"}, {Key: "k1", Value: "edge"}, {Key: "k2", Value: "input"}, {Key: "plain", Value: "p"}}},
				{"filtered", "  user_properties: { include_prefixes: [ mqtt.user. ] }\n", []paho5.UserProperty{{Key: "k1", Value: "edge"}}},
			} {
				t.Run(tc.name, func(t *testing.T) {
					topic := id + "/" + tc.name
					sub := subscribe5(t, bc.url, topic)
					ts := startStream(t, fmt.Sprintf(`
mqtt:
  urls: [ %s ]
  protocol_version: "5"
  topic: %s
  max_in_flight: 4
%s`, bc.url, topic, tc.filter))
					m := msg("cmd", "device_id", "d1",
						"mqtt.user.k1", "edge", "mqtt_user_k1", "loses", "k1", "loses too",
						"mqtt_user_k2", "input", "plain", "p",
						"danube_topic", "/iot/commands", "danube_offset", "7", "mqtt.qos", "1", "mqtt_retained", "false",
						"mqtt.content_type", "application/json", "mqtt.response_topic", "replies/d1",
						"mqtt.correlation_data", base64.StdEncoding.EncodeToString([]byte{0, 1, 0xff}))
					require.NoError(t, ts.send(context.Background(), service.MessageBatch{m}))
					waitFor(t, 5*time.Second, "the message", func() bool { return len(sub.all()) == 1 })
					p := sub.all()[0]
					require.NotNil(t, p.Properties)
					assert.Equal(t, tc.want, []paho5.UserProperty(p.Properties.User))
					assert.Equal(t, "application/json", p.Properties.ContentType)
					assert.Equal(t, "replies/d1", p.Properties.ResponseTopic)
					assert.Equal(t, []byte{0, 1, 0xff}, p.Properties.CorrelationData)
				})
			}
		})
	}
}

// TestV5BrokerRefusesProtocol: a broker that does not take MQTT 5 fails the
// connection with an error saying to set protocol_version: 3.1.1 (a raw TCP
// server answering CONNECT as such brokers do).
func TestV5BrokerRefusesProtocol(t *testing.T) {
	for _, tc := range []struct {
		name   string
		answer []byte
		want   string
	}{
		{"v5 CONNACK 0x84", []byte{0x20, 0x03, 0x00, 0x84, 0x00}, "CONNACK reason code 0x84"},
		{"3.1.1 CONNACK rc 1", []byte{0x20, 0x02, 0x00, 0x01}, "no MQTT 5 CONNACK"},
		{"connection closed", nil, "no MQTT 5 CONNACK"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			require.NoError(t, err)
			served := make(chan struct{})
			go func() {
				defer close(served)
				conn, err := ln.Accept()
				if err != nil {
					return
				}
				defer conn.Close()
				buf := make([]byte, 512)
				_, _ = conn.Read(buf) // the CONNECT
				if tc.answer != nil {
					_, _ = conn.Write(tc.answer)
					_, _ = conn.Read(buf) // until the client closes
				}
			}()
			t.Cleanup(func() { _ = ln.Close(); <-served })
			env := service.NewEnvironment()
			require.NoError(t, Register(env))
			conf, err := Spec().ParseYAML(fmt.Sprintf("urls: [ tcp://%s ]\nprotocol_version: \"5\"\ntopic: a\nconnect_timeout: 2s\n", ln.Addr()), env)
			require.NoError(t, err)
			o, err := newOutput(conf, service.MockResources(), nil)
			require.NoError(t, err)
			err = o.Connect(context.Background())
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
			assert.Contains(t, err.Error(), "set protocol_version: 3.1.1")
			require.NoError(t, o.Close(context.Background()))
		})
	}
}

// TestV5CloseStopsGoroutines: Close ends a v5 connection with a QoS 1
// publish in flight (mochi withholds its PUBACK): the write fails, and the
// package's TestMain (goleak) finds no goroutine left behind.
func TestV5CloseStopsGoroutines(t *testing.T) {
	b := newBroker(t)
	id := mqtttest.RunID(t)
	b.hook.withhold(id)
	env := service.NewEnvironment()
	require.NoError(t, Register(env))
	conf, err := Spec().ParseYAML(fmt.Sprintf("urls: [ %s ]\nprotocol_version: \"5\"\ntopic: %s/x\nwrite_timeout: 30s\n", b.url(), id), env)
	require.NoError(t, err)
	o, err := newOutput(conf, service.MockResources(), nil)
	require.NoError(t, err)
	require.NoError(t, o.Connect(context.Background()))
	res := make(chan error, 1)
	go func() { res <- o.WriteBatch(context.Background(), service.MessageBatch{msg("held")}) }()
	waitFor(t, 5*time.Second, "the publish", func() bool { return b.hook.dropped.Load() == 1 })
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	require.NoError(t, o.Close(ctx))
	assert.Less(t, time.Since(start), 5*time.Second)
	require.Error(t, <-res, "the unacknowledged write failed, it was not acked")
}

// TestV5ReceiveMaximum: the transport keeps at most the broker's Receive
// Maximum (mochi announcing 2) QoS 1 publications in flight: with the
// PUBACKs withheld, a third publish waits for a slot, is never written,
// and fails after write_timeout (the output retries it).
func TestV5ReceiveMaximum(t *testing.T) {
	caps := mochi.NewDefaultServerCapabilities()
	caps.ReceiveMaximum = 2
	b := newBrokerWith(t, caps)
	id := mqtttest.RunID(t)
	b.hook.withhold(id)
	tr, err := dial5(context.Background(), connConfig{urls: []string{b.url()}, clientID: id, keepalive: 30 * time.Second, connectTimeout: 5 * time.Second, writeTimeout: 500 * time.Millisecond})
	require.NoError(t, err)
	t.Cleanup(func() { tr.close(0) })
	var ds []delivery
	for i := 0; i < 2; i++ {
		start := time.Now()
		ds = append(ds, tr.publish(publication{topic: id + "/x", qos: 1, payload: []byte("p")}))
		assert.Less(t, time.Since(start), 300*time.Millisecond, "a free slot: publish returns at once")
	}
	start := time.Now()
	d := tr.publish(publication{topic: id + "/x", qos: 1, payload: []byte("third")})
	assert.GreaterOrEqual(t, time.Since(start), 450*time.Millisecond, "the window is full: publish waits")
	<-d.Done()
	require.Error(t, d.Error())
	assert.Contains(t, d.Error().Error(), "Receive Maximum")
	assert.EqualValues(t, 2, b.hook.dropped.Load(), "the third was never sent")
	for _, d := range ds {
		select {
		case <-d.Done():
			t.Fatal("completed without a PUBACK")
		default:
		}
	}
	tr.close(0)
	for _, d := range ds {
		<-d.Done()
		require.ErrorIs(t, d.Error(), errConnLost)
	}
}

// TestV5MosquittoDeniedThenDisconnects: Mosquitto 2 with
// max_queued_messages 0 (the harness default) answers an ACL-denied QoS 1
// publish from an MQTT 5 client with PUBACK 0x87 and then closes the
// connection: the denied message is dead-lettered as permission_denied, the
// messages behind it are retried after the reconnect and delivered.
func TestV5MosquittoDeniedThenDisconnects(t *testing.T) {
	m := startACLMosquitto(t)
	id := mqtttest.RunID(t)
	sub := subscribe5(t, m.URL(), "devices/#")
	dlPath := filepath.Join(t.TempDir(), "dl.jsonl")
	ts := startStream(t, fmt.Sprintf(`
retry:
  backoff: { initial_interval: 50ms, max_interval: 200ms }
  output:
    mqtt:
      urls: [ %s ]
      protocol_version: "5"
      topic: '${! @t }'
      connect_timeout: 2s
      dead_letter:
        output:
          file: { path: %s, codec: lines }
          processors:
            - mapping: 'root = meta("dead_letter_reason") + " " + content().string()'
`, m.URL(), dlPath))
	batch := service.MessageBatch{
		msg("ok1", "t", "devices/"+id+"/a"),
		msg("denied", "t", "secret/"+id),
		msg("ok2", "t", "devices/"+id+"/a"),
		msg("ok3", "t", "devices/"+id+"/b"),
	}
	// One message per batch, all in flight at once, as the danube input
	// delivers them.
	done := make(chan error, len(batch))
	for _, m := range batch {
		go func() { done <- ts.send(context.Background(), service.MessageBatch{m}) }()
	}
	timeout := time.After(20 * time.Second)
	for range batch {
		select {
		case err := <-done:
			require.NoError(t, err)
		case <-timeout:
			t.Fatal("a refused message stopped the flow")
		}
	}
	bs, err := os.ReadFile(dlPath)
	require.NoError(t, err)
	// Dead-lettered at least once (a connection lost before the PUBACK
	// 0x87 was read retries the message: another dead letter).
	lines := strings.Split(strings.TrimSpace(string(bs)), "\n")
	require.NotEmpty(t, lines)
	for _, l := range lines {
		assert.Equal(t, "permission_denied denied", l, "dead letters: %q", string(bs))
	}
	want := map[string]bool{"ok1": true, "ok2": true, "ok3": true}
	waitFor(t, 5*time.Second, "ok1..ok3", func() bool {
		seen := map[string]bool{}
		for _, g := range sub.all() {
			seen[string(g.Payload)] = true
		}
		for k := range want {
			if !seen[k] {
				return false
			}
		}
		return true
	})
	for _, g := range sub.all() {
		assert.NotEqual(t, "denied", string(g.Payload))
	}
}
