package mqtt

import (
	"github.com/redpanda-data/benthos/v4/public/service"
	"os"

	"github.com/benthos-danube/benthos-danube/internal/configlint"
	"github.com/benthos-danube/benthos-danube/internal/mqttconn"
)

// Field names of the mqtt input. They follow Benthos' usual mqtt input where
// one exists.
const (
	fieldURLs           = "urls"
	fieldClientID       = "client_id"
	fieldDynamicSuffix  = "dynamic_client_id_suffix"
	fieldUser           = "user"
	fieldPassword       = "password"
	fieldTLS            = "tls"
	fieldKeepalive      = "keepalive"
	fieldConnectTimeout = "connect_timeout"
	fieldCleanSession   = "clean_session"
	fieldWill           = "will"
	fieldMaxUnacked     = "max_unacked"
	fieldMappings       = "topic_mappings"
	fieldTopics         = "topics"
	fieldQoS            = "qos"

	fieldOrderedAcks    = "ordered_acks"
	fieldMapMQTTTopic   = "mqtt_topic"
	fieldMapDanubeTopic = "danube_topic"
	fieldMapQoS         = "qos"
	fieldMapPartitions  = "partitions"
	fieldMapReliable    = "reliable_dispatch"

	fieldRetainedOnResume = "retained_on_resume"

	fieldProtocol      = mqttconn.FieldProtocol
	fieldSessionExpiry = "session_expiry"
)

