package danubeout

import (
	"fmt"
	"os"

	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/benthos-danube/benthos-danube/internal/configlint"
	"github.com/benthos-danube/benthos-danube/internal/danubeconn"
	"github.com/benthos-danube/benthos-danube/internal/deadletter"
	"github.com/benthos-danube/benthos-danube/internal/ordering"
)

// Field names of the danube output.
const (
	fieldURL             = danubeconn.FieldURL
	fieldTopic           = "topic"
	fieldPartitions      = "partitions"
	fieldReliable        = "reliable_dispatch"
	fieldKey             = "key"
	fieldProducerName    = "producer_name"
	fieldAttributes      = "attributes"
	fieldSchema          = "schema"
	fieldSchemaSubject   = "subject"
	fieldSchemaVersion   = "version"
	fieldSchemas         = "schemas"
	fieldSchemasTopic    = "topic"
	fieldSchemasSubject  = "subject"
	fieldSchemasType     = "type"
	fieldSchemasFile     = "file"
	fieldSchemasAutoReg  = "auto_register"
	fieldSchemasStrategy = "version_strategy"
	fieldSchemasVersion  = "version"
	fieldSendTimeout     = "send_timeout"
	fieldMaxProducers    = "max_producers"
	fieldProducerIdle    = "producer_idle_timeout"
	fieldBatching        = "batching"
	fieldDeadLetter      = "dead_letter"
	fieldDLEnabled       = "enabled"
	fieldDLTopic         = "topic"
	fieldDLOutput        = "output"
	fieldDLSpoolDir      = "spool_dir"
	fieldDLMaxPayload    = "max_payload_bytes"
	defaultSpoolDir      = "dead-letter-spool"
	defaultDLMaxPayload  = 65536
	defaultTopic         = "${! @danube_topic }"
	defaultKey           = `${! @mqtt_topic.or("") }`
	defaultProducerName  = "benthos-danube"
	metaPartitions       = "danube_partitions"
	metaReliableDispatch = "danube_reliable_dispatch"
)

// OutputName is the name the output is registered under.
const OutputName = "danube"

