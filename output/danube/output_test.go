package danubeout_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	_ "github.com/redpanda-data/benthos/v4/public/components/io"
	_ "github.com/redpanda-data/benthos/v4/public/components/pure"

	"github.com/benthos-danube/benthos-danube/internal/danube"
	"github.com/benthos-danube/benthos-danube/internal/danube/danubetest"
	"github.com/benthos-danube/benthos-danube/metrics/prometheus"
	danubeout "github.com/benthos-danube/benthos-danube/output/danube"
)

func newEnv(t testing.TB) *service.Environment {
	t.Helper()
	env := service.NewEnvironment()
	require.NoError(t, danubeout.Register(env))
	require.NoError(t, prometheus.Register(env))
	return env
}

// runPipeline builds a stream from input/output YAML and runs it until the
// input ends. It returns the Run error.
func runPipeline(t testing.TB, env *service.Environment, input, output string, timeout time.Duration) error {
	t.Helper()
	strm := buildStream(t, env, input, output)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return strm.Run(ctx)
}

func buildStream(t testing.TB, env *service.Environment, input, output string) *service.Stream {
	t.Helper()
	b := env.NewStreamBuilder()
	require.NoError(t, b.SetLoggerYAML("level: none"))
	require.NoError(t, b.AddInputYAML(input))
	require.NoError(t, b.AddOutputYAML(output))
	strm, err := b.Build()
	require.NoError(t, err)
	t.Cleanup(func() { _ = strm.StopWithin(5 * time.Second) })
	return strm
}

func allMessages(s *danubetest.Server, base string, partitions int) []danubetest.Message {
	if partitions == 0 {
		return s.Messages(base)
	}
	var out []danubetest.Message
	for i := 0; i < partitions; i++ {
		out = append(out, s.Messages(fmt.Sprintf("%s-part-%d", base, i))...)
	}
	return out
}

func TestOrderPerKey10k(t *testing.T) {
	for _, batch := range []int{1, 64} {
		t.Run(fmt.Sprintf("batches of %d", batch), func(t *testing.T) { orderPerKey(t, batch) })
	}
}

// orderPerKey sends 10,000 messages over 16 keys in batches of batch (as the
// mqtt input's natural batches arrive) and checks every key's order.
func orderPerKey(t *testing.T, batch int) {
	srv := danubetest.NewTestServer(t)
	env := newEnv(t)
	const n, keys, parts = 10000, 16, 4
	err := runPipeline(t, env, fmt.Sprintf(`
generate:
  count: %d
  interval: ""
  batch_size: %d
  mapping: |
    let n = counter()
    root = $n.string()
    meta mqtt_topic = "dev-%%d".format($n %% %d)
`, n, batch, keys), fmt.Sprintf(`
danube:
  url: %s
  topic: /default/orders
  partitions: %d
  max_in_flight: 64
`, srv.URL(), parts), 60*time.Second)
	require.NoError(t, err)

	msgs := allMessages(srv, "/default/orders", parts)
	require.Len(t, msgs, n, "every message arrives exactly once")
	last := map[string]int{}
	seen := map[int]bool{}
	for _, m := range msgs {
		v, err := strconv.Atoi(string(m.Payload))
		require.NoError(t, err)
		seen[v] = true
		require.True(t, m.HasRoutingKey)
		require.Equal(t, danube.PartitionForKey(m.RoutingKey, parts), m.Partition, "key %s on its partition", m.RoutingKey)
		require.Greater(t, v, last[m.RoutingKey], "order of key %s", m.RoutingKey)
		last[m.RoutingKey] = v
		assert.Equal(t, m.RoutingKey, m.Attributes["mqtt.topic"])
		assert.NotContains(t, m.Attributes, "danube_output_seq")
	}
	assert.Len(t, seen, n)
	assert.Len(t, last, keys)
}

