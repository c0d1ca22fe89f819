package danubeout_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/benthos-danube/benthos-danube/internal/danube"
	"github.com/benthos-danube/benthos-danube/internal/danube/danubetest"
	"github.com/benthos-danube/benthos-danube/internal/deadletter"
)

const telemetrySchema = `{"type":"object","properties":{"device":{"type":"string"},"temp":{"type":"number"}},"required":["device","temp"]}`

func schemaFile(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "telemetry.json")
	require.NoError(t, os.WriteFile(p, []byte(body), 0o600))
	return p
}

func msgTo(topic, payload string) *service.Message {
	m := service.NewMessage([]byte(payload))
	m.MetaSetMut("t", topic)
	m.MetaSetMut("mqtt_topic", "dev/"+topic)
	return m
}

// TestSchemasValidateAndStamp: a json_schema entry registers its subject at
// start-up and stamps schema id and version on every valid message; an
// invalid payload is dead-lettered (schema_invalid, with the validation
// error) and the messages behind it arrive. A placeholder entry binds every
// topic it matches; other topics and the dead-letter records carry no
// schema.
func TestSchemasValidateAndStamp(t *testing.T) {
	srv := danubetest.NewTestServer(t, danubetest.WithNamespaces("iot"))
	file := schemaFile(t, telemetrySchema)
	produce := producerStream(t, newEnv(t), fmt.Sprintf(`
danube:
  url: %s
  topic: '${! @t }'
  schemas:
    - {topic: /iot/telemetry, subject: telemetry-v1, type: json_schema, file: '%s'}
    - {topic: '/iot/{dev}_status', subject: status, type: String}
`, srv.URL(), file))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, m := range []*service.Message{
		msgTo("/iot/telemetry", `{"device":"d1","temp":21.5}`),
		msgTo("/iot/telemetry", `{"device":"d1","temp":"hot"}`),
		msgTo("/iot/telemetry", `not json`),
		msgTo("/iot/telemetry", `{"device":"d2","temp":19}`),
		msgTo("/iot/d7_status", `online`),
		msgTo("/iot/free", `anything`),
	} {
		require.NoError(t, produce(ctx, m), "every message is acknowledged")
	}

	c, err := danube.NewClient(srv.URL())
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	id, version, err := c.LatestSchema(ctx, "telemetry-v1")
	require.NoError(t, err, "the subject was registered")
	assert.Equal(t, uint32(1), version)
	assert.Equal(t, 1, srv.SchemaRegistrations("telemetry-v1"))

	got := srv.Messages("/iot/telemetry")
	require.Len(t, got, 2)
	assert.Equal(t, `{"device":"d1","temp":21.5}`, string(got[0].Payload))
	assert.Equal(t, `{"device":"d2","temp":19}`, string(got[1].Payload), "the messages behind the invalid ones flow on")
	for _, m := range got {
		require.NotNil(t, m.SchemaID)
		require.NotNil(t, m.SchemaVersion)
		assert.Equal(t, id, *m.SchemaID)
		assert.Equal(t, uint32(1), *m.SchemaVersion)
	}

	sid, _, err := c.LatestSchema(ctx, "status")
	require.NoError(t, err)
	st := srv.Messages("/iot/d7_status")
	require.Len(t, st, 1)
	require.NotNil(t, st[0].SchemaID)
	assert.Equal(t, sid, *st[0].SchemaID)
	free := srv.Messages("/iot/free")
	require.Len(t, free, 1)
	assert.Nil(t, free[0].SchemaID, "a topic without entry has no schema")

	dl := srv.Messages(deadletter.DefaultTopic)
	require.Len(t, dl, 2)
	assert.Equal(t, `{"device":"d1","temp":"hot"}`, string(dl[0].Payload))
	assert.Equal(t, "not json", string(dl[1].Payload))
	for _, r := range dl {
		assert.Equal(t, deadletter.ReasonSchemaInvalid, r.Attributes[deadletter.Reason])
		assert.Equal(t, "/iot/telemetry", r.Attributes[deadletter.Topic])
		assert.Nil(t, r.SchemaID, "dead-letter records are not bound to a schema")
	}
	assert.Contains(t, dl[0].Attributes[deadletter.Error], "payload does not match the JSON Schema of subject telemetry-v1")
	assert.Contains(t, dl[0].Attributes[deadletter.Error], "at '/temp': got string, want number")
	assert.Contains(t, dl[1].Attributes[deadletter.Error], "payload is not valid JSON")
}

