// Package danubemeta is the one place for the Benthos metadata keys the
// danube input sets on every message it reads from Danube, and that the
// components downstream (the mqtt output, Bloblang mappings) read.
//
// Besides these keys, the input copies every Danube attribute of the message
// to metadata under the attribute's own name (a string). The danube_* keys
// are set after the attributes, so an attribute that happens to be called
// like one of them is overwritten by the broker's value. IsKey tells the two
// apart: an output that turns metadata back into attributes or MQTT 5 user
// properties sends the keys for which IsKey is false.
package danubemeta

import (
	"strings"

	"github.com/benthos-danube/benthos-danube/internal/mqttmeta"
)

// Metadata keys set by the danube input, with their Go types (MetaSetMut).
const (
	// Topic is the topic as configured in the input (for a partitioned
	// topic its base name, not the partition's), a string. It is the key
	// the danube output reads as its default topic (mqttmeta.DanubeTopic):
	// a pipeline from a danube input to a danube output must set the
	// output's topic, or the message goes back where it came from.
	Topic = mqttmeta.DanubeTopic
	// Partition is the partition number N (int) of a partitioned topic's
	// partition "<topic>-part-N"; not set for a topic without partitions.
	Partition = "danube_partition"
	// PartitionTopic is the exact topic or partition name the message was
	// delivered on ("/ns/t-part-2"), a string.
	PartitionTopic = "danube_partition_topic"
	// ProducerName is the name of the producer that sent the message, a
	// string.
	ProducerName = "danube_producer_name"
	// ProducerID is the broker-assigned producer id (msg_id.producer_id),
	// a uint64.
	ProducerID = "danube_producer_id"
	// Offset is the message's topic offset (uint64). Reliable topics
	// number messages 0, 1, 2 … per topic or partition; non-reliable topics
	// always give 0.
	Offset = "danube_offset"
	// PublishTime is the producer's publish time, a time.Time (UTC,
	// millisecond precision); meta("danube_publish_time") gives RFC 3339.
	PublishTime = "danube_publish_time"
	// RoutingKey is the message's routing key, a string; not set when the
	// producer sent none.
	RoutingKey = "danube_routing_key"
	// SchemaID is the schema id (uint64) the producer stamped; not set
	// without a schema.
	SchemaID = "danube_schema_id"
	// SchemaVersion is the schema version (uint32) the producer stamped;
	// not set without a schema.
	SchemaVersion = "danube_schema_version"
	// Subscription is the input's subscription name, a string.
	Subscription = "danube_subscription"
)

// Keys lists every key above.
var Keys = []string{Topic, Partition, PartitionTopic, ProducerName, ProducerID, Offset, PublishTime, RoutingKey, SchemaID, SchemaVersion, Subscription}

// Prefix starts every key above (and the danube output's routing keys,
// mqttmeta.DanubePrefix).
const Prefix = mqttmeta.DanubePrefix

// IsKey reports whether k is one of the keys the danube input sets (as
// opposed to a Danube attribute copied under its own name).
func IsKey(k string) bool {
	if !strings.HasPrefix(k, Prefix) {
		return false
	}
	for _, x := range Keys {
		if x == k {
			return true
		}
	}
	return false
}