func TestTopicInterpolationAndMetadataRouting(t *testing.T) {
	srv := danubetest.NewTestServer(t)
	env := newEnv(t)
	// danube_topic picks one of three topics; t2 is partitioned through the
	// danube_partitions metadata and reliable through danube_reliable_dispatch.
	err := runPipeline(t, env, `
generate:
  count: 30
  interval: ""
  mapping: |
    let n = counter()
    root = $n.string()
    meta danube_topic = "/default/t%d".format($n % 3)
    meta danube_partitions = if $n % 3 == 2 { 3 } else { 0 }
    meta danube_reliable_dispatch = $n % 3 == 1
    meta mqtt_topic = "k%d".format($n)
`, fmt.Sprintf(`danube: { url: %s }`, srv.URL()), 30*time.Second)
	require.NoError(t, err)

	assert.Len(t, srv.Messages("/default/t0"), 10)
	assert.Len(t, srv.Messages("/default/t1"), 10)
	assert.Empty(t, srv.Messages("/default/t2"))
	assert.Len(t, allMessages(srv, "/default/t2", 3), 10)
	for _, m := range allMessages(srv, "/default/t2", 3) {
		assert.Equal(t, danube.PartitionForKey(m.RoutingKey, 3), m.Partition)
	}
	// Reliable topics stamp WAL offsets 0..9.
	var offs []uint64
	for _, m := range srv.Messages("/default/t1") {
		offs = append(offs, m.Offset)
	}
	assert.Contains(t, offs, uint64(9))
	for _, m := range srv.Messages("/default/t0") {
		assert.NotContains(t, m.Attributes, "danube_topic")
		assert.NotContains(t, m.Attributes, "danube_partitions")
		assert.Equal(t, "default-t0", strings.TrimPrefix(m.ProducerName, "benthos-danube-"))
	}
}

func TestConfiguredPartitionsAndNoKey(t *testing.T) {
	srv := danubetest.NewTestServer(t)
	env := newEnv(t)
	err := runPipeline(t, env, `
generate: { count: 40, interval: "", mapping: 'root = counter().string()' }
`, fmt.Sprintf(`danube: { url: %s, topic: /default/rr, partitions: 4 }`, srv.URL()), 30*time.Second)
	require.NoError(t, err)
	for i := 0; i < 4; i++ {
		ms := srv.Messages(fmt.Sprintf("/default/rr-part-%d", i))
		assert.Len(t, ms, 10, "round robin without a key")
		for _, m := range ms {
			assert.False(t, m.HasRoutingKey)
		}
	}
}

func TestAttributeFilter(t *testing.T) {
	input := `
generate:
  count: 1
  interval: ""
  mapping: |
    root = "hello"
    meta mqtt_topic = "a/b"
    meta mqtt_qos = 1
    meta mqtt_retained = false
    meta danube_topic = "/default/attrs"
    meta source = "mqtt"
`
	t.Run("default excludes danube_*", func(t *testing.T) {
		srv := danubetest.NewTestServer(t)
		require.NoError(t, runPipeline(t, newEnv(t), input, fmt.Sprintf(`danube: { url: %s, attribute_names: metadata }`, srv.URL()), 30*time.Second))
		ms := srv.Messages("/default/attrs")
		require.Len(t, ms, 1)
		assert.Equal(t, map[string]string{"mqtt_topic": "a/b", "mqtt_qos": "1", "mqtt_retained": "false", "source": "mqtt"}, ms[0].Attributes)
		assert.Equal(t, "a/b", ms[0].RoutingKey)
	})
	t.Run("include_prefixes", func(t *testing.T) {
		srv := danubetest.NewTestServer(t)
		require.NoError(t, runPipeline(t, newEnv(t), input, fmt.Sprintf(`
danube:
  url: %s
  key: ""
  attributes:
    include_prefixes: [ mqtt_q, sou ]
`, srv.URL()), 30*time.Second))
		ms := srv.Messages("/default/attrs")
		require.Len(t, ms, 1)
		assert.Equal(t, map[string]string{"mqtt.qos": "1", "source": "mqtt"}, ms[0].Attributes)
		assert.False(t, ms[0].HasRoutingKey)
	})
}

