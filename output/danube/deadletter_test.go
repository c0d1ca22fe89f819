package danubeout_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"

	"github.com/benthos-danube/benthos-danube/internal/danube/danubetest"
	"github.com/benthos-danube/benthos-danube/internal/deadletter"
)

// TestDeadLetterByDefault sends one message that can never be delivered per
// case, with no dead_letter configuration at all, and checks that the send
// succeeds, that the record is on /default/dead_letter with its payload,
// reason and intended topic, and that a good message behind it is delivered.
func TestDeadLetterByDefault(t *testing.T) {
	for _, tc := range []struct {
		name      string
		opts      []danubetest.Option
		setup     func(t *testing.T, srv *danubetest.Server)
		topic     string            // the message's topic (meta t)
		meta      map[string]string // more metadata
		conf      string            // more dead_letter fields
		reason    string
		wantTopic string // dead_letter_topic
		errHas    string
	}{
		{name: "bad interpolated topic", topic: "/default/bad topic!", reason: deadletter.ReasonInvalidTopic, wantTopic: "/default/bad topic!", errHas: "/namespace/topic"},
		{name: "marked by the pipeline", topic: "/default/ok", meta: map[string]string{deadletter.Reason: "invalid_payload", deadletter.Error: "not JSON"}, reason: "invalid_payload", wantTopic: "/default/ok", errHas: "not JSON"},
		{name: "namespace missing", topic: "/nosuchns/t", reason: deadletter.ReasonNamespaceMissing, wantTopic: "/nosuchns/t", errHas: "nosuchns"},
		{
			name: "topic missing, no auto-create", opts: []danubetest.Option{danubetest.WithAutoCreateTopics(false)},
			setup: func(t *testing.T, srv *danubetest.Server) {
				require.NoError(t, srv.CreateTopic("/default/dead_letter", true))
				require.NoError(t, srv.CreateTopic("/default/good", false))
			},
			topic: "/default/absent", reason: deadletter.ReasonTopicMissing, wantTopic: "/default/absent", errHas: "Unable to find the topic",
		},
		{
			name:  "producer refused",
			setup: func(t *testing.T, srv *danubetest.Server) { srv.FailNext("CreateProducer", 1, codes.PermissionDenied) },
			topic: "/default/denied", reason: deadletter.ReasonPermissionDenied, wantTopic: "/default/denied",
		},
		{
			name: "over the topic's max_message_size", opts: []danubetest.Option{danubetest.WithMaxMessageSize(8)}, conf: ", max_payload_bytes: 4",
			topic: "/default/small", reason: deadletter.ReasonTooLarge, wantTopic: "/default/small", errHas: "exceeds maximum allowed",
		},
		{
			// An MQTT 5 user property too large for a Danube request: the
			// payload is small, the encoded message is not.
			name: "attributes over the request limit", meta: map[string]string{"mqtt_user_blob": strings.Repeat("x", 4<<20+1)},
			topic: "/default/big_attrs", reason: deadletter.ReasonTooLarge, wantTopic: "/default/big_attrs", errHas: "message too large",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := danubetest.NewTestServer(t, tc.opts...)
			if tc.setup != nil {
				tc.setup(t, srv)
			}
			spool := t.TempDir()
			produce := producerStream(t, newEnv(t), fmt.Sprintf(`danube: { url: %s, topic: '${! @t }', dead_letter: { spool_dir: '%s'%s } }`, srv.URL(), spool, tc.conf))
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			payload := []byte("poison\x00\xff payload")
			m := service.NewMessage(payload)
			m.MetaSetMut("t", tc.topic)
			m.MetaSetMut("mqtt_topic", "sensors/x/zone1")
			m.MetaSetMut("mqtt_qos", 1)
			for k, v := range tc.meta {
				m.MetaSetMut(k, v)
			}
			start := time.Now()
			require.NoError(t, produce(ctx, m), "a dead-lettered message is acknowledged")

			recs := srv.Messages(deadletter.DefaultTopic)
			require.Len(t, recs, 1)
			r := recs[0]
			if tc.reason == deadletter.ReasonTooLarge {
				// Whole in the spool, the record carries what fits.
				assert.Equal(t, len(r.Payload) < len(payload), r.Attributes[deadletter.Truncated] == "true", "truncated exactly when the record's payload is cut")
				got, err := os.ReadFile(r.Attributes[deadletter.SpoolFile])
				require.NoError(t, err)
				assert.Equal(t, payload, got)
				// The spool's description keeps every attribute, the
				// oversized ones too.
				desc, err := os.ReadFile(strings.TrimSuffix(r.Attributes[deadletter.SpoolFile], ".payload") + ".json")
				require.NoError(t, err)
				for k := range tc.meta {
					assert.Contains(t, string(desc), k)
				}
			} else {
				assert.Equal(t, payload, r.Payload, "byte for byte")
			}
			assert.Equal(t, tc.reason, r.Attributes[deadletter.Reason])
			assert.Equal(t, tc.wantTopic, r.Attributes[deadletter.Topic])
			assert.Contains(t, r.Attributes[deadletter.Error], tc.errHas)
			assert.Equal(t, "sensors/x/zone1", r.Attributes["mqtt_topic"])
			assert.Equal(t, "1", r.Attributes["mqtt_qos"])
			ts, err := time.Parse(time.RFC3339Nano, r.Attributes[deadletter.Time])
			require.NoError(t, err)
			assert.WithinDuration(t, start, ts, 30*time.Second)
			assert.Zero(t, srv.MessageCount(tc.topic))

			// The flow goes on behind it.
			good := service.NewMessage([]byte("good"))
			good.MetaSetMut("t", "/default/good")
			require.NoError(t, produce(ctx, good))
			assert.Equal(t, 1, srv.MessageCount("/default/good"))
		})
	}
}

