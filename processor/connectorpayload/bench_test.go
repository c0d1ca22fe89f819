package connectorpayload

import (
	"context"
	"testing"

	"github.com/redpanda-data/benthos/v4/public/service"
)

// A typical telemetry payload: keys out of order, floats, a nested object.
var benchPayloads = map[string][]byte{
	"json_sorted":   []byte(`{"battery":87,"signal":-61,"temperature":21.5,"timestamp":1733050000,"unit":"celsius"}`),
	"json_unsorted": []byte(`{"unit":"celsius","temperature":21.5,"timestamp":1733050000,"battery":87,"signal":-61,"meta":{"fw":"1.2.3","zone":"z1"}}`),
	"binary_64B":    make([]byte, 64),
	"json_4KiB":     nil,
}

func init() {
	b := []byte(`{"samples":[`)
	for len(b) < 4000 {
		b = append(b, `{"v":21.53,"t":1733050000,"q":"good"},`...)
	}
	benchPayloads["json_4KiB"] = append(b[:len(b)-1], "]}"...)
}

// BenchmarkAppend is the conversion alone, per payload.
func BenchmarkAppend(b *testing.B) {
	for _, name := range []string{"json_sorted", "json_unsorted", "binary_64B", "json_4KiB"} {
		in := benchPayloads[name]
		b.Run(name, func(b *testing.B) {
			buf := make([]byte, 0, 2*len(in)+64)
			b.SetBytes(int64(len(in)))
			b.ReportAllocs()
			for b.Loop() {
				buf = Append(buf[:0], in, ModeJSON)
			}
		})
	}
}

// BenchmarkProcessor is the per-message cost in a pipeline: the processor
// on a fresh Benthos message, against the same message passed through
// (raw, the default for new pipelines).
func BenchmarkProcessor(b *testing.B) {
	in := benchPayloads["json_unsorted"]
	for _, c := range []struct{ name, yaml string }{
		{"raw_bytes", "schema_type: bytes"},
		{"json", "schema_type: json"},
		{"by_topic", "topic_schema_types: {/iot/telemetry: json_schema, /iot/raw: bytes}"},
	} {
		b.Run(c.name, func(b *testing.B) {
			conf, err := ProcessorSpec().ParseYAML(c.yaml, nil)
			if err != nil {
				b.Fatal(err)
			}
			p, err := newProcessor(conf, service.MockResources())
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				msg := service.NewMessage(in)
				msg.MetaSetMut("danube_topic", "/iot/telemetry")
				if _, err := p.Process(context.Background(), msg); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
