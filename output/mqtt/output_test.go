package mqttout

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/redpanda-data/benthos/v4/public/service"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/benthos-danube/benthos-danube/internal/deadletter"
	"github.com/benthos-danube/benthos-danube/internal/mqtttest"
	"github.com/benthos-danube/benthos-danube/tests/harness"
)

// TestPublishesInTopicOrder: an ordered input (generate, batches of 5,
// no wait for acks), several topics, max_in_flight 8 writer goroutines
// racing each other; every subscriber sees its topic's messages byte for
// byte and in order.
func TestPublishesInTopicOrder(t *testing.T) {
	for _, bc := range brokers(t) {
		for _, proto := range []string{"3.1.1", "5"} {
			t.Run(bc.name+"/v"+proto, func(t *testing.T) {
				id := mqtttest.RunID(t)
				sub := subscribe(t, bc.url, id+"/#", 2)
				const devs, perDev = 3, 100
				startConfig(t, fmt.Sprintf(`
input:
  generate:
    count: %d
    interval: ""
    batch_size: 5
    mapping: |
      let n = counter() - 1
      meta dev = "d%%d".format($n %% %d)
      meta qos = ($n %% 3).string()
      root = "cmd-%%d-\u0000\u00ff-%%d".format($n %% %d, ($n / %d).floor())
output:
  mqtt:
    urls: [ %s ]
    client_id: %s-out
    protocol_version: "%s"
    topic: '%s/${! @dev }/commands'
    qos: '${! @qos }'
    max_in_flight: 8
`, devs*perDev, devs, devs, devs, bc.url, id, proto, id))
				waitFor(t, 20*time.Second, "all messages", func() bool { return sub.count() >= devs*perDev })
				per := map[string][]string{}
				for _, g := range sub.all() {
					per[g.topic] = append(per[g.topic], g.payload)
					assert.False(t, g.retained)
				}
				require.Len(t, per, devs)
				for d := 0; d < devs; d++ {
					topic := fmt.Sprintf("%s/d%d/commands", id, d)
					var want []string
					for i := 0; i < perDev; i++ {
						want = append(want, fmt.Sprintf("cmd-%d-\x00\u00ff-%d", d, i))
					}
					assert.Equal(t, want, per[topic], "order of %s", topic)
				}
			})
		}
	}
}

// TestQoSAndRetain: the flags reach the subscriber.
func TestQoSAndRetain(t *testing.T) {
	b := newBroker(t)
	id := mqtttest.RunID(t)
	ts := startStream(t, fmt.Sprintf(`
mqtt:
  urls: [ %s ]
  topic: '%s/${! @n }'
  qos: '${! @q }'
  retained: '${! @r }'
`, b.url(), id))
	for i, c := range []struct{ q, r string }{{"0", "false"}, {"1", "true"}, {"2", "true"}} {
		require.NoError(t, ts.send(context.Background(), service.MessageBatch{msg("p", "n", fmt.Sprint(i), "q", c.q, "r", c.r)}))
	}
	// A new subscriber gets the retained ones, with RETAIN set.
	sub := subscribe(t, b.url(), id+"/#", 2)
	waitFor(t, 5*time.Second, "retained messages", func() bool { return sub.count() >= 2 })
	for _, g := range sub.all() {
		assert.True(t, g.retained)
		assert.Equal(t, map[string]byte{id + "/1": 1, id + "/2": 2}[g.topic], g.qos, g.topic)
	}
}

