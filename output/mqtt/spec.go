package mqttout

import (
	"fmt"
	"os"

	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/benthos-danube/benthos-danube/internal/configlint"
	"github.com/benthos-danube/benthos-danube/internal/mqttconn"
	"github.com/benthos-danube/benthos-danube/internal/ordering"
)

// Field names of the mqtt output. The connection fields are the mqtt
// input's.
const (
	fieldURLs           = "urls"
	fieldClientID       = "client_id"
	fieldUser           = "user"
	fieldPassword       = "password"
	fieldTLS            = "tls"
	fieldKeepalive      = "keepalive"
	fieldConnectTimeout = "connect_timeout"
	fieldTopic          = "topic"
	fieldQoS            = "qos"
	fieldRetained       = "retained"
	fieldWriteTimeout   = "write_timeout"
	fieldSkipOrigin     = "skip_mqtt_origin"
	fieldBatching       = "batching"
	fieldDeadLetter     = "dead_letter"
	fieldDLOutput       = "output"
	fieldMaxInFlight    = "max_in_flight"
	fieldProtocol       = mqttconn.FieldProtocol
	fieldUserProps      = "user_properties"
)

// Name is the name the output is registered under.
const Name = "mqtt"

// Spec returns the configuration spec of the mqtt output.
func Spec() *service.ConfigSpec {
	// The lint rule runs the start-up checks (settings.check); see check.go.
	lintRule := configlint.Rule(lintFuncName, "mqtt output", Spec, lintChecks, os.Stderr)
	return service.NewConfigSpec().
		Beta().
		Categories("Services").
		Version("0.2.0").
		Summary("Publishes messages to an MQTT 3.1.1 or 5 broker, to a topic per message, and acknowledges a QoS 1/2 message to the pipeline only after the broker's PUBACK (QoS 2: PUBCOMP).").
		Description(specDescription+service.OutputPerformanceDocs(true, true)).
		Fields(
			service.NewURLListField(fieldURLs).
				Description("Broker URLs to connect to, tried in order; as for the `mqtt` input (`tcp://`, `ssl://`, `ws://`, `wss://`, `unix://`, a port except with `ws://` and `wss://`).").
				Example([]string{"tcp://localhost:1883"}),
			service.NewStringField(fieldProtocol).
				Description("MQTT protocol version spoken to the broker, as on the `mqtt` input: `3.1.1` (Eclipse paho.mqtt.golang) or `5` (Eclipse paho.golang: a broker's refusal in the PUBACK/PUBREC reason code dead-letters the message at once, the message's metadata becomes user properties (see `user_properties`) and `mqtt.content_type`, `mqtt.response_topic`, `mqtt.correlation_data` become Content Type, Response Topic and Correlation Data, and the broker's Receive Maximum bounds the messages in flight). A broker that refuses MQTT 5 fails the connection with an error saying to set `protocol_version: 3.1.1`.").
				Examples(mqttconn.Protocol311, mqttconn.Protocol5).
				Default(mqttconn.Protocol311),
			service.NewStringField(fieldClientID).
				Description("MQTT client identifier. Empty: the broker assigns one. Two clients with the same id keep disconnecting each other, so give each instance its own (it must differ from the `mqtt` input's in a bidirectional setup). The output always starts a clean session: nothing is kept in the broker for it between connections.").
				Default(""),
			service.NewStringField(fieldUser).
				Description("Username for broker authentication.").
				Default("").
				Advanced(),
			service.NewStringField(fieldPassword).
				Description("Password for broker authentication.").
				Default("").
				Secret().
				Advanced(),
			service.NewTLSToggledField(fieldTLS),
			service.NewDurationField(fieldKeepalive).
				Description("MQTT keep-alive interval.").
				Default("30s").
				Advanced(),
			service.NewDurationField(fieldConnectTimeout).
				Description("Timeout for establishing the connection (dial, TLS handshake and CONNACK).").
				Default("30s").
				Advanced(),
			service.NewInterpolatedStringField(fieldTopic).
				Description("The topic to publish each message to, interpolated per message. A result that is empty, contains `+`, `#` or U+0000, is not valid UTF-8 or is longer than 65535 bytes can never be published: the message is dead-lettered (reason `invalid_topic`).").
				Examples("devices/${! @device_id }/commands", `devices/${! this.device }/commands`),
			service.NewInterpolatedStringField(fieldQoS).
				Description("The QoS to publish at: 0, 1 or 2, interpolated per message. A value other than 0, 1, 2 dead-letters the message (reason `invalid_message`); `lint` checks a static one.").
				Default("1"),
			service.NewInterpolatedStringField(fieldRetained).
				Description("Publish with the RETAIN flag: `true` or `false`, interpolated per message. Another value dead-letters the message (reason `invalid_message`); `lint` checks a static one.").
				Default("false").
				Advanced(),
			service.NewDurationField(fieldWriteTimeout).
				Description("How long a message may wait for the broker's acknowledgement (QoS 1: PUBACK, QoS 2: PUBCOMP; QoS 0: being written to the connection). A message not acknowledged in time is not acknowledged to the pipeline; Benthos retries it (a duplicate if the broker had it).").
				Default("10s"),
			service.NewBoolField(fieldSkipOrigin).
				Description("Loop guard: do not publish a message that came from MQTT, recognised by the metadata `source` = `mqtt` (the Rust connector's attribute) or by `mqtt_topic` or `mqtt.topic` metadata (set by the `mqtt` input and, through Danube attributes, by the `danube` input for messages the uplink bridged). Such a message is acknowledged without being published and counted in `mqtt_output_loop_skipped`. Set `false` to republish MQTT messages (an MQTT-to-MQTT pipeline).").
				Default(true),
			service.NewMetadataFilterField(fieldUserProps).
				Description("With `protocol_version: 5`: which metadata keys become MQTT 5 user properties, matched against the metadata key. When unset, all metadata is sent except the keys that are not the message's data: `danube_*` (the `danube` input's keys and the routing keys), `dead_letter_*`, the ordering stamp `mqtt_output_seq`, and the MQTT keys of the message's previous hop (`mqtt_*`, `mqtt.*`). A user property that came up through the bridge keeps its key: `mqtt.user.<k>` (Danube Edge's attribute name) and `mqtt_user_<k>` (the `mqtt` input's metadata) become the user property `<k>`. Values are sent as strings, keys sorted. Not allowed with `protocol_version: 3.1.1`, which has no user properties.").
				Optional().
				Advanced().
				Example(map[string]any{"include_prefixes": []any{"mqtt.user.", "device_"}}),
			service.NewOutputMaxInFlightField().Default(64),
			service.NewBatchPolicyField(fieldBatching).Advanced(),
			service.NewObjectField(fieldDeadLetter,
				service.NewOutputField(fieldDLOutput).
					Description("Any Benthos output that receives the messages which can never be published (see Dead letters above), with their metadata and the `dead_letter_*` keys.").
					Optional(),
			).
				Description("Where messages that can never be published go.").
				Optional(),
		).
		LintRule(lintRule).
		Example("Device commands",
			"Commands from a Danube topic to each device's MQTT topic; messages that can never be published go to a Danube dead-letter topic.",
			`
input:
  danube:
    url: http://localhost:6650
    topics: [ /iot/commands ]
    subscription: downlink
    subscription_type: failover
output:
  mqtt:
    urls: [ tcp://localhost:1883 ]
    client_id: benthos-danube-downlink
    topic: devices/${! @device_id }/commands
    qos: 1
    dead_letter:
      output:
        danube:
          url: http://localhost:6650
          topic: /default/dead_letter
`)
}

