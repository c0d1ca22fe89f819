package danubeout

import (
	"testing"
)

// BenchmarkSchemaValidate measures the per-message cost of a json_schema
// entry: parsing the payload and validating it against the compiled schema
// (valid payload), and the lookup of the topic's entry. Run with
//
//	go test -run '^$' -bench BenchmarkSchemaValidate -benchmem ./output/danube/
func BenchmarkSchemaValidate(b *testing.B) {
	file := writeFile(b, b.TempDir(), "telemetry.json", `{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "type": "object",
  "properties": {
    "device": {"type": "string", "minLength": 1},
    "temp": {"type": "number", "minimum": -80, "maximum": 150},
    "humidity": {"type": "number", "minimum": 0, "maximum": 100},
    "battery": {"type": "integer", "minimum": 0, "maximum": 100},
    "ts": {"type": "string"}
  },
  "required": ["device", "temp", "ts"]
}`)
	def, sch, err := compileJSONSchema(file)
	if err != nil {
		b.Fatal(err)
	}
	binding := &schemaBinding{topic: "/iot/telemetry", subject: "telemetry-v1", definition: def, validator: sch}
	set := newSchemaBindings([]*schemaBinding{binding}, nil, "/default/dead_letter")
	payload := []byte(`{"device":"sensor-0042","temp":21.5,"humidity":48.2,"battery":87,"ts":"2026-12-01T11:00:00Z"}`)
	b.Run("lookup+validate", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(payload)))
		for b.Loop() {
			if err := set.forTopic("/iot/telemetry").validate(payload); err != nil {
				b.Fatal(err)
			}
		}
	})
	// The same payload against telemetrySchema (types and required only, no
	// ranges): jsonschema compares numbers with math/big, which ranges pay.
	_, plain, err := compileJSONSchema(writeFile(b, b.TempDir(), "plain.json", telemetrySchema))
	if err != nil {
		b.Fatal(err)
	}
	typesOnly := &schemaBinding{topic: "/iot/telemetry", subject: "plain", validator: plain}
	b.Run("validate, types only", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(payload)))
		for b.Loop() {
			if err := typesOnly.validate(payload); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("lookup, no entry", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if set.forTopic("/iot/other") != nil {
				b.Fatal("entry")
			}
		}
	})
}