// lossTest streams n keyed messages slowly enough for disrupt to happen
// mid-stream and checks that every one of them arrived.
func lossTest(t *testing.T, n int, disrupt func(srv *danubetest.Server)) {
	srv := danubetest.NewTestServer(t)
	env := newEnv(t)
	strm := buildStream(t, env, fmt.Sprintf(`
generate:
  count: %d
  interval: 2ms
  mapping: |
    let n = counter()
    root = $n.string()
    meta mqtt_topic = "dev-%%d".format($n %% 4)
`, n), fmt.Sprintf(`
danube:
  url: %s
  topic: /default/loss
  partitions: 2
  send_timeout: 15s
`, srv.URL()))
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- strm.Run(ctx) }()

	require.Eventually(t, func() bool { return srv.TotalMessages() >= n/4 }, 30*time.Second, 5*time.Millisecond)
	disrupt(srv)
	require.NoError(t, <-done)

	seen := map[int]int{}
	for _, m := range allMessages(srv, "/default/loss", 2) {
		v, err := strconv.Atoi(string(m.Payload))
		require.NoError(t, err)
		seen[v]++
	}
	for i := 1; i <= n; i++ {
		require.NotZero(t, seen[i], "message %d lost", i)
	}
}

func TestBrokerRestartMidStreamLosesNothing(t *testing.T) {
	lossTest(t, 1500, func(srv *danubetest.Server) { srv.Restart() })
}

func TestBrokerDownFiveSecondsLosesNothing(t *testing.T) {
	lossTest(t, 1500, func(srv *danubetest.Server) {
		srv.Stop()
		before := srv.TotalMessages()
		time.Sleep(5 * time.Second)
		assert.Equal(t, before, srv.TotalMessages())
		require.NoError(t, srv.Start())
	})
}

func TestBrokerDownLongerThanSendTimeoutReconnects(t *testing.T) {
	srv := danubetest.NewTestServer(t)
	env := newEnv(t)
	b := env.NewStreamBuilder()
	require.NoError(t, b.SetLoggerYAML("level: none"))
	require.NoError(t, b.AddOutputYAML(fmt.Sprintf(`danube: { url: %s, topic: /default/nc, send_timeout: 500ms }`, srv.URL())))
	produce, err := b.AddProducerFunc()
	require.NoError(t, err)
	strm, err := b.Build()
	require.NoError(t, err)
	t.Cleanup(func() { _ = strm.StopWithin(5 * time.Second) })
	go func() { _ = strm.Run(context.Background()) }()

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	require.NoError(t, produce(ctx, service.NewMessage([]byte("one"))))
	srv.Stop()
	res := make(chan error, 1)
	go func() { res <- produce(ctx, service.NewMessage([]byte("two"))) }()
	time.Sleep(2 * time.Second) // several send timeouts: ErrNotConnected, reconnect loop
	select {
	case err := <-res:
		t.Fatalf("write returned while the broker was down: %v", err)
	default:
	}
	require.NoError(t, srv.Start())
	require.NoError(t, <-res)
	waitMessages(t, srv, "/default/nc", 2, 10*time.Second)
}

