package danubeout

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/benthos-danube/benthos-danube/internal/syncbuf"
)

// newTestOutput builds the output from yaml with a captured logger; Close
// runs on cleanup.
func newTestOutput(t *testing.T, yaml string) (*output, *syncbuf.Buffer) {
	t.Helper()
	conf, err := Spec().ParseYAML(yaml, service.NewEnvironment())
	require.NoError(t, err)
	logs := &syncbuf.Buffer{}
	logger := service.NewLoggerFromSlog(slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	o, err := newOutput(conf, service.MockResources(service.MockResourcesOptUseLogger(logger)))
	require.NoError(t, err)
	t.Cleanup(func() { _ = o.Close(context.Background()) })
	return o, logs
}

func connect(t *testing.T, o *output) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return o.Connect(ctx)
}

func write(t *testing.T, o *output, payload string) error {
	t.Helper()
	m := service.NewMessage([]byte(payload))
	m.MetaSetMut("mqtt_topic", "dev/1")
	return o.WriteBatch(context.Background(), service.MessageBatch{m})
}

// TestURLCredentialsNotShown: a Danube url with user:password@ is refused at
// start-up (and lint, by the same check) with the password masked: the error
// is logged.
func TestURLCredentialsNotShown(t *testing.T) {
	for _, u := range []string{"https://bridge:hunter2@127.0.0.1:6650", "bridge:hunter2@127.0.0.1:6650", "http://bridge:hu%zznter2@127.0.0.1:6650"} {
		t.Run(u, func(t *testing.T) {
			conf, err := Spec().ParseYAML("url: "+u+"\ntopic: /default/x\ntls: {enabled: true}\n", service.NewEnvironment())
			require.NoError(t, err)
			_, err = newOutput(conf, service.MockResources())
			require.Error(t, err)
			assert.Contains(t, err.Error(), "must not carry credentials")
			assert.NotContains(t, err.Error(), "hunter2")
			assert.NotContains(t, err.Error(), "nter2")
		})
	}
}
