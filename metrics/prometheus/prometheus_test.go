package prometheus

import (
	"context"
	"io"
	"net/http/httptest"
	"testing"

	"github.com/redpanda-data/benthos/v4/public/service"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func newExporter(t *testing.T, yaml string) *Exporter {
	t.Helper()
	conf, err := Spec().ParseYAML(yaml, service.NewEnvironment())
	require.NoError(t, err)
	m, err := New(conf, nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = m.Close(context.Background()) })
	return m.(*Exporter)
}

func scrape(t *testing.T, e *Exporter) string {
	t.Helper()
	rec := httptest.NewRecorder()
	e.HandlerFunc()(rec, httptest.NewRequest("GET", "/metrics", nil))
	require.Equal(t, 200, rec.Code)
	b, err := io.ReadAll(rec.Body)
	require.NoError(t, err)
	return string(b)
}

func TestExporterTypesAndNames(t *testing.T) {
	e := newExporter(t, `{}`)
	e.NewCounterCtor("output_sent", "label", "path")("", "root.output").Incr(3)
	// The same name again reuses the vector.
	e.NewCounterCtor("output_sent", "label", "path")("", "root.output").Incr(2)
	e.NewGaugeCtor("danube_output_producers_open")().Set(4)
	g := e.NewGaugeCtor("weird.name-x")()
	g.(interface{ SetFloat64(float64) }).SetFloat64(1.5)
	e.NewTimerCtor("output_latency_ns", "path")("root.output").Timing(2_000_000) // 2ms
	// Reused with different labels: dropped, no panic.
	e.NewCounterCtor("output_sent", "other")("x").Incr(1)

	body := scrape(t, e)
	assert.Contains(t, body, "# TYPE output_sent counter")
	assert.Contains(t, body, `output_sent{label="",path="root.output"} 5`)
	assert.Contains(t, body, "danube_output_producers_open 4")
	assert.Contains(t, body, "weird_name_x 1.5")
	assert.Contains(t, body, "# TYPE output_latency_ns histogram")
	assert.Contains(t, body, `output_latency_ns_bucket{path="root.output",le="0.005"} 1`)
	assert.Contains(t, body, `output_latency_ns_sum{path="root.output"} 0.002`)
	assert.NotContains(t, body, "go_goroutines")
}

func TestExporterPrefixAndCollectors(t *testing.T) {
	e := newExporter(t, `
prefix: bd
add_go_metrics: true
add_process_metrics: true
histogram_buckets: [ 0.001, 0.01 ]
`)
	e.NewCounterCtor("input_received")().Incr(1)
	e.NewTimerCtor("t_ns")().Timing(5_000_000)
	body := scrape(t, e)
	assert.Contains(t, body, "bd_input_received 1")
	assert.Contains(t, body, `bd_t_ns_bucket{le="0.01"} 1`)
	assert.Contains(t, body, "go_goroutines")

	// Exporters do not share state.
	other := newExporter(t, `{}`)
	assert.NotContains(t, scrape(t, other), "bd_input_received")
}

func TestExporterRejectsBadBuckets(t *testing.T) {
	conf, err := Spec().ParseYAML(`histogram_buckets: [ 1, 0.5 ]`, service.NewEnvironment())
	require.NoError(t, err)
	_, err = New(conf, nil)
	require.Error(t, err)
}

func TestSanitizeName(t *testing.T) {
	assert.Equal(t, "a_b_c", sanitizeName("a.b-c"))
	assert.Equal(t, "_1x", sanitizeName("1x"))
	assert.Equal(t, "", sanitizeName(""))
}

func TestRegisteredAndServedByStream(t *testing.T) {
	env := service.NewEnvironment()
	require.NoError(t, Register(env))
	found := false
	env.WalkMetrics(func(name string, _ *service.ConfigView) { found = found || name == ExporterName })
	assert.True(t, found)
}