func TestInvalidStaticTopic(t *testing.T) {
	env := newEnv(t)
	out := `danube: { url: http://127.0.0.1:1, topic: "default/no-leading-slash" }`

	t.Run("lint", func(t *testing.T) {
		lints, err := env.NewComponentConfigLinter().LintOutputYAML([]byte(out))
		require.NoError(t, err)
		require.NotEmpty(t, lints)
		assert.Contains(t, lints[0].What, "field topic")
		assert.Contains(t, lints[0].What, "/namespace/topic")
	})
	t.Run("start-up", func(t *testing.T) {
		b := env.NewStreamBuilder()
		b.DisableLinting()
		require.NoError(t, b.SetLoggerYAML("level: none"))
		require.NoError(t, b.AddInputYAML(`generate: { count: 1, interval: "", mapping: 'root = "x"' }`))
		require.NoError(t, b.AddOutputYAML(out))
		strm, err := b.Build()
		require.NoError(t, err)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		err = strm.Run(ctx)
		require.Error(t, err)
		assert.Contains(t, err.Error(), "field topic")
		assert.Contains(t, err.Error(), "/namespace/topic")
	})
}

func TestLintRejectsUnknownField(t *testing.T) {
	env := newEnv(t)
	lints, err := env.NewComponentConfigLinter().LintOutputYAML([]byte(`danube: { url: http://127.0.0.1:6650, topik: /default/x }`))
	require.NoError(t, err)
	require.NotEmpty(t, lints)
	assert.Contains(t, lints[0].What, "topik")

	lints, err = env.NewComponentConfigLinter().LintOutputYAML([]byte(`danube: { url: http://127.0.0.1:6650, topic: '/default/${! @x }' }`))
	require.NoError(t, err)
	assert.Empty(t, lints, "interpolated topics are checked per message")
}

func producerStream(t *testing.T, env *service.Environment, output string) service.MessageHandlerFunc {
	t.Helper()
	b := env.NewStreamBuilder()
	require.NoError(t, b.SetLoggerYAML("level: none"))
	require.NoError(t, b.AddOutputYAML(output))
	produce, err := b.AddProducerFunc()
	require.NoError(t, err)
	strm, err := b.Build()
	require.NoError(t, err)
	t.Cleanup(func() { _ = strm.StopWithin(5 * time.Second) })
	go func() { _ = strm.Run(context.Background()) }()
	return produce
}

// With dead_letter.enabled: false (the strict mode) an undeliverable message
// fails, alone.
func TestStrictModeBadTopicFailsOnlyThatMessage(t *testing.T) {
	srv := danubetest.NewTestServer(t)
	produce := producerStream(t, newEnv(t), fmt.Sprintf(`danube: { url: %s, topic: '${! @t }', dead_letter: { enabled: false } }`, srv.URL()))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	msg := func(topic, body string) *service.Message {
		m := service.NewMessage([]byte(body))
		m.MetaSetMut("t", topic)
		return m
	}
	require.NoError(t, produce(ctx, msg("/default/good", "1")))
	err := produce(ctx, msg("/default/bad topic!", "2"))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "field topic")
	assert.Contains(t, err.Error(), "/namespace/topic")
	require.NoError(t, produce(ctx, msg("/default/good", "3")))
	assert.Len(t, srv.Messages("/default/good"), 2)

	// In one batch only the bad message fails.
	b := env2BatchStream(t, srv)
	batch := service.MessageBatch{msg("/default/good", "4"), msg("nope", "5"), msg("/default/good", "6")}
	err = b(ctx, batch)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "nope")
	assert.Len(t, srv.Messages("/default/good"), 4)
}

func env2BatchStream(t *testing.T, srv *danubetest.Server) service.MessageBatchHandlerFunc {
	b := newEnv(t).NewStreamBuilder()
	require.NoError(t, b.SetLoggerYAML("level: none"))
	require.NoError(t, b.AddOutputYAML(fmt.Sprintf(`danube: { url: %s, topic: '${! @t }', dead_letter: { enabled: false } }`, srv.URL())))
	produce, err := b.AddBatchProducerFunc()
	require.NoError(t, err)
	strm, err := b.Build()
	require.NoError(t, err)
	t.Cleanup(func() { _ = strm.StopWithin(5 * time.Second) })
	go func() { _ = strm.Run(context.Background()) }()
	return produce
}

