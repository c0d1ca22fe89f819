package danubeout

import (
	"fmt"
	"strings"

	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/benthos-danube/benthos-danube/internal/mqttmeta"
)

// fieldAttributeNames selects the names under which metadata is written as
// Danube attributes.
const fieldAttributeNames = "attribute_names"

// attrNames is the value of attribute_names.
type attrNames uint8

const (
	// attrConnector (the default): the mqtt input's metadata under the
	// names existing Danube consumers read (mqttmeta.Attribute), plus
	// source=mqtt for messages that came from MQTT.
	attrConnector attrNames = iota
	// attrMetadata: every key under its metadata name (benthos-danube
	// before 0.3 compatibility).
	attrMetadata
	// attrBoth: the connector names and the metadata names.
	attrBoth
)

const (
	attrNamesConnector = "connector"
	attrNamesMetadata  = "metadata"
	attrNamesBoth      = "both"
)

func attributeNamesField() *service.ConfigField {
	return service.NewStringAnnotatedEnumField(fieldAttributeNames, map[string]string{
		attrNamesConnector: "The names the Rust connector (danube-source-mqtt) and Danube Edge write: `mqtt_topic` is sent as `mqtt.topic`, `mqtt_qos` as `mqtt.qos`, `mqtt_retained` as `mqtt.retain`, `mqtt_duplicate` as `mqtt.dup`, and a message that came from MQTT (it has `mqtt_topic`) also gets `source: mqtt`. Keys without a connector name keep their metadata name (`mqtt_message_id`, your own keys). A key the pipeline set itself under a connector name (`meta \"mqtt.topic\" = ...`, `meta source = ...`) wins over the translated one.",
		attrNamesMetadata:  "Every key under its metadata name (`mqtt_topic`, `mqtt_qos`, `mqtt_retained`, `mqtt_duplicate`, …), no `source`: what benthos-danube wrote before this field existed.",
		attrNamesBoth:      "Both: the connector names (and `source`) and the metadata names, for moving consumers from one set to the other.",
	}).
		Description("The names under which metadata is written as Danube attributes. Bloblang always sees the metadata names (`@mqtt_topic`); this only renames what reaches Danube. `attributes` selects keys by either name.").
		Default(attrNamesConnector).
		Examples(attrNamesConnector, attrNamesMetadata, attrNamesBoth)
}

func parseAttrNames(conf *service.ParsedConfig) (attrNames, error) {
	s, err := conf.FieldString(fieldAttributeNames)
	if err != nil {
		return 0, err
	}
	switch s {
	case attrNamesConnector:
		return attrConnector, nil
	case attrNamesMetadata:
		return attrMetadata, nil
	case attrNamesBoth:
		return attrBoth, nil
	}
	return 0, fmt.Errorf("danube output: field %s: %q is not one of %s, %s, %s", fieldAttributeNames, s, attrNamesConnector, attrNamesMetadata, attrNamesBoth)
}

// sends reports whether metadata key k, written as attribute name, is sent:
// the attributes filter matches either name; without a filter everything
// but the routing metadata danube_* is.
func (o *output) sends(k, name string) bool {
	if o.attrs == nil {
		return !strings.HasPrefix(k, mqttmeta.DanubePrefix)
	}
	return o.attrs.Match(k) || (name != k && o.attrs.Match(name))
}

// attributes returns the Danube attributes of msg (nil when there are none).
func (o *output) attributes(msg *service.Message) map[string]string {
	size := 8
	if o.attrNames == attrBoth {
		size = 16
	}
	attrs := make(map[string]string, size)
	fromMQTT := false
	_ = msg.MetaWalkMut(func(k string, v any) error {
		if k == metaSeq {
			return nil
		}
		name := k
		if o.attrNames != attrMetadata {
			if k == mqttmeta.Topic {
				fromMQTT = true
			}
			name = mqttmeta.Attribute(k)
		}
		if name == k {
			if o.sends(k, k) {
				attrs[k] = metaString(msg, k, v) // set by the pipeline: wins
			}
			return nil
		}
		if !o.sends(k, name) {
			return nil
		}
		val := metaString(msg, k, v)
		if o.attrNames == attrBoth {
			attrs[k] = val
		}
		if _, set := attrs[name]; !set {
			attrs[name] = val
		}
		return nil
	})
	if fromMQTT {
		if _, set := attrs[mqttmeta.AttrSource]; !set && o.sends(mqttmeta.AttrSource, mqttmeta.AttrSource) {
			attrs[mqttmeta.AttrSource] = mqttmeta.AttrSourceVal
		}
	}
	if len(attrs) == 0 {
		return nil
	}
	return attrs
}