// Register registers the mqtt output (and its ordering stage's processor) on
// env. The package's init registers them on the global environment; tests
// use an isolated environment.
func Register(env *service.Environment) error {
	if err := ordering.RegisterStamper(env, stampProcessorName, Name); err != nil {
		return err
	}
	if err := env.RegisterBatchOutput(Name, Spec(),
		func(conf *service.ParsedConfig, mgr *service.Resources) (service.BatchOutput, service.BatchPolicy, int, error) {
			return newFromConfig(env, conf, mgr)
		}); err != nil {
		return fmt.Errorf("registering the %s output: %w", Name, err)
	}
	return nil
}

func init() {
	if err := Register(service.GlobalEnvironment()); err != nil {
		panic(err)
	}
}

const specDescription = `
Built on the Eclipse Paho Go clients (MQTT 3.1.1: paho.mqtt.golang; MQTT 5: paho.golang, with ` + "`protocol_version: 5`" + `). The downlink half of the bridge: with the ` + "`danube`" + ` input it
turns a Danube topic into MQTT messages, for example commands to devices.

== Acknowledgements and delivery guarantee

A message is acknowledged to the pipeline (and so, with the ` + "`danube`" + ` input, to Danube) only when the broker
acknowledged it: at QoS 1 after its PUBACK, at QoS 2 after its PUBCOMP, at QoS 0 once it is written to the
connection. A message not acknowledged within ` + "`write_timeout`" + `, or whose connection is lost first, is not
acknowledged: Benthos retries it, and the ` + "`danube`" + ` input redelivers it if the bridge stops. This is
at-least-once: a retry after a lost PUBACK publishes the message again (a duplicate the subscriber sees with
DUP=0, because every retry is a new PUBLISH).

== Order

Messages are published in the order the pipeline emitted them, on one connection, so the broker receives the
messages of a topic in order (MQTT 3.1.1 §4.6 makes it deliver them in that order to each subscriber at the
same QoS). This holds with ` + "`max_in_flight`" + ` above 1: the output's batching stage stamps every message in
pipeline order (the processor ` + "`mqtt_output_order_stamp`" + `, metadata ` + "`mqtt_output_seq`" + `) before Benthos' writer
goroutines race each other, and publishes are admitted strictly in stamp order, while up to
` + "`max_in_flight`" + ` batches wait for their acknowledgements at once. Only a failure reorders: a message that is
not acknowledged in time (or whose connection is lost while other writes succeed) is nacked, and the input
delivers it again after later messages of its topic may have been published. When the connection is lost for
a whole batch, Benthos reconnects and writes that same batch again before anything after it. Subscribers that
need strict order across failures should order on a sequence number in the payload.

== Dead letters

A message that can never be published is dead-lettered and then acknowledged, so it never blocks the others:

- ` + "`invalid_topic`" + `: ` + "`topic`" + ` resolves to an empty name, or one with wildcards (` + "`+`" + `, ` + "`#`" + `), U+0000,
  invalid UTF-8 or more than 65535 bytes, or its interpolation fails;
- ` + "`invalid_message`" + `: ` + "`qos`" + ` or ` + "`retained`" + ` cannot be evaluated for it, or the payload cannot be read;
- any reason a pipeline set in ` + "`dead_letter_reason`" + ` metadata (for example in a ` + "`catch`" + `);
- ` + "`rejected`" + `: the broker closes the connection each time it gets this message (below).

Its record goes to ` + "`dead_letter.output`" + ` with the message's payload, its metadata and ` + "`dead_letter_reason`" + `,
` + "`dead_letter_error`" + `, ` + "`dead_letter_mqtt_topic`" + ` (the topic it was meant for, when one could be formed) and
` + "`dead_letter_time`" + `. Counted in ` + "`mqtt_output_dead_lettered`" + ` (label ` + "`reason`" + `). Without ` + "`dead_letter.output`" + `
the message fails (a nack, logged with the reason): Benthos retries it, and the ` + "`danube`" + ` input redelivers it,
for ever, while the other messages keep flowing. If the dead-letter output fails, the message is held and
retried (` + "`mqtt_output_dead_letter_failures`" + `).

== What a broker's refusal looks like on MQTT 3.1.1

An MQTT 3.1.1 broker cannot refuse a PUBLISH: it can only acknowledge and drop it, or close the connection.
Measured on Mosquitto 2.0.11 (tests in output/mqtt):

- A publish its ACL denies gets a normal PUBACK (PUBREC/PUBCOMP at QoS 2; the log says ` + "`Denied PUBLISH`" + ` and
  ` + "`Sending PUBACK ... rc135`" + `, but a 3.1.1 PUBACK carries no reason code) and is dropped. The output cannot tell it
  from a delivery: it is acknowledged to the pipeline. With ` + "`max_queued_messages 0`" + ` Mosquitto also closes the
  connection right after that PUBACK; the messages in flight behind it are retried after the reconnect.
- A payload over ` + "`message_size_limit`" + ` is acknowledged and dropped the same way.
- A packet over ` + "`max_packet_size`" + ` closes the connection without an acknowledgement. So does an ACL-denied
  QoS 1/2 publish on mochi (v2.7.9 disconnects a 3.1.1 client for it).

A message that keeps closing the connection is found: every message in flight when a connection is lost is
published alone next (once nothing else is in flight, and nothing after it until its outcome is known); when
the connection is lost twice while it was alone, it is dead-lettered with reason ` + "`rejected`" + `. One refused
message therefore costs two reconnects and never stops the others. A broker restart costs each message in
flight one isolated publish. MQTT 5 reports refusals in the PUBACK's reason code (Mosquitto: 0x87 not
authorized, 0x95 packet too large): see the next section.

== MQTT 5

With ` + "`protocol_version: 5`" + ` a PUBACK or PUBREC reason code of 0x80 or more dead-letters the message at once (no
reconnect, no isolation): 0x87 ` + "`permission_denied`" + `, 0x90 ` + "`invalid_topic`" + `, 0x95 ` + "`too_large`" + `, any other
` + "`rejected`" + `, with the code and the broker's reason string in ` + "`dead_letter_error`" + `. A message over the broker's
Maximum Packet Size, at a QoS over its Maximum QoS or retained where RETAIN is not available is refused the same
way before it is sent. The broker's Receive Maximum bounds the messages in flight. The message's metadata
becomes user properties (see ` + "`user_properties`" + `), ` + "`mqtt.content_type`" + `, ` + "`mqtt.response_topic`" + ` and
` + "`mqtt.correlation_data`" + ` (base64) become Content Type, Response Topic and Correlation Data; a value that is not a
valid MQTT string or correlation data that is not base64 dead-letters the message (` + "`invalid_message`" + `).

== Loop safety

In a bidirectional setup the uplink writes MQTT messages to Danube with their ` + "`mqtt_*`" + ` metadata as attributes
(or the Rust connector's ` + "`mqtt.topic`" + ` and ` + "`source: mqtt`" + `), and the ` + "`danube`" + ` input turns attributes back into
metadata. With ` + "`skip_mqtt_origin: true`" + ` (the default) this output acknowledges such a message without publishing
it (` + "`mqtt_output_loop_skipped`" + `), so a message can never go round the loop even if the downlink reads a topic
the uplink writes. Keep the command topics distinct from the telemetry topics anyway.

== Connection

One connection, started on the first write and kept. A lost connection fails the messages in flight (retried
as above) and is replaced by a fresh one, with a back-off growing from 0.5 s to 30 s (±20 %) while the broker
stays unreachable or refuses the connection. While disconnected the output reports not ready on ` + "`/ready`" + `.

== Metrics

` + "`mqtt_output_loop_skipped`" + `, ` + "`mqtt_output_dead_lettered`" + ` (label ` + "`reason`" + `), ` + "`mqtt_output_dead_letter_failures`" + `,
` + "`mqtt_output_ack_timeouts`" + ` (messages not acknowledged within ` + "`write_timeout`" + `), ` + "`mqtt_output_reconnects`" + `
(counters), in addition to Benthos' ` + "`output_*`" + ` metrics.
`
