package connectorpayload

import (
	"context"
	"strings"
	"testing"

	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/benthos-danube/benthos-danube/internal/deadletter"
)

func newTestProcessor(t *testing.T, yaml string) *processor {
	t.Helper()
	conf, err := ProcessorSpec().ParseYAML(yaml, nil)
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	p, err := newProcessor(conf, service.MockResources())
	if err != nil {
		t.Fatalf("new: %v", err)
	}
	t.Cleanup(func() { _ = p.Close(context.Background()) })
	return p
}

func run(t *testing.T, p *processor, payload, topic string) *service.Message {
	t.Helper()
	msg := service.NewMessage([]byte(payload))
	if topic != "" {
		msg.MetaSetMut("danube_topic", topic)
	}
	out, err := p.Process(context.Background(), msg)
	if err != nil || len(out) != 1 {
		t.Fatalf("process: %v (%d messages)", err, len(out))
	}
	return out[0]
}

func body(t *testing.T, m *service.Message) string {
	t.Helper()
	b, err := m.AsBytes()
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestProcessorTypes(t *testing.T) {
	p := newTestProcessor(t, `
schema_type: none
topic_schema_types:
  /iot/raw: bytes
  /iot/status: STRING
`)
	cases := []struct{ in, topic, want string }{
		{`{"b":1,"a":2}`, "/iot/telemetry", `{"a":2,"b":1}`},
		{`{"b":1,"a":2}`, "", `{"a":2,"b":1}`},
		{`{"b":1,"a":2}`, "/iot/raw", `{"b":1,"a":2}`},
		{"\x00\xff", "/iot/raw", "\x00\xff"},
		{"\x00\xff", "/iot/telemetry", `{"data":"AP8=","encoding":"base64","size":2}`},
		{`"online"`, "/iot/status", `online`},
		{`"online"`, "/iot/telemetry", `"online"`},
		{``, "/iot/status", `{"data":"","encoding":"base64","size":0}`},
	}
	for _, c := range cases {
		if got := body(t, run(t, p, c.in, c.topic)); got != c.want {
			t.Errorf("%q on %q: got %q, want %q", c.in, c.topic, got, c.want)
		}
	}
}

func TestProcessorInterpolated(t *testing.T) {
	p := newTestProcessor(t, `schema_type: '${! @kind }'`)
	msg := service.NewMessage([]byte(`"x"`))
	msg.MetaSetMut("kind", "string")
	out, _ := p.Process(context.Background(), msg)
	if got := body(t, out[0]); got != "x" {
		t.Errorf("string: got %q", got)
	}

	// An unknown type is marked for the dead-letter destination, payload
	// untouched.
	msg = service.NewMessage([]byte(`{"b":1}`))
	msg.MetaSetMut("kind", "yaml")
	out, _ = p.Process(context.Background(), msg)
	if got := body(t, out[0]); got != `{"b":1}` {
		t.Errorf("unknown: payload changed to %q", got)
	}
	if r, _ := out[0].MetaGet(deadletter.Reason); r != reasonInvalidMessage {
		t.Errorf("unknown: dead_letter_reason %q", r)
	}
	if out[0].GetError() == nil || !strings.Contains(out[0].GetError().Error(), `"yaml"`) {
		t.Errorf("unknown: error %v", out[0].GetError())
	}
}

func TestProcessorLeavesDeadLetters(t *testing.T) {
	p := newTestProcessor(t, `{}`)
	msg := service.NewMessage([]byte(`not json`))
	msg.MetaSetMut(deadletter.Reason, deadletter.ReasonNoMapping)
	out, _ := p.Process(context.Background(), msg)
	if got := body(t, out[0]); got != "not json" {
		t.Errorf("got %q", got)
	}
}

func TestProcessorConfigErrors(t *testing.T) {
	for _, yaml := range []string{`schema_type: jsn`, "topic_schema_types:\n  /a/b: blob"} {
		conf, err := ProcessorSpec().ParseYAML(yaml, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := newProcessor(conf, service.MockResources()); err == nil || !strings.Contains(err.Error(), "unknown schema type") {
			t.Errorf("%q: got %v", yaml, err)
		}
	}
}

// TestRegistered: the processor is usable in a pipeline config by name.
func TestRegistered(t *testing.T) {
	env := service.NewEnvironment()
	if err := Register(env); err != nil {
		t.Fatal(err)
	}
	b := env.NewStreamBuilder()
	if err := b.AddProcessorYAML(ProcessorName + ": {schema_type: string}"); err != nil {
		t.Fatal(err)
	}
}

// TestLint: lint reports what start-up refuses, one line each.
func TestLint(t *testing.T) {
	env := service.NewEnvironment()
	if err := Register(env); err != nil {
		t.Fatal(err)
	}
	linter := env.NewComponentConfigLinter()
	for _, c := range []struct{ yaml, want string }{
		{ProcessorName + ": {schema_type: jsn}", `field schema_type: unknown schema type "jsn"`},
		{ProcessorName + ": {topic_schema_types: {/a/b: blob}}", `field topic_schema_types[/a/b]: unknown schema type "blob"`},
		{ProcessorName + ": {schema_type: '${! @kind }'}", ""},
		{ProcessorName + ": {topic_schema_types: {/a/b: Bytes}}", ""},
	} {
		lints, err := linter.LintProcessorYAML([]byte(c.yaml))
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, l := range lints {
			got = append(got, l.What)
		}
		if c.want == "" {
			if len(got) > 0 {
				t.Errorf("%s: lint %q", c.yaml, got)
			}
			continue
		}
		if len(got) != 1 || !strings.Contains(got[0], c.want) {
			t.Errorf("%s: lint %q, want %q", c.yaml, got, c.want)
		}
	}
}