// Spec returns the configuration specification of the danube output.
func Spec() *service.ConfigSpec {
	// The lint rule runs the start-up checks (settings.check); see check.go.
	lintRule := configlint.Rule(lintFuncName, "danube output", Spec, lintChecks, os.Stderr)
	return service.NewConfigSpec().
		Beta().
		Categories("Services").
		Version("0.1.0").
		Summary("Writes messages to Danube topics, waiting for the broker's acknowledgement of every message.").
		Description(`
Each message is sent to the topic that `+"`topic`"+` resolves to for it, so one output can feed many Danube topics.
A producer is created lazily for every distinct (topic, partitions, dispatch strategy), kept in a bounded cache
(`+"`max_producers`"+`) and closed after `+"`producer_idle_timeout`"+` without traffic.

The metadata `+"`danube_partitions`"+` and `+"`danube_reliable_dispatch`"+` that the `+"`mqtt`"+` input sets from its
topic mappings override the configured `+"`partitions`"+` and `+"`reliable_dispatch`"+` for that message, so a bare
`+"`danube: {url: ...}`"+` routes exactly as the input's mappings say.

== Delivery guarantees

A message is acknowledged to Benthos only after the Danube broker acknowledged it. Failures are of two kinds:

- *Transient* (the broker is unreachable, slow or restarting, a producer was lost, `+"`Unavailable`"+`, a timeout, a
refused token): the send is retried inside `+"`send_timeout`"+`, then the message is nacked, so the input keeps it
unacknowledged and retries it; an unreachable broker is reported as a lost connection and Benthos reconnects with
back-off. Nothing is dead-lettered for a transient failure.
- *Permanent for this message* (no mapping matched it, its topic name cannot be formed, its payload is over the
limit, the namespace or topic does not exist where topics are not auto-created, the broker refused it, it failed
its topic's JSON Schema, the broker rejected its schema, or the pipeline set `+"`dead_letter_reason`"+`): the message goes to the dead-letter destination
(`+"`dead_letter`"+`), and only once that destination has it is it acknowledged, so everything behind it flows on.

If the dead-letter destination fails too, that is an outage: the message is nacked and retried, and an error is
logged. With `+"`dead_letter.enabled: false`"+` a permanent failure is nacked and retried for ever, as a transient one
is: the strict mode, in which one undeliverable message stops the flow of the whole bridge. Within a batch only the
failed messages are nacked.

== Attributes

Metadata becomes Danube message attributes (`+"`attributes`"+` selects which). By default (`+"`attribute_names: connector`"+`)
the `+"`mqtt`"+` input's `+"`mqtt_topic`"+`, `+"`mqtt_qos`"+`, `+"`mqtt_retained`"+` and `+"`mqtt_duplicate`"+` are written under the
names consumers of the Rust connector read, `+"`mqtt.topic`"+`, `+"`mqtt.qos`"+`, `+"`mqtt.retain`"+` and `+"`mqtt.dup`"+`, and a
message from the `+"`mqtt`"+` input gets `+"`source: mqtt`"+`: a pipeline needs no processor for them. Bloblang still sees
the metadata names.

== Dead letters

A dead-letter record keeps the original payload byte for byte, the message's attributes and every `+"`mqtt_*`"+`
metadata key, and adds `+"`dead_letter_reason`"+` (`+"`no_mapping`"+`, `+"`invalid_topic`"+`, `+"`too_large`"+`,
`+"`namespace_missing`"+`, `+"`topic_missing`"+`, `+"`permission_denied`"+`, `+"`schema_invalid`"+`, `+"`schema_rejected`"+`, `+"`rejected`"+`,
`+"`invalid_message`"+`, or the pipeline's own word), `+"`dead_letter_error`"+` (the full error),
`+"`dead_letter_topic`"+` (the intended Danube topic), `+"`dead_letter_mapping`"+` (the input mapping, for routing
failures) and `+"`dead_letter_time`"+` (RFC 3339, UTC). By default it is written to the Danube topic
`+"`/default/dead_letter`"+` (the `+"`default`"+` namespace exists on every Danube broker), with reliable dispatch.

A payload too large for Danube cannot go to a Danube topic whole. Its record carries the first
`+"`max_payload_bytes`"+` bytes with `+"`dead_letter_truncated: true`"+`, `+"`dead_letter_size`"+` and
`+"`dead_letter_sha256`"+` of the whole payload, and `+"`dead_letter_spool_file`"+`: the whole payload is written to that
file in `+"`spool_dir`"+` first (with a `+"`.json`"+` file beside it describing it). With `+"`dead_letter.output`"+` set,
records go to that Benthos output instead, whole and untruncated, with the same metadata; nothing is spooled.

Each dead-lettered message is counted in `+"`danube_output_dead_lettered`"+` (labels `+"`reason`"+` and `+"`mapping`"+`:
the input mapping for routing failures, the Danube topic otherwise) and logged as a rate-limited warning naming the
MQTT topic, the reason and the destination. Failures of the destination are counted in
`+"`danube_output_dead_letter_failures`"+`.

== Schemas

Each `+"`schemas`"+` entry binds the producers of one topic (or of the topics a `+"`{name}`"+` placeholder matches) to a
schema registry subject, as the Rust connector's `+"`[[schemas]]`"+` do: every message they send carries the subject's
schema id and the version chosen by `+"`version_strategy`"+` (`+"`latest`"+`, `+"`pinned`"+` or `+"`minimum`"+`, resolved when
the producer is created). At start-up (Connect) the output looks each subject up; a missing one is registered with
its `+"`type`"+` and the contents of `+"`file`"+` when `+"`auto_register`"+` is true. An existing subject is never registered
again, so a restart registers nothing and a changed file is not registered either (the registry returns its own form
of a definition, not the bytes registered, so the output cannot tell reliably and does not warn; register a new
version yourself). A subject that must exist (`+"`auto_register: false`"+`) and does not, or a pinned or minimum version
above the latest, keeps the output from connecting, with one line saying what to do; Connect is retried with
back-off and messages are held, not lost. An unreachable broker is retried the same way.

A `+"`json_schema`"+` entry also validates every payload before sending, against the JSON Schema in `+"`file`"+`
(compiled once, at start-up; drafts 4 to 2020-12). A payload that is not JSON or does not match is dead-lettered with
reason `+"`schema_invalid`"+` and the validation error as `+"`dead_letter_error`"+`, and the messages behind it flow on. A
message the broker refuses because of its schema (a topic with the `+"`enforce`"+` validation policy and payload
validation, say) is dead-lettered with reason `+"`schema_rejected`"+`. Other types are not validated by the output.

`+"`schema`"+` (one subject, no registration, no validation) applies to every topic without a `+"`schemas`"+` entry;
naming the output's only (static) topic in both is rejected. The dead-letter topic is never bound to a subject.

== Ordering

Messages with the same non-empty key are sent one at a time, in the order in which the pipeline emitted them, even
with `+"`max_in_flight`"+` greater than 1: the output stamps every message with a sequence number in Benthos' single
batching goroutine and releases the sends of each key in that order. Messages with different keys, and messages
without a key, are sent concurrently (up to `+"`max_in_flight`"+` batches). The same key always maps to the same
partition (FNV-1a 64 modulo the partition count). A message that fails is retried by Benthos later; by then
messages of the same key emitted after it may already have been delivered, so only a failure can reorder a key.`+
			service.OutputPerformanceDocs(true, true)).
		Fields(
			service.NewStringField(fieldURL).
				Description("The Danube service URL, `host:port` optionally prefixed by `http://` or `https://`. The scheme does not enable TLS: use the `tls` field. `lint` and start-up reject any other form (another scheme, no port, a path), which could never connect.").
				Examples("http://127.0.0.1:6650", "danube-broker.example.com:6650"),
			service.NewInterpolatedStringField(fieldTopic).
				Description("The Danube topic of each message, of the form `/namespace/topic`. The default takes the `danube_topic` metadata set by the `mqtt` input's topic mappings. A static invalid topic is rejected at lint and start-up; an interpolated topic that resolves to an invalid name fails only that message.").
				Default(defaultTopic).
				Examples("/default/sensors", "/iot/${! @mqtt_topic.split(\"/\").index(1) }"),
			service.NewIntField(fieldPartitions).
				Description("Number of partitions of the topic (0 = not partitioned). The `danube_partitions` metadata overrides it for a message when present.").
				Default(0).
				Examples(0, 4),
			service.NewBoolField(fieldReliable).
				Description("Use reliable dispatch (the broker persists messages and redelivers until acked) instead of non-reliable. The `danube_reliable_dispatch` metadata overrides it for a message when present.").
				Default(false).
				Examples(false, true),
			service.NewInterpolatedStringField(fieldKey).
				Description("The routing key of each message. Messages with the same key go to the same partition and keep their order. An empty result means no key: the message is sent round robin and may be sent concurrently with any other. The default is the `mqtt_topic` metadata when present (no key otherwise), so the messages of one device stay in order.").
				Default(defaultKey).
				Examples("${! @mqtt_topic }", "${! json(\"device_id\") }", ""),
			service.NewStringField(fieldProducerName).
				Description("Prefix of the producer names. The producer of topic `/ns/t` is named `<producer_name>-ns-t` (and `-<i>` per partition).").
				Default(defaultProducerName).
				Examples("benthos-danube", "gateway-eu-1").
				Advanced(),
			service.NewMetadataFilterField(fieldAttributes).
				Description("Which metadata keys become Danube message attributes (values are stringified). A key is sent when the filter matches its metadata name or the attribute name it is written under (see `attribute_names`), so `include_prefixes: [mqtt_, source]` and `include_prefixes: [mqtt., source]` select the same keys (the added `source` is matched by its name only). When unset (or empty), all metadata is sent except the routing metadata `danube_*`.").
				Optional().
				Example(map[string]any{"include_prefixes": []any{"mqtt_"}}).
				Example(map[string]any{"include_patterns": []any{"^mqtt_topic$", "^source$"}}),
			attributeNamesField(),
			schemasField(),
			service.NewObjectField(fieldSchema,
				service.NewStringField(fieldSchemaSubject).
					Description("Schema registry subject the producers are bound to. Empty = no schema. It must already be registered.").
					Default("").
					Examples("sensor-readings", ""),
				service.NewIntField(fieldSchemaVersion).
					Description("Pinned schema version; 0 uses the latest version of the subject.").
					Default(0).
					Examples(0, 3),
			).
				Description("One schema registry subject for every topic that has no `schemas` entry (the dead-letter topic excepted). Payloads are not validated by the output; use `schemas` for registration and validation.").
				Example(map[string]any{"subject": "sensor-readings", "version": 0}).
				Advanced(),
		).
		// tls, token, token_file: shared with the danube input.
		Fields(danubeconn.Fields()...).
		Fields(
			service.NewDurationField(fieldSendTimeout).
				Description("The longest a message may take to be acknowledged by the broker, retries of transient errors included. A message that times out is nacked (or the connection is reported lost if the broker is unreachable).").
				Default("10s").
				Examples("10s", "30s"),
			service.NewIntField(fieldMaxProducers).
				Description("The most producers kept open at once (one per topic, partitions and dispatch strategy). When full, the least recently used idle producer is closed; if none is idle the send waits.").
				Default(1000).
				Examples(1000, 100).
				Advanced(),
			service.NewDurationField(fieldProducerIdle).
				Description("A producer that sent nothing for this long is closed. It is recreated on the next message for its topic.").
				Default("5m").
				Examples("5m", "1h").
				Advanced(),
			deadLetterField(),
			service.NewOutputMaxInFlightField().
				Examples(64, 256),
			service.NewBatchPolicyField(fieldBatching).
				Example(map[string]any{"count": 100, "period": "10ms"}),
		).
		LintRule(lintRule).
		Example("MQTT to Danube", "Routes every message as the `mqtt` input's topic mappings say.", `
input:
  mqtt:
    urls: [ tcp://127.0.0.1:1883 ]
    topic_mappings:
      - mqtt_topic: sensors/{kind}/zone1
        danube_topic: /default/{kind}_zone1
        partitions: 4
output:
  danube:
    url: http://127.0.0.1:6650
`)
}

