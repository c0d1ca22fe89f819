// Package mqttmeta is the one place for the names an MQTT message carries
// through the bridge: the Benthos metadata keys the mqtt input sets (and the
// mqtt output reads), and the Danube attribute names existing Danube
// consumers read.
//
// Two name sets exist because two audiences read them. Bloblang and Benthos
// users see Benthos-style keys (`mqtt_topic`, `mqtt_qos`, …), as Benthos' own
// mqtt input names them. Danube consumers written for the Rust
// `danube-source-mqtt` connector read `mqtt.topic`, `mqtt.qos`, `mqtt.retain`,
// `mqtt.dup` and `source=mqtt`; consumers of Danube Edge, Danube's own MQTT
// server, read `mqtt.content_type`, `mqtt.response_topic` and
// `mqtt.user.<key>` for MQTT 5 properties. Attribute maps the first set onto
// the second.
package mqttmeta

import "strings"

// Metadata keys set by the mqtt input on every message.
const (
	Topic     = "mqtt_topic"      // the PUBLISH topic (a topic alias resolved)
	QoS       = "mqtt_qos"        // the delivered QoS, 0, 1 or 2
	Retained  = "mqtt_retained"   // the RETAIN flag
	Duplicate = "mqtt_duplicate"  // the DUP flag
	MessageID = "mqtt_message_id" // the packet identifier (0 at QoS 0)
	Filter    = "mqtt_filter"     // the matching subscription, when the input runs without mappings
)

// Metadata keys of MQTT 5 PUBLISH properties, set by the mqtt input with
// protocol_version: 5, each only when the PUBLISH carries the property.
const (
	ContentType   = "mqtt_content_type"   // Content Type (string)
	ResponseTopic = "mqtt_response_topic" // Response Topic (string)
	// CorrelationData is the binary Correlation Data in standard base64
	// (RFC 4648 §4, padded), in the metadata and in the attribute alike.
	CorrelationData = "mqtt_correlation_data"
	PayloadFormat   = "mqtt_payload_format" // Payload Format Indicator: 0 bytes, 1 UTF-8 (int)
	// MessageExpiry is the Message Expiry Interval left when the message
	// entered the pipeline, in whole seconds (int, rounded up).
	MessageExpiry = "mqtt_message_expiry"
	// SubscriptionIDs is the Subscription Identifier of the PUBLISH,
	// decimal; several are comma-separated.
	SubscriptionIDs = "mqtt_subscription_ids"
	// UserPrefix starts the key of each User Property: mqtt_user_<key>,
	// the value a string. A key the PUBLISH repeats keeps its last value,
	// as Danube Edge does.
	UserPrefix = "mqtt_user_"
)

// Metadata keys of the routing decision, set by the mqtt input from the
// matching mapping and read by the danube output.
const (
	DanubeTopic      = "danube_topic"
	DanubePartitions = "danube_partitions"
	DanubeReliable   = "danube_reliable_dispatch"
)

// DanubePrefix starts every routing metadata key; the danube output does not
// send these as attributes unless told to.
const DanubePrefix = "danube_"

// Prefix starts every MQTT metadata key.
const Prefix = "mqtt_"

// Danube attribute names of the Rust connector (danube-source-mqtt 0.1–0.3)
// and of Danube Edge.
const (
	AttrTopic     = "mqtt.topic"
	AttrQoS       = "mqtt.qos"
	AttrRetain    = "mqtt.retain"
	AttrDup       = "mqtt.dup"
	AttrSource    = "source"
	AttrSourceVal = "mqtt"

	// MQTT 5 properties. Danube Edge writes the first two and the user
	// properties; the others follow the same style (Edge drops them).
	AttrContentType     = "mqtt.content_type"
	AttrResponseTopic   = "mqtt.response_topic"
	AttrCorrelationData = "mqtt.correlation_data"
	AttrPayloadFormat   = "mqtt.payload_format"
	AttrMessageExpiry   = "mqtt.message_expiry"
	AttrSubscriptionIDs = "mqtt.subscription_ids"
	AttrUserPrefix      = "mqtt.user." // + the user property's key, as Edge
)

// AttrPrefix starts the Danube attribute names of MQTT properties
// (mqtt.topic, mqtt.qos, …).
const AttrPrefix = "mqtt."

// connectorNames maps metadata keys to the attribute names existing Danube
// consumers read. Keys not listed keep their metadata name.
var connectorNames = map[string]string{
	Topic:     AttrTopic,
	QoS:       AttrQoS,
	Retained:  AttrRetain,
	Duplicate: AttrDup,

	ContentType:     AttrContentType,
	ResponseTopic:   AttrResponseTopic,
	CorrelationData: AttrCorrelationData,
	PayloadFormat:   AttrPayloadFormat,
	MessageExpiry:   AttrMessageExpiry,
	SubscriptionIDs: AttrSubscriptionIDs,
}

// Attribute returns the Danube attribute name for metadata key k under the
// connector naming: the Rust connector's and Danube Edge's names where they
// have one, k itself otherwise.
func Attribute(k string) string {
	if a, ok := connectorNames[k]; ok {
		return a
	}
	if key, ok := strings.CutPrefix(k, UserPrefix); ok {
		return AttrUserPrefix + key
	}
	return k
}

// UserKey returns the metadata key of the MQTT 5 user property key.
func UserKey(key string) string { return UserPrefix + key }

// IsMQTT reports whether k is one of the input's MQTT metadata keys.
func IsMQTT(k string) bool { return strings.HasPrefix(k, Prefix) }