// TestAckWaitsForPUBACK: a broker that never acknowledges a publish gets
// no Benthos ack: the write fails after write_timeout and is retried by the
// caller; once the broker acknowledges, the same message is acked.
func TestAckWaitsForPUBACK(t *testing.T) {
	for _, qos := range []int{1, 2} {
		t.Run(fmt.Sprintf("qos%d", qos), func(t *testing.T) {
			b := newBroker(t)
			id := mqtttest.RunID(t)
			b.hook.withhold(id + "/held")
			ts := startStream(t, fmt.Sprintf(`
mqtt:
  urls: [ %s ]
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
			assert.GreaterOrEqual(t, time.Since(start), 1500*time.Millisecond)
			assert.EqualValues(t, 1, b.hook.dropped.Load(), "the broker received it")
			// Other topics are not held up by the missing PUBACK.
			require.NoError(t, ts.send(context.Background(), service.MessageBatch{msg("y", "t", "free")}))
			// The broker answers again: the retry is acknowledged.
			b.hook.withhold("")
			require.NoError(t, ts.send(context.Background(), service.MessageBatch{msg("x", "t", "held")}))
		})
	}
}

// TestReconnects: the broker goes away and comes back on the same port;
// writes during the outage wait (Benthos reconnects with back-off and
// writes again) and every message arrives.
func TestReconnects(t *testing.T) {
	b := newBroker(t)
	id := mqtttest.RunID(t)
	ts := startStream(t, fmt.Sprintf(`
mqtt:
  urls: [ %s ]
  topic: '%s/x'
  write_timeout: 2s
  connect_timeout: 1s
`, b.url(), id))
	require.NoError(t, ts.send(context.Background(), service.MessageBatch{msg("before")}))
	b.stop()
	res := make(chan error, 1)
	go func() { res <- ts.send(context.Background(), service.MessageBatch{msg("during")}) }()
	time.Sleep(700 * time.Millisecond)
	b.start()
	sub := subscribe(t, b.url(), id+"/x", 1)
	select {
	case err := <-res:
		require.NoError(t, err)
	case <-time.After(20 * time.Second):
		t.Fatal("no reconnect")
	}
	require.NoError(t, ts.send(context.Background(), service.MessageBatch{msg("after")}))
	waitFor(t, 5*time.Second, "after", func() bool {
		for _, g := range sub.all() {
			if g.payload == "after" {
				return true
			}
		}
		return false
	})
	var seen []string
	for _, g := range sub.all() {
		seen = append(seen, g.payload)
	}
	assert.Contains(t, seen, "during", "the message written during the outage arrived")
}

// TestTLS: the output connects over TLS with the tls block (the CA given
// as a file).
func TestTLS(t *testing.T) {
	certPEM, keyPEM := selfSignedPEM(t)
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	require.NoError(t, err)
	dir := t.TempDir()
	ca := filepath.Join(dir, "ca.pem")
	require.NoError(t, os.WriteFile(ca, certPEM, 0o600))
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	_ = l.Close()
	b := newBroker(t)
	b.stop()
	b.start(listeners.NewTCP(listeners.Config{ID: "tls", Address: addr, TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}}}))
	id := mqtttest.RunID(t)
	sub := subscribe(t, b.url(), id, 1)
	ts := startStream(t, fmt.Sprintf(`
mqtt:
  urls: [ ssl://%s ]
  topic: %s
  tls:
    enabled: true
    root_cas_file: %s
`, addr, id, ca))
	require.NoError(t, ts.send(context.Background(), service.MessageBatch{msg("over tls")}))
	waitFor(t, 5*time.Second, "the TLS message", func() bool { return sub.count() == 1 })
	assert.Equal(t, "over tls", sub.all()[0].payload)
}

func selfSignedPEM(t *testing.T) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	kb, err := x509.MarshalECPrivateKey(key)
	require.NoError(t, err)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb})
}

// TestDeadLetters: messages that can never be published (a wildcard or
// empty topic, a bad QoS, marked by the pipeline) go to dead_letter.output
// with the dead_letter_* metadata and are acknowledged; the others of the
// same batch are published.
func TestDeadLetters(t *testing.T) {
	b := newBroker(t)
	id := mqtttest.RunID(t)
	sub := subscribe(t, b.url(), id+"/#", 1)
	dlPath := filepath.Join(t.TempDir(), "dl.jsonl")
	ts := startStream(t, fmt.Sprintf(`
mqtt:
  urls: [ %s ]
  topic: '${! @t }'
  qos: '${! @q.or("1") }'
  dead_letter:
    output:
      file:
        path: %s
        codec: lines
      processors:
        - mapping: |
            root = meta().filter(kv -> kv.key.has_prefix("dead_letter_") && kv.key != "dead_letter_time")
            root.payload = content().string()
`, b.url(), dlPath))
	batch := service.MessageBatch{
		msg("ok1", "t", id+"/a"),
		msg("wild", "t", id+"/+/x"),
		msg("empty", "t", ""),
		msg("badqos", "t", id+"/a", "q", "3"),
		msg("marked", "t", id+"/a", deadletter.Reason, "schema_invalid", deadletter.Error, "not a command"),
		msg("ok2", "t", id+"/a"),
	}
	require.NoError(t, ts.send(context.Background(), batch))
	waitFor(t, 5*time.Second, "ok1, ok2", func() bool { return sub.count() == 2 })
	assert.Equal(t, "ok1", sub.all()[0].payload)
	assert.Equal(t, "ok2", sub.all()[1].payload)
	var lines []string
	waitFor(t, 5*time.Second, "4 dead letters", func() bool {
		bs, _ := os.ReadFile(dlPath)
		lines = strings.Split(strings.TrimSpace(string(bs)), "\n")
		return len(lines) == 4
	})
	want := []string{
		`{"dead_letter_error":"field topic resolved to \"` + id + `/+/x\": topic name \"` + id + `/+/x\" must not contain '+', '#' or U+0000","dead_letter_mqtt_topic":"","dead_letter_reason":"invalid_topic","payload":"wild"}`,
		`{"dead_letter_error":"field topic resolved to \"\": topic name must not be empty","dead_letter_mqtt_topic":"","dead_letter_reason":"invalid_topic","payload":"empty"}`,
		`{"dead_letter_error":"field qos: must be 0, 1 or 2, got \"3\"","dead_letter_mqtt_topic":"` + id + `/a","dead_letter_reason":"invalid_message","payload":"badqos"}`,
		`{"dead_letter_error":"not a command","dead_letter_mqtt_topic":"` + id + `/a","dead_letter_reason":"schema_invalid","payload":"marked"}`,
	}
	assert.Equal(t, want, lines)
}

// TestRefusalByDisconnect: mochi closes the connection of an MQTT 3.1.1
// client whose QoS 1 publish its ACL denies. The refused message is found by
// publishing the messages of the lost connection alone (suspects.go) and
// dead-lettered with reason rejected; the other messages, before and after it
// and on other topics, are delivered.
func TestRefusalByDisconnect(t *testing.T) {
	b := newBroker(t)
	id := mqtttest.RunID(t)
	b.hook.deny(id + "/denied")
	sub := subscribe(t, b.url(), id+"/#", 1)
	dlPath := filepath.Join(t.TempDir(), "dl.jsonl")
	// The retry output stands for the input's redelivery of a nacked
	// message (the danube input nacks, Danube redelivers).
	ts := startStream(t, fmt.Sprintf(`
retry:
  backoff: { initial_interval: 50ms, max_interval: 200ms }
  output:
    mqtt:
      urls: [ %s ]
      topic: '%s/${! @t }'
      connect_timeout: 2s
      dead_letter:
        output:
          file: { path: %s, codec: lines }
          processors:
            - mapping: 'root = meta("dead_letter_reason") + " " + content().string()'
`, b.url(), id, dlPath))
	batch := service.MessageBatch{msg("ok1", "t", "a"), msg("bad", "t", "denied"), msg("ok2", "t", "a"), msg("ok3", "t", "b")}
	done := make(chan error, 1)
	go func() { done <- ts.send(context.Background(), batch) }()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(30 * time.Second):
		t.Fatal("the refused message stopped the flow")
	}
	bs, err := os.ReadFile(dlPath)
	require.NoError(t, err)
	assert.Equal(t, "rejected bad\n", string(bs))
	assert.GreaterOrEqual(t, b.hook.refused.Load(), int64(isolatedStrikes))
	seen := map[string]int{}
	waitFor(t, 5*time.Second, "ok1..3", func() bool {
		seen = map[string]int{}
		for _, g := range sub.all() {
			seen[g.payload]++
		}
		return seen["ok1"] > 0 && seen["ok2"] > 0 && seen["ok3"] > 0
	})
	assert.Zero(t, seen["bad"])
	t.Logf("deliveries (duplicates from the retries): %v; broker refusals: %d", seen, b.hook.refused.Load())
	// The flow continues normally afterwards.
	require.NoError(t, ts.send(context.Background(), service.MessageBatch{msg("after", "t", "a")}))
}

// TestNoDeadLetterOutputFails: without dead_letter.output a message that
// can never be published fails (it is not dropped), the others pass.
func TestNoDeadLetterOutputFails(t *testing.T) {
	b := newBroker(t)
	id := mqtttest.RunID(t)
	ts := startStream(t, fmt.Sprintf(`
mqtt:
  urls: [ %s ]
  topic: '${! @t }'
`, b.url()))
	sub := subscribe(t, b.url(), id+"/#", 1)
	err := ts.send(context.Background(), service.MessageBatch{msg("a", "t", id+"/ok"), msg("b", "t", "#")})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "set dead_letter.output")
	waitFor(t, 5*time.Second, "the valid message", func() bool { return sub.count() == 1 })
}

// TestLoopGuard: a message that came from MQTT (source=mqtt, mqtt_topic or
// mqtt.topic metadata) is acknowledged without being published, unless
// skip_mqtt_origin is false.
func TestLoopGuard(t *testing.T) {
	for _, skip := range []bool{true, false} {
		t.Run(fmt.Sprint("skip=", skip), func(t *testing.T) {
			b := newBroker(t)
			id := mqtttest.RunID(t)
			sub := subscribe(t, b.url(), id+"/#", 1)
			ts := startStream(t, fmt.Sprintf(`
mqtt:
  urls: [ %s ]
  topic: '%s/x'
  skip_mqtt_origin: %v
`, b.url(), id, skip))
			batch := service.MessageBatch{
				msg("uplinked-connector", "source", "mqtt"),
				msg("uplinked-bridge", "mqtt_topic", "devices/d1/telemetry"),
				msg("uplinked-dotted", "mqtt.topic", "devices/d1/telemetry"),
				msg("command", "source", "app"),
			}
			require.NoError(t, ts.send(context.Background(), batch))
			want := 1
			if !skip {
				want = 4
			}
			waitFor(t, 5*time.Second, "published", func() bool { return sub.count() >= want })
			time.Sleep(200 * time.Millisecond)
			require.Equal(t, want, sub.count())
			if skip {
				assert.Equal(t, "command", sub.all()[0].payload)
			}
		})
	}
}

// TestCloseStopsGoroutines: after Close nothing of the output keeps
// running (TestMain's goleak check covers every test; this one closes an
// output with a write in flight).
func TestCloseStopsGoroutines(t *testing.T) {
	b := newBroker(t)
	id := mqtttest.RunID(t)
	b.hook.withhold(id)
	env := service.NewEnvironment()
	require.NoError(t, Register(env))
	conf, err := Spec().ParseYAML(fmt.Sprintf("urls: [ %s ]\ntopic: %s/x\nwrite_timeout: 30s\n", b.url(), id), env)
	require.NoError(t, err)
	o, err := newOutput(conf, service.MockResources(), dial311)
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
	require.ErrorIs(t, o.WriteBatch(context.Background(), service.MessageBatch{msg("late")}), errClosed)
	require.NoError(t, o.Close(context.Background()), "Close is idempotent")
}

// brokerCase is a broker a test runs against.
type brokerCase struct {
	name string
	url  string
}

// brokers returns the embedded mochi broker, plus MQTT_TEST_URL when set.
func brokers(t *testing.T) []brokerCase {
	out := []brokerCase{{name: "mochi", url: newBroker(t).url()}}
	if u := externalBrokerURL(t); u != "" {
		out = append(out, brokerCase{name: "external", url: u})
	}
	return out
}

// startACLMosquitto starts a private Mosquitto 2 whose ACL lets anonymous
// clients read and write devices/# only, with extra config lines.
func startACLMosquitto(t *testing.T, extra ...string) *harness.Mosquitto {
	t.Helper()
	dir := t.TempDir()
	acl := filepath.Join(dir, "acl")
	require.NoError(t, os.WriteFile(acl, []byte("topic readwrite devices/#\n"), 0o644))
	return harness.NewTestMosquitto(t, harness.MosquittoOptions{Dir: dir, Extra: append([]string{"acl_file " + acl, "log_type all"}, extra...)})
}

// TestMosquittoRefusals is the evidence for what an MQTT 3.1.1 client can
// learn of Mosquitto's refusals (a private Mosquitto 2 with an acl_file and
// max_packet_size 2048; max_queued_messages at a limit, as by default):
//   - a publish the ACL denies is acknowledged (PUBACK; Mosquitto logs
//     "Denied PUBLISH" and "Sending PUBACK ... rc135", but a 3.1.1 PUBACK
//     has no reason code) and dropped: the output cannot tell it from a
//     delivery, so it is acknowledged to the pipeline;
//   - a packet over max_packet_size closes the connection: the output finds
//     the message by publishing it alone and dead-letters it (rejected);
//   - the other messages are delivered.
func TestMosquittoRefusals(t *testing.T) {
	m := startACLMosquitto(t, "max_packet_size 2048", "max_queued_messages 1000")
	sub := subscribe(t, m.URL(), "devices/#", 1)
	dlPath := filepath.Join(t.TempDir(), "dl.jsonl")
	ts := startStream(t, fmt.Sprintf(`
retry:
  backoff: { initial_interval: 50ms, max_interval: 200ms }
  output:
    mqtt:
      urls: [ %s ]
      topic: '${! @t }'
      connect_timeout: 2s
      dead_letter:
        output:
          file: { path: %s, codec: lines }
          processors:
            - mapping: 'root = meta("dead_letter_reason") + " " + content().string().slice(0, 3)'
`, m.URL(), dlPath))
	big := "big" + strings.Repeat("x", 4096)
	batch := service.MessageBatch{
		msg("ok1", "t", "devices/a/commands"),
		msg("denied", "t", "secret/a/commands"),
		msg(big, "t", "devices/a/commands"),
		msg("ok2", "t", "devices/b/commands"),
	}
	done := make(chan error, 1)
	go func() { done <- ts.send(context.Background(), batch) }()
	select {
	case err := <-done:
		require.NoError(t, err, "every message acknowledged: delivered, dropped by the ACL, or dead-lettered")
	case <-time.After(20 * time.Second):
		t.Fatal("a refused message stopped the flow")
	}
	bs, err := os.ReadFile(dlPath)
	require.NoError(t, err)
	assert.Equal(t, "rejected big\n", string(bs), "only the oversize packet is detected")
	waitFor(t, 5*time.Second, "ok1, ok2", func() bool {
		n := 0
		for _, g := range sub.all() {
			if g.payload == "ok1" || g.payload == "ok2" {
				n++
			}
		}
		return n >= 2
	})
	for _, g := range sub.all() {
		assert.NotEqual(t, "denied", g.payload)
	}
	logText, err := os.ReadFile(m.LogPath())
	require.NoError(t, err)
	assert.Contains(t, string(logText), "Denied PUBLISH", "Mosquitto denied the publish")
	assert.Contains(t, string(logText), "oversize packet", "Mosquitto closed the connection for the big packet")
}

// TestMosquittoDeniedThenDisconnects: with max_queued_messages 0 (no limit,
// as the chaos harness runs it), Mosquitto 2.0.11 acknowledges an
// ACL-denied QoS 1 publish and then closes the connection ("Bad socket
// read/write"). The denied message counts as delivered (its PUBACK came);
// the messages in flight behind it fail with the connection and are
// written again after the reconnect.
func TestMosquittoDeniedThenDisconnects(t *testing.T) {
	m := startACLMosquitto(t) // the harness config has max_queued_messages 0
	sub := subscribe(t, m.URL(), "devices/#", 1)
	env := service.NewEnvironment()
	require.NoError(t, Register(env))
	conf, err := Spec().ParseYAML(fmt.Sprintf("urls: [ %s ]\ntopic: '${! @t }'\n", m.URL()), env)
	require.NoError(t, err)
	o, err := newOutput(conf, service.MockResources(), dial311)
	require.NoError(t, err)
	t.Cleanup(func() { _ = o.Close(context.Background()) })
	ctx := context.Background()
	require.NoError(t, o.Connect(ctx))
	sent := service.MessageBatch{msg("denied", "t", "secret/x"), msg("behind", "t", "devices/x")}
	ix := sent.Index()
	err = o.WriteBatch(ctx, sent)
	var be *service.BatchError
	if err != nil && errors.As(err, &be) {
		// The denied message is acknowledged; the one behind it fails
		// with the connection.
		assert.Equal(t, 1, be.IndexedErrors(), "%v", err)
		be.WalkMessagesIndexedBy(ix, func(i int, _ *service.Message, err error) bool {
			if i == 0 {
				assert.NoError(t, err, "the denied message was PUBACKed")
			} else {
				assert.ErrorIs(t, err, errConnLost)
			}
			return true
		})
	} else {
		// The PUBACK of the second arrived before the connection closed.
		require.NoError(t, err)
	}
	waitFor(t, 5*time.Second, "the disconnect", func() bool {
		select {
		case <-o.cur.Load().t.lost():
			return true
		default:
			return false
		}
	})
	for o.Connect(ctx) != nil {
		time.Sleep(100 * time.Millisecond)
	}
	require.NoError(t, o.WriteBatch(ctx, service.MessageBatch{msg("behind", "t", "devices/x")}))
	waitFor(t, 5*time.Second, "behind", func() bool { return sub.count() >= 1 })
	logText, err := os.ReadFile(m.LogPath())
	require.NoError(t, err)
	assert.Regexp(t, `Denied PUBLISH .*secret/x`, string(logText))
	assert.Regexp(t, `Sending PUBACK to \S+ \(m1, rc135\)`, string(logText))
	assert.Contains(t, string(logText), "Bad socket read/write", "Mosquitto closed the connection after the denied publish")
}

// TestCloseWithUnusedDeadLetterOutput: a dead_letter.output that never got
// a message does not hold up Close (Benthos closes with a context without
// deadline).
func TestCloseWithUnusedDeadLetterOutput(t *testing.T) {
	b := newBroker(t)
	env := service.NewEnvironment()
	require.NoError(t, Register(env))
	conf, err := Spec().ParseYAML(fmt.Sprintf("urls: [ %s ]\ntopic: x\ndead_letter:\n  output:\n    drop: {}\n", b.url()), env)
	require.NoError(t, err)
	o, err := newOutput(conf, service.MockResources(), dial311)
	require.NoError(t, err)
	require.NoError(t, o.Connect(context.Background()))
	done := make(chan error, 1)
	go func() { done <- o.Close(context.Background()) }()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(5 * time.Second):
		t.Fatal("Close hung on the unused dead_letter output")
	}
}

// TestMosquittoWithheldAck: a Mosquitto that stops answering (SIGSTOP, the
// connection stays open, the PUBLISH waits in its socket) sends no PUBACK: the write is
// not acknowledged to the pipeline; once the broker runs again, the write
// of the same message is.
func TestMosquittoWithheldAck(t *testing.T) {
	m := harness.NewTestMosquitto(t, harness.MosquittoOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	env := service.NewEnvironment()
	require.NoError(t, Register(env))
	conf, err := Spec().ParseYAML(fmt.Sprintf("urls: [ %s ]\ntopic: devices/x/commands\nwrite_timeout: 1s\nkeepalive: 60s\n", m.URL()), env)
	require.NoError(t, err)
	o, err := newOutput(conf, service.MockResources(), dial311)
	require.NoError(t, err)
	t.Cleanup(func() { _ = o.Close(context.Background()) })
	require.NoError(t, o.Connect(ctx))
	require.NoError(t, o.WriteBatch(ctx, service.MessageBatch{msg("before")}))

	pid := m.PID()
	require.NoError(t, syscall.Kill(pid, syscall.SIGSTOP))
	stopped := true
	t.Cleanup(func() {
		if stopped {
			_ = syscall.Kill(pid, syscall.SIGCONT)
		}
	})
	start := time.Now()
	err = o.WriteBatch(ctx, service.MessageBatch{msg("held")})
	require.Error(t, err, "no PUBACK, no ack")
	assert.Contains(t, err.Error(), "no acknowledgement from the broker within write_timeout")
	assert.GreaterOrEqual(t, time.Since(start), time.Second)

	require.NoError(t, syscall.Kill(pid, syscall.SIGCONT))
	stopped = false
	require.NoError(t, o.WriteBatch(ctx, service.MessageBatch{msg("held")}), "acknowledged once the broker answers")
}
