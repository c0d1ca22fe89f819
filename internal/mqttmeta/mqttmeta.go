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
}

// Attribute returns the Danube attribute name for metadata key k under the
// connector naming: the Rust connector's and Danube Edge's names where they
// have one, k itself otherwise.
func Attribute(k string) string {
	if a, ok := connectorNames[k]; ok {
		return a
	}
	return k
}

// IsMQTT reports whether k is one of the input's MQTT metadata keys.
func IsMQTT(k string) bool { return strings.HasPrefix(k, Prefix) }
