package connectorpayload

import (
	"context"
	"fmt"
	"os"
	"sort"
	"strings"

	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/benthos-danube/benthos-danube/internal/configlint"
	"github.com/benthos-danube/benthos-danube/internal/deadletter"
	"github.com/benthos-danube/benthos-danube/internal/mqttmeta"
)

// ProcessorName is the name the processor is registered under.
const ProcessorName = "danube_connector_payload"

// Field names of the processor.
const (
	fieldSchemaType       = "schema_type"
	fieldTopicSchemaTypes = "topic_schema_types"
)

// reasonInvalidMessage is the dead-letter reason of a message whose
// schema_type resolves to no known type (the danube output's own word for
// a message it cannot send as it is).
const reasonInvalidMessage = "invalid_message"

// ProcessorSpec is the configuration specification of the processor.
func ProcessorSpec() *service.ConfigSpec {
	lintRule := configlint.Rule(lintFuncName, ProcessorName+" processor", ProcessorSpec, lintChecks, os.Stderr)
	return service.NewConfigSpec().
		LintRule(lintRule).
		Beta().
		Categories("Parsing").
		Version("0.1.0").
		Summary("Rewrites each payload into the bytes the Rust Danube MQTT source connector 0.3 (danube-connectors) writes, so Danube consumers written for it read what the bridge writes.").
		Description(`
The connector 0.3 no longer forwards MQTT payloads as they came (0.1 and 0.2 did, and so does benthos-danube without
this processor):

- a payload that parses as JSON (any JSON text, a bare number, string, `+"`true`"+` or `+"`null`"+` too, with whitespace
  around it) is re-serialised compactly with object keys sorted bytewise; a duplicated key keeps its last value,
  escapes are normalised, integers stay exact in the i64/u64 range, other numbers become an f64 written in the
  shortest form (`+"`1e2`"+` becomes `+"`100.0`"+`), computed as serde_json does without float_roundtrip;
- any other payload (text, binary, invalid UTF-8, a BOM, an empty payload, nesting deeper than 127, a number out of
  the f64 range) becomes `+"`{\"data\":\"<base64>\",\"encoding\":\"base64\",\"size\":N}`"+` (standard base64, padded);
- on topics of schema type `+"`string`"+` a JSON string literal is written unquoted (`+"`\"hi\"`"+` becomes `+"`hi`"+`);
- on topics of schema type `+"`bytes`"+` the payload is forwarded raw.

Schema types (case-insensitive, as the connector's `+"`[[schemas]].schema_type`"+`): `+"`none`"+` (no schema),
`+"`json_schema`"+`, `+"`json`"+`, `+"`number`"+`, `+"`avro`"+` (all JSON as above), `+"`string`"+`, `+"`bytes`"+` and
`+"`protobuf`"+` (raw).

Where the connector loses messages this processor does not: on a `+"`bytes`"+` topic the connector fails on any
payload that parses as JSON (and drops it with the rest of its batch), and on a `+"`protobuf`"+` topic on every
message; both are forwarded raw here. A `+"`schema_type`"+` that resolves to an unknown name for a message marks that
message for the `+"`danube`"+` output's dead-letter destination (`+"`dead_letter_reason: invalid_message`"+`).

The type of a message is `+"`topic_schema_types`"+` of its `+"`danube_topic`"+` metadata (set by the `+"`mqtt`"+` input's
topic mappings) when listed there, `+"`schema_type`"+` otherwise. `+"`benthos-danube migrate`"+` adds this processor to
pipelines converted from a 0.3 configuration, with the types of its `+"`[[schemas]]`"+`.`).
		Fields(
			service.NewInterpolatedStringField(fieldSchemaType).
				Description("The schema type of the message's topic, one of "+strings.Join(SchemaTypes, ", ")+". May be interpolated per message.").
				Default("none").
				Examples("none", "string", `${! if @danube_topic == "/iot/raw" { "bytes" } else { "json" } }`),
			service.NewStringMapField(fieldTopicSchemaTypes).
				Description("Schema type by Danube topic (the `danube_topic` metadata); takes precedence over `schema_type` for the topics it lists.").
				Default(map[string]any{}).
				Example(map[string]any{"/iot/telemetry": "json_schema", "/iot/firmware": "bytes", "/iot/status": "string"}),
		).
		Example("Danube consumers of the Rust connector 0.3", "The payloads of every mapping as the connector 0.3 writes them, with a raw `bytes` topic.", `
pipeline:
  processors:
    - danube_connector_payload:
        topic_schema_types:
          /iot/firmware: bytes
`)
}

