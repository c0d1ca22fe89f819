package mqttout

import (
	"encoding/base64"
	"fmt"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/benthos-danube/benthos-danube/internal/danubemeta"
	"github.com/benthos-danube/benthos-danube/internal/mqttmeta"
)

// MQTT 5 PUBLISH properties from a message's metadata (protocol_version: 5).
//
//   - Content Type, Response Topic and Correlation Data come from the
//     attributes Danube Edge and the uplink write (mqtt.content_type,
//     mqtt.response_topic, mqtt.correlation_data in base64), or from the
//     mqtt input's metadata (mqtt_content_type, …) in an MQTT-to-MQTT
//     pipeline; the attribute name wins when both are set.
//   - User properties: every other metadata key, its value as a string,
//     sorted by key, except the keys that are not the message's own data:
//     the danube input's keys (danubemeta.IsKey), the routing keys danube_*,
//     dead_letter_*, the ordering stamp mqtt_output_seq, and the MQTT keys of
//     the message's previous hop (mqtt_* and mqtt.*, such as mqtt.topic or
//     mqtt_qos). A user property that came up through the bridge keeps its
//     key on the way down: mqtt.user.<k> (Danube Edge's attribute) and
//     mqtt_user_<k> (the mqtt input's metadata) become the user property k,
//     and win over a plain metadata key k.
//   - user_properties, a metadata filter, narrows the keys sent; it is
//     matched against the metadata key (mqtt.user.k, not k).

// properties5 are the MQTT 5 properties of one publication.
type properties5 struct {
	contentType     string
	responseTopic   string
	correlationData []byte
	user            []userProperty
}

type userProperty struct{ key, value string }

// maxMQTTString is the longest MQTT UTF-8 string (MQTT 5 §1.5.4).
const maxMQTTString = 65535

// validString reports why s cannot be an MQTT UTF-8 string.
func validString(s string) error {
	switch {
	case len(s) > maxMQTTString:
		return fmt.Errorf("is %d bytes, over 65535", len(s))
	case !utf8.ValidString(s):
		return fmt.Errorf("is not valid UTF-8")
	case strings.ContainsRune(s, 0):
		return fmt.Errorf("contains U+0000")
	}
	return nil
}

// excludedUserKey reports whether metadata key k is never a user property.
func excludedUserKey(k string) bool {
	return k == metaSeq ||
		danubemeta.IsKey(k) ||
		strings.HasPrefix(k, mqttmeta.DanubePrefix) ||
		strings.HasPrefix(k, "dead_letter_") ||
		strings.HasPrefix(k, mqttmeta.Prefix) ||
		strings.HasPrefix(k, mqttmeta.AttrPrefix)
}

// buildProperties reads the MQTT 5 properties of msg; filter (nil: all)
// selects the user properties. An error makes the message impossible to
// publish (a value that is no MQTT string, correlation data not base64).
func buildProperties(msg *service.Message, filter *service.MetadataFilter) (*properties5, error) {
	p := &properties5{}
	get := func(attr, meta string) (string, bool) {
		if v, ok := msg.MetaGet(attr); ok {
			return v, true
		}
		return msg.MetaGet(meta)
	}
	if v, ok := get(mqttmeta.AttrContentType, mqttmeta.ContentType); ok {
		if err := validString(v); err != nil {
			return nil, fmt.Errorf("content type %w", err)
		}
		p.contentType = v
	}
	if v, ok := get(mqttmeta.AttrResponseTopic, mqttmeta.ResponseTopic); ok {
		if err := validTopic(v); err != nil {
			return nil, fmt.Errorf("response topic %q: %w", v, err)
		}
		p.responseTopic = v
	}
	if v, ok := get(mqttmeta.AttrCorrelationData, mqttmeta.CorrelationData); ok {
		b, err := base64.StdEncoding.DecodeString(v)
		if err != nil {
			return nil, fmt.Errorf("correlation data (%s) is not standard base64: %w", mqttmeta.AttrCorrelationData, err)
		}
		p.correlationData = b
	}
	// Priority of a key's sources: 2 mqtt.user.k, 1 mqtt_user_k, 0 k.
	vals := map[string]string{}
	prio := map[string]int{}
	_ = msg.MetaWalk(func(k, v string) error {
		rank := 0
		key := k
		if u, ok := strings.CutPrefix(k, mqttmeta.AttrUserPrefix); ok {
			key, rank = u, 2
		} else if u, ok := strings.CutPrefix(k, mqttmeta.UserPrefix); ok {
			key, rank = u, 1
		} else if excludedUserKey(k) {
			return nil
		}
		if filter != nil && !filter.Match(k) {
			return nil
		}
		if r, seen := prio[key]; seen && r > rank {
			return nil
		}
		vals[key], prio[key] = v, rank
		return nil
	})
	keys := make([]string, 0, len(vals))
	for k := range vals {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if err := validString(k); err != nil {
			return nil, fmt.Errorf("user property key %q %w", k, err)
		}
		if err := validString(vals[k]); err != nil {
			return nil, fmt.Errorf("user property %q: the value %w", k, err)
		}
		p.user = append(p.user, userProperty{k, vals[k]})
	}
	return p, nil
}