// TestSchemasRegisteredOnce: two output lifetimes against one broker
// register the subject once; the second finds it and binds to it.
func TestSchemasRegisteredOnce(t *testing.T) {
	srv := danubetest.NewTestServer(t, danubetest.WithNamespaces("iot"))
	file := schemaFile(t, telemetrySchema)
	conf := fmt.Sprintf(`
danube:
  url: %s
  topic: /iot/telemetry
  schemas:
    - {topic: /iot/telemetry, subject: telemetry-v1, type: json_schema, file: '%s'}
`, srv.URL(), file)
	for life := 1; life <= 2; life++ {
		env := newEnv(t)
		b := env.NewStreamBuilder()
		require.NoError(t, b.SetLoggerYAML("level: none"))
		require.NoError(t, b.AddOutputYAML(conf))
		produce, err := b.AddProducerFunc()
		require.NoError(t, err)
		strm, err := b.Build()
		require.NoError(t, err)
		done := make(chan error, 1)
		go func() { done <- strm.Run(context.Background()) }()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		require.NoError(t, produce(ctx, service.NewMessage([]byte(fmt.Sprintf(`{"device":"d","temp":%d}`, life)))))
		cancel()
		require.NoError(t, strm.StopWithin(5*time.Second))
		<-done
		assert.Equal(t, 1, srv.SchemaRegistrations("telemetry-v1"), "lifetime %d", life)
	}
	msgs := srv.Messages("/iot/telemetry")
	require.Len(t, msgs, 2)
	assert.Equal(t, *msgs[0].SchemaID, *msgs[1].SchemaID)
	assert.Equal(t, uint32(1), *msgs[1].SchemaVersion)
}

// TestBrokerSchemaRejectionIsPermanent: on an enforce topic with payload
// validation the broker refuses a payload its registered schema rejects
// (here the subject's registered version is stricter than the local file,
// which is not registered again, and a topic bound through schema.subject,
// which the output does not validate); the output dead-letters it as
// schema_rejected and the messages behind it arrive.
func TestBrokerSchemaRejectionIsPermanent(t *testing.T) {
	for _, tc := range []struct{ name, binding string }{
		{"schemas entry with a drifted file", "schemas: [{topic: /iot/strict, subject: strict, type: json_schema, file: '%s'}]"},
		{"schema.subject", "schema: {subject: strict}%.0s"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := danubetest.NewTestServer(t, danubetest.WithNamespaces("iot"))
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			c, err := danube.NewClient(srv.URL())
			require.NoError(t, err)
			t.Cleanup(func() { _ = c.Close() })
			id, _, err := c.RegisterSchema(ctx, "strict", danube.SchemaTypeJSONSchema, []byte(telemetrySchema))
			require.NoError(t, err)
			require.NoError(t, srv.CreateTopic("/iot/strict", false))
			require.NoError(t, srv.SetTopicSchemaPolicy("/iot/strict", "strict", danubetest.PolicyEnforce, true))

			produce := producerStream(t, newEnv(t), fmt.Sprintf("danube:\n  url: %s\n  topic: '${! @t }'\n  "+tc.binding+"\n", srv.URL(), schemaFile(t, `{}`)))
			for _, p := range []string{`{"device":"a","temp":1}`, `{"device":"b"}`, `{"device":"c","temp":3}`} {
				require.NoError(t, produce(ctx, msgTo("/iot/strict", p)))
			}
			got := srv.Messages("/iot/strict")
			require.Len(t, got, 2)
			assert.Equal(t, `{"device":"c","temp":3}`, string(got[1].Payload), "the flow continues")
			assert.Equal(t, id, *got[1].SchemaID)
			dl := srv.Messages(deadletter.DefaultTopic)
			require.Len(t, dl, 1)
			assert.Equal(t, `{"device":"b"}`, string(dl[0].Payload))
			assert.Equal(t, deadletter.ReasonSchemaRejected, dl[0].Attributes[deadletter.Reason])
			assert.Contains(t, dl[0].Attributes[deadletter.Error], "PermissionDenied")
			assert.Contains(t, dl[0].Attributes[deadletter.Error], "Schema validation failed")
			assert.Equal(t, 1, srv.SchemaRegistrations("strict"), "an existing subject is not registered again")
		})
	}
}