type processor struct {
	typ       *service.InterpolatedString
	static    bool
	mode      Mode
	byTopic   map[string]Mode
	log       *service.Logger
	mDLMarked *service.MetricCounter
}

// lintFuncName is the Bloblang function behind the processor's lint rule:
// lint and start-up run the same checks (parseSettings).
const lintFuncName = "danube_connector_payload_config_lints"

// parseSettings reads and checks the fields; lint and start-up both run it.
func parseSettings(conf *service.ParsedConfig) (*processor, []error) {
	p := &processor{byTopic: map[string]Mode{}}
	var errs []error
	var err error
	if p.typ, err = conf.FieldInterpolatedString(fieldSchemaType); err != nil {
		errs = append(errs, fmt.Errorf("%s: field %s: %w", ProcessorName, fieldSchemaType, err))
	} else if s, ok := p.typ.Static(); ok {
		if p.mode, err = ParseSchemaType(s); err != nil {
			errs = append(errs, fmt.Errorf("%s: field %s: %w", ProcessorName, fieldSchemaType, err))
		}
		p.static = true
	}
	types, err := conf.FieldStringMap(fieldTopicSchemaTypes)
	if err != nil {
		return p, append(errs, fmt.Errorf("%s: field %s: %w", ProcessorName, fieldTopicSchemaTypes, err))
	}
	topics := make([]string, 0, len(types))
	for topic := range types {
		topics = append(topics, topic)
	}
	sort.Strings(topics)
	for _, topic := range topics {
		m, err := ParseSchemaType(types[topic])
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: field %s[%s]: %w", ProcessorName, fieldTopicSchemaTypes, topic, err))
			continue
		}
		p.byTopic[topic] = m
	}
	return p, errs
}

func lintChecks(conf *service.ParsedConfig) []string {
	_, errs := parseSettings(conf)
	out := make([]string, 0, len(errs))
	for _, e := range errs {
		out = append(out, e.Error())
	}
	return out
}

func newProcessor(conf *service.ParsedConfig, mgr *service.Resources) (*processor, error) {
	p, errs := parseSettings(conf)
	if len(errs) > 0 {
		return nil, errs[0]
	}
	p.log = mgr.Logger()
	p.mDLMarked = mgr.Metrics().NewCounter("danube_connector_payload_invalid_type")
	return p, nil
}

// modeOf resolves the mode of msg; ok is false when its interpolated type
// is unknown (msg is then marked for the dead-letter destination).
func (p *processor) modeOf(msg *service.Message) (Mode, bool) {
	if len(p.byTopic) > 0 {
		if t, ok := msg.MetaGetMut(mqttmeta.DanubeTopic); ok {
			if s, ok := t.(string); ok {
				if m, ok := p.byTopic[s]; ok {
					return m, true
				}
			}
		}
	}
	if p.static {
		return p.mode, true
	}
	name, err := p.typ.TryString(msg)
	if err == nil {
		var m Mode
		if m, err = ParseSchemaType(name); err == nil {
			return m, true
		}
	}
	err = fmt.Errorf("%s: field %s: %w", ProcessorName, fieldSchemaType, err)
	msg.SetError(err)
	msg.MetaSetMut(deadletter.Reason, reasonInvalidMessage)
	msg.MetaSetMut(deadletter.Error, err.Error())
	p.mDLMarked.Incr(1)
	return 0, false
}

func (p *processor) Process(_ context.Context, msg *service.Message) (service.MessageBatch, error) {
	if _, marked := msg.MetaGetMut(deadletter.Reason); marked {
		// Bound for the dead-letter destination, which keeps the payload
		// as it came.
		return service.MessageBatch{msg}, nil
	}
	m, ok := p.modeOf(msg)
	if !ok || m == ModeRaw {
		return service.MessageBatch{msg}, nil
	}
	in, err := msg.AsBytes()
	if err != nil {
		return nil, fmt.Errorf("%s: reading the payload: %w", ProcessorName, err)
	}
	msg.SetBytes(Append(make([]byte, 0, len(in)+len(in)/2+48), in, m))
	return service.MessageBatch{msg}, nil
}

func (p *processor) Close(context.Context) error { return nil }

// Register registers the processor on env. The package's init registers it
// on the global environment; tests use an isolated environment.
func Register(env *service.Environment) error {
	err := env.RegisterProcessor(ProcessorName, ProcessorSpec(), func(conf *service.ParsedConfig, mgr *service.Resources) (service.Processor, error) {
		return newProcessor(conf, mgr)
	})
	if err != nil {
		return fmt.Errorf("registering the %s processor: %w", ProcessorName, err)
	}
	return nil
}

func init() {
	if err := Register(service.GlobalEnvironment()); err != nil {
		panic(err)
	}
}