// Spec returns the configuration spec of the mqtt input.
func Spec() *service.ConfigSpec {
	// The lint rule runs the start-up checks (settings.check); see check.go.
	lintRule := configlint.Rule(lintFuncName, "mqtt input", Spec, lintChecks, os.Stderr)
	return service.NewConfigSpec().
		Beta().
		Categories("Services").
		Version("0.1.0").
		Summary("Subscribes to an MQTT 3.1.1 or MQTT 5 broker, routes each message to a Danube topic through `topic_mappings`, and acknowledges it to the broker (PUBACK/PUBREC) only after the pipeline's output has confirmed it.").
		Description(specDescription).
		Fields(
			// A plain string field: Benthos' enum lint looks each value up as a
			// Bloblang path, and "3.1.1" is a path of three levels; the input's
			// own check (lint and start-up) rejects other values.
			service.NewStringField(fieldProtocol).
				Description("MQTT protocol version spoken to the broker: `3.1.1` (Eclipse paho.mqtt.golang) or `5` (Eclipse paho.golang: PUBLISH properties become metadata (content type, response topic, correlation data, user properties, …), the session expiry interval replaces `clean_session`, Receive Maximum is `max_unacked`, and a resumed session does not get retained messages again through Retain Handling 1). Both run the same data path: acknowledgements only after the output confirmed, in arrival order, persistent sessions, back-pressure, natural batches, dead-letter marking.").
				Examples(protocol311, protocol5).
				Default(protocol311),
			service.NewURLListField(fieldURLs).
				Description("Broker URLs to connect to, tried in order. Schemes: `tcp://` (or `mqtt://`), `ssl://` (or `tls://`, `mqtts://`), `ws://`, `wss://`, `unix://`. A port is required (1883 is the usual plain port, 8883 the TLS one) except with `ws://` and `wss://`, which default to 80 and 443. Items containing commas are split. `lint` and start-up reject a URL the client could not dial.").
				Example([]string{"tcp://localhost:1883"}),
			service.NewStringField(fieldClientID).
				Description("MQTT client identifier. Required (non-empty) with `clean_session: false`, and must then be stable across restarts and unique per bridge instance: two clients with the same id keep disconnecting each other.").
				Default(""),
			service.NewStringAnnotatedEnumField(fieldDynamicSuffix, map[string]string{
				"nanoid": "Append a 21 character nanoid, generated once per process start.",
			}).
				Description("Append a random suffix to `client_id`, e.g. for replicas in Kubernetes. The suffix changes on every start, so a persistent session is not resumed after a restart; use it with shared subscriptions and `clean_session: true`.").
				Optional().
				Advanced(),
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
				Description("MQTT keep-alive interval. The client pings the broker when idle; the connection stays up while the output is stalled, because acks are withheld without blocking the network loop.").
				Default("30s").
				Advanced(),
			service.NewDurationField(fieldConnectTimeout).
				Description("Timeout for establishing the connection (TCP/TLS/WebSocket dial and CONNACK) and for the SUBACK.").
				Default("30s").
				Advanced(),
			service.NewBoolField(fieldCleanSession).
				Description("Start a clean session on every connect. Set to `false` (with a stable `client_id`) so the broker keeps the subscriptions and queues QoS 1/2 messages while the bridge is down; they arrive after it restarts. Subscriptions are re-sent on every connect whatever this says.").
				Default(true),
			service.NewStringField(fieldSessionExpiry).
				Description("MQTT 5 only: the session expiry interval sent with `clean_session: false`, how long the broker keeps the session (subscriptions and queued QoS 1/2 messages) after the bridge disconnected. `never` (the default, 0xFFFFFFFF) keeps it as an MQTT 3.1.1 persistent session is kept, until the broker's own policy removes it; or a duration from `1s`, rounded down to whole seconds. With `clean_session: true` the input sends Clean Start and a session expiry of 0: the session ends with the connection, as a 3.1.1 clean session.").
				Default(sessionNever).
				Examples("never", "24h", "168h").
				Advanced(),
			service.NewObjectField(fieldWill,
				service.NewBoolField("enabled").Description("Register a last-will message.").Default(false),
				service.NewIntField("qos").Description("QoS of the will message (0, 1 or 2).").Default(0),
				service.NewBoolField("retained").Description("Publish the will message retained.").Default(false),
				service.NewStringField("topic").Description("Topic of the will message.").Default(""),
				service.NewStringField("payload").Description("Payload of the will message.").Default(""),
			).
				Description("Last-will message the broker publishes when the bridge disconnects uncleanly.").
				Advanced(),
			service.NewIntField(fieldMaxUnacked).
				Description("Maximum number of messages handed to the pipeline and not yet acknowledged. When reached, the input stops handing messages over; once another `max_unacked` messages wait in the input, it stops reading the connection, so the broker holds the rest. After 5 s without progress, waiting QoS 0 messages are dropped and counted in `mqtt_input_qos0_dropped`; QoS 1/2 messages are never dropped (their acknowledgements are withheld).").
				Default(1024).
				Advanced(),
			service.NewBoolField(fieldOrderedAcks).
				Description("Send PUBACK/PUBREC in the order the messages arrived on the connection, as MQTT 3.1.1 [MQTT-4.6.0-2] requires: a message the pipeline acknowledged waits until every earlier one was acknowledged too. Brokers such as Mosquitto rely on it to keep the order of a topic: acknowledged out of order, Mosquitto 2.0 delivers later messages before earlier ones. `false` acknowledges each message as soon as the pipeline did, so a message stuck in retry does not hold back the others, at the cost of that ordering.").
				Default(true).
				Advanced(),
			service.NewStringAnnotatedEnumField(fieldRetainedOnResume, map[string]string{
				retainedSkip:    "Acknowledge these replays to the broker without forwarding them, counted in `mqtt_input_retained_skipped`; also the further copies a topic that several mappings match gets on a new session (the broker sends one per matching subscription). Still forwarded: replays at QoS 0 (the broker need not queue QoS 0 messages for an offline session, so the replay may be the only copy), redeliveries (DUP=1), and replays the broker had queued on an earlier connection but never sent.",
				retainedForward: "Forward every retained message the broker sends, replays included: each retained message reaches the output again on every reconnect, with `mqtt_retained: true` and `mqtt_duplicate: false`.",
			}).
				Description("What to do with the retained messages the broker re-sends when a persistent session is resumed (CONNACK session present): the input subscribes again on every connect, and MQTT 3.1.1 [MQTT-3.8.4-3] makes the broker answer with every matching retained message (RETAIN=1). The session already had them: delivered when they were published (RETAIN=0, queued while the bridge was down), or when the subscription was first made. A new session (first start, new `client_id`, `clean_session: true`, or a broker that lost the session) gets every retained message once. With `skip`, a mapping added to the configuration of an existing persistent session does not get the broker's current retained messages: start once with `forward` if they matter.").
				Default(retainedSkip).
				Advanced(),
			service.NewObjectListField(fieldMappings,
				service.NewStringField(fieldMapMQTTTopic).
					Description("MQTT topic filter with `+` and `#` wildcards, named placeholders `{name}` (a whole level, subscribed as `+`), or a shared subscription `$share/<group>/<filter>`.").
					Examples("sensors/+/zone1", "sensors/{kind}/zone1", "$share/bridge/devices/+/telemetry", "debug/#"),
				service.NewStringField(fieldMapDanubeTopic).
					Description("Danube topic `/namespace/topic` for messages matching `mqtt_topic`. May use the placeholders named in `mqtt_topic`, e.g. `/iot/{kind}_zone1`.").
					Examples("/iot/sensors_zone1", "/iot/{kind}_zone1"),
				service.NewAnyField(fieldMapQoS).
					Description("Subscription QoS: `0`, `1`, `2`, or the Rust connector's names `AtMostOnce`, `AtLeastOnce`, `ExactlyOnce`. The broker delivers at min(publisher QoS, this).").
					Default(1),
				service.NewIntField(fieldMapPartitions).
					Description("Number of partitions of the Danube topic (0 = not partitioned), passed on as `danube_partitions`.").
					Default(0),
				service.NewBoolField(fieldMapReliable).
					Description("Reliable dispatch on the Danube topic, passed on as `danube_reliable_dispatch`. Defaults to true unless `qos` is 0.").
					Optional(),
				service.NewStringMapField(fieldMapAttributes).
					Description("Named placeholder values of `mqtt_topic` set as metadata, and so written as Danube attributes, like Danube Edge's `extract_attributes`: attribute name → `\"{placeholder}\"`. The value is the raw topic level. Names the bridge sets itself (`mqtt_*`, `mqtt.*`, `danube_*`, `dead_letter_*`, `source`) are refused. Set only when configured: every metadata key costs on every message.").
					Default(map[string]any{}).
					Example(map[string]any{"device_id": "{device}"}).
					Advanced(),
			).
				Description("Routes from MQTT filters to Danube topics, evaluated in order; the first match wins. Each filter is subscribed at its own QoS.").
				Default([]any{}),
			service.NewStringListField(fieldTopics).
				Description("Plain form without Danube routing: topic filters to subscribe to at `qos`, for pipelines that go elsewhere. Mutually exclusive with `topic_mappings`.").
				Default([]any{}).
				Advanced(),
			service.NewIntField(fieldQoS).
				Description("Subscription QoS for the plain `topics` form.").
				Default(1).
				Advanced(),
			service.NewAutoRetryNacksToggleField(),
		).
		LintRule(lintRule).
		Example("Rust connector mappings",
			"The four mappings of the Rust MQTT connector's example, with a per-kind topic for zone 1 and a persistent session.",
			`
input:
  mqtt:
    urls: [ tcp://localhost:1883 ]
    client_id: benthos-danube-bridge
    clean_session: false
    topic_mappings:
      - mqtt_topic: sensors/+/zone1
        danube_topic: /iot/sensors_zone1
        qos: AtLeastOnce
        partitions: 4
      - mqtt_topic: devices/+/telemetry
        danube_topic: /iot/device_telemetry
        qos: 1
        partitions: 2
      - mqtt_topic: sensors/temp/#
        danube_topic: /iot/temperature
      - mqtt_topic: debug/#
        danube_topic: /iot/debug
        qos: 0
output:
  danube:
    url: http://localhost:6650
`).
		Example("Per-device-kind topics, scaled out",
			"A named placeholder routes each sensor kind to its own Danube topic; a shared subscription spreads the stream over several bridge instances.",
			`
input:
  mqtt:
    urls: [ tcp://broker:1883 ]
    client_id: bridge-${HOSTNAME}
    clean_session: false
    topic_mappings:
      - mqtt_topic: $share/danube-bridge/sensors/{kind}/zone1
        danube_topic: /iot/{kind}_zone1
        qos: 1
`)
}