// Register registers the danube output (and its ordering stage's processor)
// on env. The package's init registers them on the global environment; tests
// use an isolated environment.
func Register(env *service.Environment) error {
	// The ordering stage's processor, parsed from the output's batching
	// policy on env.
	if err := ordering.RegisterStamper(env, stampProcessorName, OutputName); err != nil {
		return err
	}
	if err := env.RegisterBatchOutput(OutputName, Spec(),
		func(conf *service.ParsedConfig, mgr *service.Resources) (service.BatchOutput, service.BatchPolicy, int, error) {
			return newFromConfig(env, conf, mgr)
		}); err != nil {
		return fmt.Errorf("registering the %s output: %w", OutputName, err)
	}
	return nil
}

func init() {
	if err := Register(service.GlobalEnvironment()); err != nil {
		panic(err)
	}
}

// schemasField is the schemas list of the danube output (schemas.go).
func schemasField() *service.ConfigField {
	return service.NewObjectListField(fieldSchemas,
		service.NewStringField(fieldSchemasTopic).
			Description("The Danube topic whose producers are bound to the subject, exactly as the output sends to it (the base name of a partitioned topic). A `{name}` placeholder matches one segment of characters a topic name can hold, e.g. `/iot/{device}_telemetry`; an exact entry wins over placeholder entries, which are tried in order.").
			Examples("/iot/telemetry", "/iot/{kind}_zone1"),
		service.NewStringField(fieldSchemasSubject).
			Description("The schema registry subject.").
			Examples("telemetry-v1"),
		service.NewStringField(fieldSchemasType).
			Description("The schema type, case-insensitive: `json_schema` (or `json`, the same on the wire), `string`, `number`, `bytes`, `avro` or `protobuf`.").
			Examples("json_schema", "string", "bytes"),
		service.NewStringField(fieldSchemasFile).
			Description("The schema definition file, registered with the subject. Required for `json_schema` (the output compiles it and validates every payload with it) and, with `auto_register`, for `avro` and `protobuf`; not read for `string`, `number` and `bytes`. A relative path is relative to the working directory.").
			Default("").
			Examples("./schemas/telemetry.json", ""),
		service.NewBoolField(fieldSchemasAutoReg).
			Description("Register the subject at start-up when the registry does not have it. An existing subject is never registered again, even when the file changed. With `false` the subject must exist, or the output does not connect.").
			Default(true),
		service.NewStringField(fieldSchemasStrategy).
			Description("Which version of the subject the producers use: `latest`, `pinned` (exactly `version`) or `minimum` (the latest, which must be at least `version`).").
			Default(strategyLatest).
			Examples(strategyLatest, strategyPinned, strategyMinimum),
		service.NewIntField(fieldSchemasVersion).
			Description("The version for `pinned` and `minimum` (1 or more); must be 0 with `latest`.").
			Default(0),
	).
		Description("Binds the producers of topics to schema registry subjects, one entry per topic (see Schemas above). Topics without an entry use `schema`, if set.").
		Default([]any{}).
		Example([]any{map[string]any{
			"topic": "/iot/telemetry", "subject": "telemetry-v1", "type": "json_schema",
			"file": "./schemas/telemetry.json", "auto_register": true, "version_strategy": "latest",
		}})
}