// In the strict mode an oversized message fails at once, and Benthos'
// fallback can route it.
func TestStrictModeOversizedMessageFailsFastAndCanBeRouted(t *testing.T) {
	srv := danubetest.NewTestServer(t)
	big := strings.Repeat("x", 5<<20)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	t.Run("error", func(t *testing.T) {
		produce := producerStream(t, newEnv(t), fmt.Sprintf(`danube: { url: %s, topic: /default/big, dead_letter: { enabled: false } }`, srv.URL()))
		start := time.Now()
		err := produce(ctx, service.NewMessage([]byte(big)))
		require.Error(t, err)
		assert.Less(t, time.Since(start), 2*time.Second)
		assert.Contains(t, err.Error(), "too large")
		require.NoError(t, produce(ctx, service.NewMessage([]byte("small"))))
		assert.Len(t, srv.Messages("/default/big"), 1)
	})
	t.Run("fallback", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "dlq.txt")
		produce := producerStream(t, newEnv(t), fmt.Sprintf(`
fallback:
  - danube: { url: %s, topic: /default/big2, dead_letter: { enabled: false } }
  - file: { path: %s, codec: lines }
`, srv.URL(), path))
		require.NoError(t, produce(ctx, service.NewMessage([]byte(big))))
		require.NoError(t, produce(ctx, service.NewMessage([]byte("small"))))
		assert.Len(t, srv.Messages("/default/big2"), 1)
		require.Eventually(t, func() bool {
			b, _ := os.ReadFile(path)
			return len(b) == len(big)+1
		}, 5*time.Second, 10*time.Millisecond)
	})
}

func TestSpecFieldsDocumented(t *testing.T) {
	env := newEnv(t)
	var found bool
	env.WalkOutputs(func(name string, conf *service.ConfigView) {
		if name != "danube" {
			return
		}
		found = true
		assert.NotEmpty(t, conf.Summary())
		assert.NotEmpty(t, conf.Description())
		js, err := conf.FormatJSON()
		require.NoError(t, err)
		var spec struct {
			Config struct {
				Children []field `json:"children"`
			} `json:"config"`
		}
		require.NoError(t, json.Unmarshal(js, &spec))
		require.NotEmpty(t, spec.Config.Children)
		var names []string
		for _, f := range spec.Config.Children {
			names = append(names, f.Name)
			assert.NotEmpty(t, f.Description, "field %s has no description", f.Name)
			assert.NotEmpty(t, f.Examples, "field %s has no example", f.Name)
			if f.Name == "schema" {
				for _, c := range f.Children {
					assert.NotEmpty(t, c.Description, "field schema.%s", c.Name)
					assert.NotEmpty(t, c.Examples, "field schema.%s", c.Name)
				}
			}
		}
		for _, want := range []string{"url", "topic", "partitions", "reliable_dispatch", "key", "producer_name",
			"attributes", "schema", "tls", "token", "token_file", "send_timeout", "max_producers",
			"producer_idle_timeout", "max_in_flight", "batching"} {
			assert.Contains(t, names, want)
		}
	})
	assert.True(t, found)
}

type field struct {
	Name        string  `json:"name"`
	Description string  `json:"description"`
	Examples    []any   `json:"examples"`
	Children    []field `json:"children"`
}

func freePort(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	return addr
}