const specDescription = `
Built on the Eclipse Paho Go clients: paho.mqtt.golang for MQTT 3.1.1 (the default), paho.golang for MQTT 5
(` + "`protocol_version: 5`" + `). Both protocols run the same input: acknowledgements, ordering, retries, flow control,
mappings, metadata and dead-letter marking are shared; only the connection differs.

== Acknowledgements and delivery guarantee

Paho's automatic acknowledgement is disabled. A QoS 1 message is PUBACKed (a QoS 2 message PUBRECed) only
when Benthos acknowledges it, that is after the output confirmed it (for the ` + "`danube`" + ` output: after
the Danube broker acknowledged the send). With ` + "`auto_replay_nacks: true`" + ` (the default) a message the
output rejects is retried inside the pipeline and never acknowledged to MQTT before it is delivered. With
` + "`auto_replay_nacks: false`" + ` a rejected message is acknowledged to MQTT and dropped (counted in
` + "`mqtt_input_nack_dropped`" + `).

Together with ` + "`clean_session: false`" + `, a stable ` + "`client_id`" + ` and a broker that persists sessions, this
gives at-least-once delivery from the MQTT broker to the output across output outages, bridge crashes and
restarts, and broker restarts. Messages the broker redelivers carry ` + "`mqtt_duplicate: true`" + `;
downstream consumers should expect duplicates.

PUBACKs are sent in the order the PUBLISH packets arrived, as MQTT 3.1.1 [MQTT-4.6.0-2] requires
(` + "`ordered_acks: true`" + `, the default): a message the output confirmed waits until every earlier message of
the connection was confirmed too. Mosquitto needs this to keep the order of a topic. The price: a message
stuck in retry holds back the acknowledgements of later ones, so the broker's in-flight window fills and the
flow pauses until it is delivered. Only a transient failure (an outage) can keep a message in retry: the
` + "`danube`" + ` output dead-letters a message that can never be delivered and then acknowledges it, so one bad
message never stops the others. ` + "`mqtt_input_oldest_unacked_age_seconds`" + ` shows any such pause.

== Flow control

Each read hands the pipeline a natural batch: every message already waiting, up to 256, without ever waiting
for more. At low load a batch is one message, so no latency is added; under load batches grow by themselves
and Benthos' per-transaction work (processors, the output's batching stage, the write) is paid once per batch.
Each batch is one Benthos transaction; when the output reports which messages of a batch failed (the
` + "`danube`" + ` output does), only those are retried. PUBACKs still go out per message, in arrival order, each
only after the output confirmed its message.

At most ` + "`max_unacked`" + ` messages are in the pipeline unacknowledged, and at most another
` + "`max_unacked`" + ` wait in the input, whatever their QoS. When that many wait, the input stops reading the
connection until the pipeline takes one, and TCP flow control holds the flood in the MQTT broker, which is
where MQTT queues messages for a slow subscriber. QoS 1/2 cannot rely on the broker's in-flight window
alone: Mosquitto 2.0 holds ` + "`max_inflight_messages`" + ` only while the subscriber acknowledges nothing, and
sent a bridge that acknowledged slower than messages arrived more than 400,000 QoS 1 messages ahead of its
acknowledgements. Paho reads keep-alive answers on the same path, so the pause is bounded: when the pipeline
takes nothing for 5 s (half of Paho's 10 s ping timeout; over MQTT 5 half the keepalive when that is shorter,
as paho.golang waits one keepalive for a ping answer), waiting QoS 0 messages are dropped until it takes
one again, counted in ` + "`mqtt_input_qos0_dropped`" + ` and logged (rate-limited), while QoS 1/2 messages are
kept beyond the bound and never dropped: their acknowledgements are withheld, which stops the broker's window
and keeps the connection and its pings alive through an output stall.

== Topic mappings

` + "`topic_mappings`" + ` are evaluated in order and the first match wins. Matching follows MQTT 3.1.1 §4.7:
` + "`+`" + ` matches one level (also an empty one), ` + "`#`" + ` matches any number of levels including the parent
(` + "`sensors/#`" + ` matches ` + "`sensors`" + `), topics starting with ` + "`$`" + ` are not matched by a filter whose
first level is a wildcard, and a ` + "`$share/<group>/`" + ` prefix is stripped before matching. Wildcards and
placeholders must occupy a whole level; ` + "`#`" + ` must be the last level.

A mapping whose filter an earlier mapping covers (every topic it matches, the earlier one matches too, e.g.
` + "`a/b`" + ` after ` + "`a/#`" + `, or ` + "`sensors/temp/zone1`" + ` after ` + "`sensors/+/zone1`" + `) never routes a message.
` + "`lint`" + ` reports it, naming both mappings, and so does start-up, as a warning; list the specific mapping first.
Benthos lint findings have no warning level, so this one, like every finding, also stops ` + "`benthos-danube -c`" + `
unless it runs with ` + "`--chilled`" + `.

Named placeholders: a level written ` + "`{name}`" + ` in ` + "`mqtt_topic`" + ` (name: ` + "`[A-Za-z_][A-Za-z0-9_]*`" + `)
is subscribed as ` + "`+`" + ` and its value can be used in ` + "`danube_topic`" + `: with
` + "`mqtt_topic: sensors/{kind}/zone1`" + ` and ` + "`danube_topic: /iot/{kind}_zone1`" + `, a message on
` + "`sensors/temp/zone1`" + ` goes to ` + "`/iot/temp_zone1`" + `. Positional references are not supported. At start-up
every ` + "`danube_topic`" + ` is checked to be a valid ` + "`/namespace/topic`" + ` whatever the captured values, and every
placeholder it uses must be named in the filter. At run time a captured value that is empty or contains a
character outside ` + "`[A-Za-z0-9_-]`" + ` cannot form a topic name: the message is still delivered, without
` + "`danube_topic`" + `, with an error set and marked for the dead-letter destination (` + "`dead_letter_reason: invalid_topic`" + `,
` + "`dead_letter_topic`" + ` the topic it would have formed, ` + "`dead_letter_mapping`" + ` the mapping's ` + "`mqtt_topic`" + `,
` + "`dead_letter_error`" + `), counted in ` + "`mqtt_input_placeholder_errors`" + ` and logged (rate-limited). The
` + "`danube`" + ` output writes it to its dead-letter topic and only then is it acknowledged.

A message that matches no mapping (for example from a subscription a persistent session kept from an earlier
configuration) is delivered with the ` + "`mqtt_*`" + ` metadata, an error set and ` + "`dead_letter_reason: no_mapping`" + `
(` + "`dead_letter_mapping: none`" + `), counted in ` + "`mqtt_input_unmatched`" + ` and logged as a rate-limited warning.
It is never dropped: the ` + "`danube`" + ` output dead-letters it.

` + "`lint`" + ` and start-up run the same checks. Config errors name the mapping index and field, e.g.
` + "`topic_mappings[2].mqtt_topic: invalid filter \"a/#/b\": '#' must be the last level`" + `.

== Sessions and reconnects

The input reconnects with exponential backoff (0.5 s to 30 s) and re-subscribes every mapping on every
connect, whatever ` + "`clean_session`" + ` says. A refused subscription (SUBACK 0x80 or above) fails the connection
attempt with an error naming the filter. While disconnected the input reports not ready on ` + "`/ready`" + `.
A warning is logged at start-up when QoS ≥ 1 mappings run with ` + "`clean_session: true`" + `: messages
published while the bridge is down are then lost. An empty ` + "`client_id`" + ` with ` + "`clean_session: false`" + `
is a config error.

== Retained messages

A new session gets the broker's retained messages once (` + "`mqtt_retained: true`" + `); retained messages published
later arrive like any other (` + "`mqtt_retained: false`" + `, MQTT 3.1.1 [MQTT-3.3.1-9]), also those queued while the
bridge was down. Because the input re-subscribes on every connect, the broker re-sends every matching retained
message each time a persistent session is resumed. With ` + "`retained_on_resume: skip`" + ` (the default) those
replays are acknowledged and counted in ` + "`mqtt_input_retained_skipped`" + `, not forwarded: a retained message
reaches the output once across restarts of the bridge and of the broker. Nothing published at QoS ≥ 1 to an
existing subscription is skipped: such a message is queued for the session and arrives with RETAIN=0 before the
replay. What remains:

- At QoS 0 (the mapping's or the publisher's) replays are forwarded on every reconnect: the broker does not queue
  QoS 0 for an offline session, so the replay may be the only copy.
- A mapping added to an existing persistent session: its filter's current retained messages are skipped as
  replays. Start once with ` + "`retained_on_resume: forward`" + ` (the other mappings' retained messages are then
  forwarded again) if they matter. The same holds for a mapping whose QoS was raised from 0.
- A retained message the broker dropped for the session (Mosquitto ` + "`max_queued_messages`" + ` reached while the
  bridge was down) is not recovered from the replay.
- The skip relies on the broker following [MQTT-3.3.1-9] (RETAIN=0 for an established subscription), as Mosquitto
  2 and mochi do. With a broker that forwards the retain flag as published, use ` + "`forward`" + `.

== Scaling out

Run several bridge instances on one stream with a shared subscription, ` + "`mqtt_topic: $share/<group>/<filter>`" + `
(Mosquitto ≥ 2.0, EMQX, HiveMQ, VerneMQ; also for MQTT 3.1.1 clients). The broker delivers each message to
one member of the group. Give every instance its own ` + "`client_id`" + `, stable across restarts.

With persistent sessions (` + "`clean_session: false`" + `) a stopped member stays in the group: Mosquitto keeps
assigning it its share (round robin) and queues those messages for its session; they wait until a bridge
with the same ` + "`client_id`" + ` connects again, and then all arrive. Derive the id from a stable name, e.g.
` + "`client_id: bridge-${HOSTNAME}`" + ` in a Kubernetes StatefulSet (pods ` + "`bridge-0`" + `, ` + "`bridge-1`" + `, … keep their names),
and do not combine ` + "`dynamic_client_id_suffix`" + ` with ` + "`clean_session: false`" + `: every start would leave an
orphaned session behind that keeps taking its share. Before removing a member for good, let it drain, then
delete its session (connect once with its ` + "`client_id`" + ` and a clean session) or let the broker expire it
(Mosquitto ` + "`persistent_client_expiration`" + `); messages still queued for it are lost then.

With ` + "`clean_session: true`" + ` a member that disconnects leaves the group and later messages go to the others, but
whatever the broker had assigned to it and it had not acknowledged (in flight or queued) is discarded with the
session, not given to another member: lost.

== Metadata

- ` + "`mqtt_topic`" + ` (string): the topic the message was published on.
- ` + "`mqtt_qos`" + ` (int): the QoS it was delivered at.
- ` + "`mqtt_retained`" + ` (bool): the retain flag.
- ` + "`mqtt_duplicate`" + ` (bool): the DUP flag (a redelivery).
- ` + "`mqtt_message_id`" + ` (int): the packet identifier (0 at QoS 0).
- ` + "`mqtt_filter`" + ` (string): in the plain ` + "`topics`" + ` form only, the subscription filter that matched, as
  sent to the broker. With ` + "`topic_mappings`" + `, ` + "`danube_topic`" + ` tells the mappings apart.
- MQTT 5 only, each when the PUBLISH carries the property: ` + "`mqtt_content_type`" + ` (string),
  ` + "`mqtt_response_topic`" + ` (string), ` + "`mqtt_correlation_data`" + ` (string: the binary data in standard base64, RFC 4648,
  padded), ` + "`mqtt_payload_format`" + ` (int, 0 bytes or 1 UTF-8), ` + "`mqtt_message_expiry`" + ` (int, seconds left),
  ` + "`mqtt_subscription_ids`" + ` (string, decimal; paho.golang reads one identifier per PUBLISH, and the input sets none on
  its subscriptions), and ` + "`mqtt_user_<key>`" + ` (string) for each user property; a key the PUBLISH repeats keeps its last
  value, as in Danube Edge. ` + "`mqttmeta.Attribute`" + ` maps them to the attributes ` + "`mqtt.content_type`" + `,
  ` + "`mqtt.response_topic`" + `, ` + "`mqtt.correlation_data`" + `, ` + "`mqtt.payload_format`" + `, ` + "`mqtt.message_expiry`" + `,
  ` + "`mqtt.subscription_ids`" + ` and ` + "`mqtt.user.<key>`" + ` (values unchanged).
- ` + "`danube_topic`" + ` (string), ` + "`danube_partitions`" + ` (int), ` + "`danube_reliable_dispatch`" + ` (bool): from the
  matching mapping (not set in the plain ` + "`topics`" + ` form).
- the keys of the matching mapping's ` + "`attributes`" + ` (string): the raw values of its named placeholders.

The ` + "`danube`" + ` output writes ` + "`mqtt_topic`" + `, ` + "`mqtt_qos`" + `, ` + "`mqtt_retained`" + ` and ` + "`mqtt_duplicate`" + ` to Danube
as ` + "`mqtt.topic`" + `, ` + "`mqtt.qos`" + `, ` + "`mqtt.retain`" + ` and ` + "`mqtt.dup`" + `, plus ` + "`source: mqtt`" + ` (its
` + "`attribute_names`" + `); Bloblang sees the names above.

== MQTT 5

With ` + "`protocol_version: 5`" + `:

- Properties become metadata (see Metadata), which ` + "`mqttmeta`" + ` names as Danube Edge's attributes
  ` + "`mqtt.content_type`" + `, ` + "`mqtt.response_topic`" + ` and ` + "`mqtt.user.<key>`" + `.
- Sessions: ` + "`clean_session: true`" + ` sends Clean Start and a session expiry of 0 (the session ends with the
  connection); ` + "`clean_session: false`" + ` sends no Clean Start and ` + "`session_expiry`" + ` (default ` + "`never`" + `, as a
  3.1.1 persistent session).
- Flow: the CONNECT's Receive Maximum is ` + "`max_unacked`" + ` (at most 65535), so the broker never has more unacknowledged
  QoS 1/2 messages out to the bridge than the input holds; PUBACK/PUBREC go out in arrival order only after the
  output confirmed, as over 3.1.1.
- Retained messages: with ` + "`clean_session: false`" + ` and ` + "`retained_on_resume: skip`" + ` every subscription is sent with
  Retain Handling 1, so a resumed session gets no replays at all (a mapping the session did not have gets the
  current retained messages, unlike 3.1.1); ` + "`forward`" + ` sends Retain Handling 0.
- A refused subscription names the filter, the reason code and its meaning, and the broker's reason string; a
  DISCONNECT from the broker is logged with its reason code and reason string; a broker that refuses MQTT 5
  (CONNACK 0x84, or a 3.1.1 answer) fails the connection with an error saying to set ` + "`protocol_version: 3.1.1`" + `.
- Topic aliases: the input announces none, so the broker sends every topic in full; aliases a broker sends anyway
  are resolved per connection. A malformed packet or an alias without a topic ends the connection with the error
  logged; the message is not acknowledged, so the broker redelivers it.
- Message expiry: ` + "`mqtt_message_expiry`" + ` is what is left when the message enters the pipeline. A message whose
  expiry ran out while it waited in the bridge (for the pipeline or in retry) is marked for the dead-letter
  destination (` + "`dead_letter_reason: expired`" + `), counted in ` + "`mqtt_input_expired`" + `, and acknowledged once the
  output wrote it there: never dropped silently.
- Shared subscriptions ` + "`$share/<group>/<filter>`" + ` are sent as MQTT 5 defines them; a broker that announces no
  shared subscription support makes the connection fail with that reason.

== Metrics

` + "`mqtt_input_unmatched`" + `, ` + "`mqtt_input_placeholder_errors`" + `, ` + "`mqtt_input_qos0_dropped`" + `,
` + "`mqtt_input_acks_sent`" + ` (PUBACK/PUBREC), ` + "`mqtt_input_duplicates`" + ` (messages with the DUP flag),
` + "`mqtt_input_nack_dropped`" + `, ` + "`mqtt_input_reconnects`" + `, ` + "`mqtt_input_retained_skipped`" + `, ` + "`mqtt_input_expired`" + ` (counters) and ` + "`mqtt_input_unacked`" + `,
` + "`mqtt_input_queued`" + ` (gauges, refreshed every second), in addition to Benthos' ` + "`input_*`" + ` metrics.
` + "`mqtt_input_oldest_unacked_age_seconds`" + ` (gauge, refreshed every second) is the age of the oldest message
received from MQTT and not yet acknowledged to it, waiting or in the pipeline (0 when there is none): one alert
on it catches any stall, whatever its cause.
`
