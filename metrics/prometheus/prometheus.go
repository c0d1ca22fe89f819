// Package prometheus registers the `prometheus` Benthos metrics exporter. It
// is built on github.com/prometheus/client_golang: every exporter owns a
// private registry (no global state) and its HandlerFunc is served by the
// Benthos HTTP server at /metrics (and /stats).
package prometheus

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redpanda-data/benthos/v4/public/service"
)

// ExporterName is the name the exporter is registered under.
const ExporterName = "prometheus"

const (
	fieldPrefix         = "prefix"
	fieldProcessMetrics = "add_process_metrics"
	fieldGoMetrics      = "add_go_metrics"
	fieldBuckets        = "histogram_buckets"
)

// Spec returns the configuration specification of the exporter.
func Spec() *service.ConfigSpec {
	return service.NewConfigSpec().
		Beta().
		Version("0.1.0").
		Summary("Exposes metrics in the Prometheus text format at the `/metrics` endpoint of the Benthos HTTP server.").
		Description(`
Metric names are kept as Benthos emits them (for example `+"`output_sent`"+`, `+"`input_received`"+`,
`+"`danube_output_producers_open`"+`), with characters that Prometheus does not allow replaced by `+"`_`"+`
and an optional prefix. Counters become Prometheus counters, gauges gauges, and timers histograms observed in
**seconds** (the Benthos name, e.g. `+"`output_latency_ns`"+`, is kept). Each pipeline owns a private registry.`).
		Fields(
			service.NewStringField(fieldPrefix).
				Description("A prefix added to every metric name, followed by `_` (empty = none).").
				Default("").
				Examples("", "benthos_danube"),
			service.NewBoolField(fieldProcessMetrics).
				Description("Also export the standard process metrics (`process_cpu_seconds_total`, open fds, memory...).").
				Default(false).
				Examples(false, true),
			service.NewBoolField(fieldGoMetrics).
				Description("Also export the Go runtime metrics (`go_goroutines`, GC, memory statistics...).").
				Default(false).
				Examples(false, true),
			service.NewFloatListField(fieldBuckets).
				Description("Histogram buckets of timers, in seconds. Empty uses the client library defaults (5ms to 10s).").
				Default([]any{}).
				Example([]any{0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5}).
				Advanced(),
		)
}

// Register registers the exporter on env.
func Register(env *service.Environment) error {
	if err := env.RegisterMetricsExporter(ExporterName, Spec(), New); err != nil {
		return fmt.Errorf("registering the %s metrics exporter: %w", ExporterName, err)
	}
	return nil
}

func init() {
	if err := Register(service.GlobalEnvironment()); err != nil {
		panic(err)
	}
}

// Exporter is a Benthos metrics exporter backed by a private Prometheus
// registry.
type Exporter struct {
	reg     *prometheus.Registry
	prefix  string
	buckets []float64
	log     *service.Logger

	mu   sync.Mutex
	vecs map[string]*vecEntry
}

type vecEntry struct {
	labels    []string
	counter   *prometheus.CounterVec
	gauge     *prometheus.GaugeVec
	histogram *prometheus.HistogramVec
}

// New is the service.MetricsExporterConstructor of the exporter.
func New(conf *service.ParsedConfig, log *service.Logger) (service.MetricsExporter, error) {
	prefix, err := conf.FieldString(fieldPrefix)
	if err != nil {
		return nil, fmt.Errorf("prometheus metrics: field prefix: %w", err)
	}
	proc, err := conf.FieldBool(fieldProcessMetrics)
	if err != nil {
		return nil, fmt.Errorf("prometheus metrics: field add_process_metrics: %w", err)
	}
	goM, err := conf.FieldBool(fieldGoMetrics)
	if err != nil {
		return nil, fmt.Errorf("prometheus metrics: field add_go_metrics: %w", err)
	}
	buckets, err := conf.FieldFloatList(fieldBuckets)
	if err != nil {
		return nil, fmt.Errorf("prometheus metrics: field histogram_buckets: %w", err)
	}
	for i := 1; i < len(buckets); i++ {
		if buckets[i] <= buckets[i-1] {
			return nil, fmt.Errorf("prometheus metrics: field histogram_buckets must be strictly increasing, got %v", buckets)
		}
	}
	if len(buckets) == 0 {
		buckets = prometheus.DefBuckets
	}
	e := &Exporter{
		reg:     prometheus.NewRegistry(),
		prefix:  sanitizeName(prefix),
		buckets: buckets,
		log:     log,
		vecs:    map[string]*vecEntry{},
	}
	if proc {
		if err := e.reg.Register(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})); err != nil {
			return nil, fmt.Errorf("prometheus metrics: registering process collector: %w", err)
		}
	}
	if goM {
		if err := e.reg.Register(collectors.NewGoCollector()); err != nil {
			return nil, fmt.Errorf("prometheus metrics: registering Go collector: %w", err)
		}
	}
	return e, nil
}

// Registry returns the exporter's private registry.
func (e *Exporter) Registry() *prometheus.Registry { return e.reg }