func TestPrometheusMetricsEndpoint(t *testing.T) {
	srv := danubetest.NewTestServer(t)
	env := newEnv(t)
	addr := freePort(t)
	b := env.NewStreamBuilder()
	require.NoError(t, b.SetYAML(fmt.Sprintf(`
http:
  enabled: true
  address: %s
input:
  generate: { interval: 20ms, mapping: 'root = "m"' }
output:
  danube: { url: %s, topic: /default/metrics, producer_idle_timeout: 1h }
metrics:
  prometheus: {}
logger:
  level: none
`, addr, srv.URL())))
	strm, err := b.Build()
	require.NoError(t, err)
	t.Cleanup(func() { _ = strm.StopWithin(5 * time.Second) })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = strm.Run(ctx) }()
	waitMessages(t, srv, "/default/metrics", 5, 20*time.Second)

	var body string
	require.Eventually(t, func() bool {
		resp, err := http.Get("http://" + addr + "/metrics")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		bs, _ := io.ReadAll(resp.Body)
		body = string(bs)
		return resp.StatusCode == 200 && strings.Contains(body, "output_sent{")
	}, 10*time.Second, 50*time.Millisecond, "body: %s", body)
	assert.True(t, strings.Contains(body, "# TYPE output_sent counter"))
	assert.True(t, strings.Contains(body, `output_sent{label="",path="root.output"} `))
	assert.Contains(t, body, "# TYPE danube_output_producers_open gauge")
	for _, want := range []string{
		`danube_output_producers_open{label="",path="root.output"} 1`,
		`danube_output_send_retries{label="",path="root.output"} 0`,
		`danube_output_producers_recreated{label="",path="root.output"} 0`,
		"# TYPE output_latency_ns histogram",
	} {
		assert.True(t, strings.Contains(body, want), "/metrics lacks %s", want)
	}
}

func TestProducersIdleClosedAndBounded(t *testing.T) {
	srv := danubetest.NewTestServer(t)
	env := newEnv(t)
	err := runPipeline(t, env, `
generate:
  count: 12
  interval: ""
  mapping: |
    let n = counter()
    root = $n.string()
    meta danube_topic = "/default/p%d".format($n % 6)
`, fmt.Sprintf(`danube: { url: %s, max_producers: 2, producer_idle_timeout: 50ms }`, srv.URL()), 30*time.Second)
	require.NoError(t, err)
	total := 0
	for i := 0; i < 6; i++ {
		total += srv.MessageCount(fmt.Sprintf("/default/p%d", i))
	}
	assert.Equal(t, 12, total)
}

// TestAttributeValuesAsBenthosFormatsThem: attribute values are the text
// Benthos gives metadata of every type (the output formats common types
// itself, for speed).
func TestAttributeValuesAsBenthosFormatsThem(t *testing.T) {
	srv := danubetest.NewTestServer(t)
	produce := producerStream(t, newEnv(t), fmt.Sprintf(`danube: { url: %s, topic: /default/attrs }`, srv.URL()))
	m := service.NewMessage([]byte("x"))
	values := map[string]any{
		"s": "text", "i": 42, "i64": int64(-7), "u64": uint64(9), "f": 2.5, "b": true,
		"bytes": []byte("raw"), "list": []any{"a", 1}, "obj": map[string]any{"k": "v"},
	}
	for k, v := range values {
		m.MetaSetMut(k, v)
	}
	want := map[string]string{}
	for k := range values {
		want[k], _ = m.MetaGet(k)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, produce(ctx, m))
	msgs := srv.Messages("/default/attrs")
	require.Len(t, msgs, 1)
	assert.Equal(t, want, msgs[0].Attributes)
}

// TestRegisterOnEmptyEnvironment: Register brings everything the output
// needs, its ordering stage's processor included, into an environment that
// starts empty.
func TestRegisterOnEmptyEnvironment(t *testing.T) {
	env := service.NewEmptyEnvironment()
	require.NoError(t, danubeout.Register(env))
	var outputs, processors []string
	env.WalkOutputs(func(name string, _ *service.ConfigView) { outputs = append(outputs, name) })
	env.WalkProcessors(func(name string, _ *service.ConfigView) { processors = append(processors, name) })
	assert.Equal(t, []string{"danube"}, outputs)
	assert.Equal(t, []string{"danube_output_order_stamp"}, processors)
}

// waitMessages waits until the test broker's topic holds n messages.
func waitMessages(t *testing.T, srv *danubetest.Server, topic string, n int, timeout time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	require.NoError(t, srv.WaitForMessages(ctx, topic, n))
}