func TestDeadLetterNoMappingWithDefaultTopic(t *testing.T) {
	srv := danubetest.NewTestServer(t)
	produce := producerStream(t, newEnv(t), fmt.Sprintf(`danube: { url: %s, dead_letter: { spool_dir: '%s' } }`, srv.URL(), t.TempDir()))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	require.NoError(t, produce(ctx, service.NewMessage([]byte("x"))))
	recs := srv.Messages(deadletter.DefaultTopic)
	require.Len(t, recs, 1)
	assert.Equal(t, deadletter.ReasonNoMapping, recs[0].Attributes[deadletter.Reason])
}

// A payload over the 4 MiB request limit: its record on the topic holds the
// first max_payload_bytes with the size and SHA-256 of the whole, and the
// whole payload is in the spool with a description beside it.
func TestDeadLetterTooLargeSpooled(t *testing.T) {
	srv := danubetest.NewTestServer(t)
	spool := filepath.Join(t.TempDir(), "spool")
	produce := producerStream(t, newEnv(t), fmt.Sprintf(`danube: { url: %s, topic: /default/big, dead_letter: { spool_dir: '%s', max_payload_bytes: 1000 } }`, srv.URL(), spool))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	big := bytes.Repeat([]byte("0123456789abcdef"), (5<<20)/16)
	big[0] = 0xff
	start := time.Now()
	require.NoError(t, produce(ctx, service.NewMessage(big)))
	assert.Less(t, time.Since(start), 5*time.Second)

	recs := srv.Messages(deadletter.DefaultTopic)
	require.Len(t, recs, 1)
	r := recs[0]
	sum := sha256.Sum256(big)
	assert.Equal(t, big[:1000], r.Payload)
	assert.Equal(t, deadletter.ReasonTooLarge, r.Attributes[deadletter.Reason])
	assert.Equal(t, "true", r.Attributes[deadletter.Truncated])
	assert.Equal(t, fmt.Sprint(len(big)), r.Attributes[deadletter.Size])
	assert.Equal(t, hex.EncodeToString(sum[:]), r.Attributes[deadletter.SHA256])
	path := r.Attributes[deadletter.SpoolFile]
	require.True(t, strings.HasPrefix(path, spool), path)
	got, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.True(t, bytes.Equal(big, got), "the spool holds the whole payload")
	desc, err := os.ReadFile(strings.TrimSuffix(path, ".payload") + ".json")
	require.NoError(t, err)
	assert.Contains(t, string(desc), `"dead_letter_reason": "too_large"`)
	assert.Zero(t, srv.MessageCount("/default/big"))
}