// HandlerFunc serves the registry in the Prometheus exposition format. Benthos
// mounts it at /metrics and /stats of its HTTP server.
func (e *Exporter) HandlerFunc() http.HandlerFunc {
	h := promhttp.HandlerFor(e.reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
	return h.ServeHTTP
}

// Close implements service.MetricsExporter. The registry needs no cleanup.
func (e *Exporter) Close(context.Context) error { return nil }

func (e *Exporter) fullName(name string) string {
	n := sanitizeName(name)
	if e.prefix != "" {
		n = e.prefix + "_" + n
	}
	return n
}

// entry returns the vector for name, creating it with mk. A name reused with
// other label keys or another kind yields nil (the metric is dropped).
func (e *Exporter) entry(name string, labels []string, kind string, mk func(string, []string) (*vecEntry, prometheus.Collector)) *vecEntry {
	full := e.fullName(name)
	lbls := make([]string, len(labels))
	for i, l := range labels {
		lbls[i] = sanitizeName(l)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	key := kind + "\x00" + full
	if v, ok := e.vecs[key]; ok {
		if !sameLabels(v.labels, lbls) {
			e.log.Warnf("Metric %s registered again with labels %v (was %v): dropping the new one", full, lbls, v.labels)
			return nil
		}
		return v
	}
	v, c := mk(full, lbls)
	v.labels = lbls
	if err := e.reg.Register(c); err != nil {
		e.log.Warnf("Cannot register metric %s: %v", full, err)
		return nil
	}
	e.vecs[key] = v
	return v
}

// NewCounterCtor implements service.MetricsExporter.
func (e *Exporter) NewCounterCtor(name string, labelKeys ...string) service.MetricsExporterCounterCtor {
	v := e.entry(name, labelKeys, "counter", func(full string, lbls []string) (*vecEntry, prometheus.Collector) {
		cv := prometheus.NewCounterVec(prometheus.CounterOpts{Name: full, Help: "Benthos counter " + name}, lbls)
		return &vecEntry{counter: cv}, cv
	})
	return func(labelValues ...string) service.MetricsExporterCounter {
		if v == nil {
			return noop{}
		}
		c, err := v.counter.GetMetricWithLabelValues(labelValues...)
		if err != nil {
			return noop{}
		}
		return counter{c}
	}
}

// NewTimerCtor implements service.MetricsExporter. Timings arrive in
// nanoseconds and are observed in seconds.
func (e *Exporter) NewTimerCtor(name string, labelKeys ...string) service.MetricsExporterTimerCtor {
	v := e.entry(name, labelKeys, "timer", func(full string, lbls []string) (*vecEntry, prometheus.Collector) {
		hv := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: full, Help: "Benthos timer " + name + " (seconds)", Buckets: e.buckets}, lbls)
		return &vecEntry{histogram: hv}, hv
	})
	return func(labelValues ...string) service.MetricsExporterTimer {
		if v == nil {
			return noop{}
		}
		o, err := v.histogram.GetMetricWithLabelValues(labelValues...)
		if err != nil {
			return noop{}
		}
		return timer{o}
	}
}

// NewGaugeCtor implements service.MetricsExporter.
func (e *Exporter) NewGaugeCtor(name string, labelKeys ...string) service.MetricsExporterGaugeCtor {
	v := e.entry(name, labelKeys, "gauge", func(full string, lbls []string) (*vecEntry, prometheus.Collector) {
		gv := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: full, Help: "Benthos gauge " + name}, lbls)
		return &vecEntry{gauge: gv}, gv
	})
	return func(labelValues ...string) service.MetricsExporterGauge {
		if v == nil {
			return noop{}
		}
		g, err := v.gauge.GetMetricWithLabelValues(labelValues...)
		if err != nil {
			return noop{}
		}
		return gauge{g}
	}
}

type counter struct{ c prometheus.Counter }

func (c counter) Incr(n int64)          { c.c.Add(float64(n)) }
func (c counter) IncrFloat64(n float64) { c.c.Add(n) }

type timer struct{ o prometheus.Observer }

func (t timer) Timing(ns int64) { t.o.Observe(float64(ns) / 1e9) }

type gauge struct{ g prometheus.Gauge }

func (g gauge) Set(v int64)          { g.g.Set(float64(v)) }
func (g gauge) SetFloat64(v float64) { g.g.Set(v) }

type noop struct{}

func (noop) Incr(int64)          {}
func (noop) IncrFloat64(float64) {}
func (noop) Timing(int64)        {}
func (noop) Set(int64)           {}
func (noop) SetFloat64(float64)  {}

func sameLabels(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// sanitizeName maps a Benthos metric or label name onto the Prometheus
// character set [a-zA-Z_:][a-zA-Z0-9_:]* (labels: no colon).
func sanitizeName(s string) string {
	if s == "" {
		return ""
	}
	var b strings.Builder
	for i, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r == '_':
			b.WriteRune(r)
		case r >= '0' && r <= '9':
			if i == 0 {
				b.WriteByte('_')
			}
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	return b.String()
}
