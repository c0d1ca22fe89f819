package mqtt

import (
	"context"
	"fmt"
	"testing"

	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/benthos-danube/benthos-danube/metrics/prometheus"
)

// TestCountersExposedAtZero: every counter and gauge of the input is in the
// Prometheus exposition from the start, before anything happened (here: the
// broker is unreachable, so nothing can).
func TestCountersExposedAtZero(t *testing.T) {
	var exp *prometheus.Exporter
	ts := startStreamWith(t, fmt.Sprintf("urls: [ tcp://%s ]\nconnect_timeout: 1s\ntopics: [ a ]\n", closedPort(t)),
		func(context.Context, *service.Message) error { return nil },
		func(env *service.Environment, sb *service.StreamBuilder) {
			if err := env.RegisterMetricsExporter("prom_capture", prometheus.Spec(),
				func(conf *service.ParsedConfig, log *service.Logger) (service.MetricsExporter, error) {
					e, err := prometheus.New(conf, log)
					if err == nil {
						exp = e.(*prometheus.Exporter)
					}
					return e, err
				}); err != nil {
				t.Fatal(err)
			}
			if err := sb.SetMetricsYAML("prom_capture: {}"); err != nil {
				t.Fatal(err)
			}
		})
	if ts.in.unacked.Load() != 0 {
		t.Fatal("something happened")
	}
	families, err := exp.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			switch {
			case m.GetCounter() != nil:
				got[f.GetName()] += m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				got[f.GetName()] += m.GetGauge().GetValue()
			}
		}
	}
	for _, name := range []string{
		"mqtt_input_unmatched", "mqtt_input_placeholder_errors", "mqtt_input_qos0_dropped", "mqtt_input_acks_sent",
		"mqtt_input_duplicates", "mqtt_input_nack_dropped", "mqtt_input_reconnects", "mqtt_input_unacked", "mqtt_input_queued",
	} {
		v, ok := got[name]
		if !ok {
			t.Errorf("%s is not exposed", name)
		} else if v != 0 {
			t.Errorf("%s = %v, want 0", name, v)
		}
	}
}