// With dead_letter.output the record goes whole to any Benthos output.
func TestDeadLetterToBenthosOutput(t *testing.T) {
	srv := danubetest.NewTestServer(t)
	dir := t.TempDir()
	produce := producerStream(t, newEnv(t), fmt.Sprintf(`
danube:
  url: %s
  topic: '${! @t }'
  dead_letter:
    output:
      file:
        path: %s/${! meta("dead_letter_reason") }-${! meta("dead_letter_topic").replace_all("/", "_") }.bin
        codec: all-bytes
`, srv.URL(), dir))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	big := bytes.Repeat([]byte{7}, 5<<20)
	m := service.NewMessage(big)
	m.MetaSetMut("t", "/default/big")
	require.NoError(t, produce(ctx, m))
	m = service.NewMessage([]byte("p"))
	m.MetaSetMut("t", "/nope/x")
	require.NoError(t, produce(ctx, m))

	require.Eventually(t, func() bool {
		b1, _ := os.ReadFile(filepath.Join(dir, "too_large-_default_big.bin"))
		b2, _ := os.ReadFile(filepath.Join(dir, "namespace_missing-_nope_x.bin"))
		return bytes.Equal(b1, big) && string(b2) == "p"
	}, 10*time.Second, 20*time.Millisecond)
	assert.Zero(t, srv.MessageCount(deadletter.DefaultTopic))
}

// A failing dead-letter destination is an outage: the message is nacked
// (held and retried), never acknowledged.
func TestDeadLetterDestinationFailureHolds(t *testing.T) {
	srv := danubetest.NewTestServer(t)
	produce := producerStream(t, newEnv(t), fmt.Sprintf(`danube: { url: %s, topic: '${! @t }', send_timeout: 2s, dead_letter: { topic: /missingns/dlq } }`, srv.URL()))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	m := service.NewMessage([]byte("p"))
	m.MetaSetMut("t", "/default/bad topic")
	err := produce(ctx, m)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "dead-letter destination failed")
	assert.Contains(t, err.Error(), "missingns")
}

// Transient failures never dead-letter: with the broker down the send fails
// (and is retried by the input), nothing is written anywhere.
func TestTransientFailureIsNotDeadLettered(t *testing.T) {
	srv := danubetest.NewTestServer(t)
	produce := producerStream(t, newEnv(t), fmt.Sprintf(`danube: { url: %s, topic: /default/t, send_timeout: 500ms }`, srv.URL()))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	require.NoError(t, produce(ctx, service.NewMessage([]byte("1"))))
	srv.FailNext("SendMessage", 1000, codes.Unavailable)
	sctx, scancel := context.WithTimeout(ctx, 3*time.Second)
	defer scancel()
	require.Error(t, produce(sctx, service.NewMessage([]byte("2"))))
	srv.FailNext("SendMessage", 0, codes.OK)
	assert.Zero(t, srv.MessageCount(deadletter.DefaultTopic))
}

// Strict mode keeps today's stop: the permanent failure is returned.
func TestDeadLetterDisabledIsStrict(t *testing.T) {
	srv := danubetest.NewTestServer(t)
	produce := producerStream(t, newEnv(t), fmt.Sprintf(`danube: { url: %s, topic: /nosuchns/t, dead_letter: { enabled: false } }`, srv.URL()))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	err := produce(ctx, service.NewMessage([]byte("1")))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "retried for ever")
	assert.Zero(t, srv.MessageCount(deadletter.DefaultTopic))
}