// deadLetterField is the dead_letter object of the danube output.
func deadLetterField() *service.ConfigField {
	return service.NewObjectField(fieldDeadLetter,
		service.NewBoolField(fieldDLEnabled).
			Description("Dead-letter messages that can never be delivered. `false` is the strict mode: such a message is retried for ever and stops the flow behind it.").
			Default(true),
		service.NewStringField(fieldDLTopic).
			Description("The Danube topic dead-letter records are written to (reliable dispatch, not partitioned). Its namespace must exist; `default` always does.").
			Default(deadletter.DefaultTopic).
			Examples(deadletter.DefaultTopic, "/iot/dead_letter"),
		service.NewOutputField(fieldDLOutput).
			Description("Any Benthos output to write dead-letter records to instead of `topic`. Records are written whole (no truncation, no spool), with the metadata described above.").
			Optional().
			Advanced(),
		service.NewStringField(fieldDLSpoolDir).
			Description("Directory where a payload too large for Danube is written whole before its truncated record goes to `topic`. Relative paths are relative to the working directory; give it a persistent volume in containers. Not used with `output`.").
			Default(defaultSpoolDir).
			Examples("/var/lib/benthos-danube/dead-letter"),
		service.NewIntField(fieldDLMaxPayload).
			Description("How many bytes of a too-large payload its record on `topic` keeps.").
			Default(defaultDLMaxPayload).
			Advanced(),
	).
		Description("Where messages that can never be delivered go (see Dead letters above).").
		Example(map[string]any{"topic": "/iot/dead_letter", "spool_dir": "/data/dead-letter"}).
		Example(map[string]any{"output": map[string]any{"file": map[string]any{"path": "/data/dead-letter/${! timestamp_unix_nano() }.bin", "codec": "all-bytes"}}}).
		Example(map[string]any{"enabled": false})
}
