package mqtt

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/benthos-danube/benthos-danube/internal/mqttmeta"
)

// fieldMapAttributes is the topic_mappings field that sets named
// placeholder values as metadata, and so as Danube attributes (Danube
// Edge's extract_attributes).
const fieldMapAttributes = "attributes"

// captureAttr is one entry of a mapping's attributes: the metadata key and
// the index of the placeholder whose value it gets.
type captureAttr struct {
	key string
	cap int
}

// parseCaptureAttrs checks a mapping's attributes against the placeholder
// names of its filter. Each value must be one placeholder, "{name}". Keys
// the bridge itself sets or reads (mqtt_*, mqtt.*, danube_*, dead_letter_*,
// source) are refused: the value would be overwritten or change routing.
func parseCaptureAttrs(attrs map[string]string, names []string) ([]captureAttr, error) {
	if len(attrs) == 0 {
		return nil, nil
	}
	var out []captureAttr
	var errs []error
	for key, v := range attrs {
		switch {
		case key == "":
			errs = append(errs, errors.New("an attribute name is empty"))
			continue
		case strings.HasPrefix(key, mqttmeta.Prefix), strings.HasPrefix(key, mqttmeta.AttrPrefix),
			strings.HasPrefix(key, mqttmeta.DanubePrefix), strings.HasPrefix(key, "dead_letter_"),
			key == mqttmeta.AttrSource:
			errs = append(errs, fmt.Errorf("attribute name %q is reserved (mqtt_*, mqtt.*, danube_*, dead_letter_* and source are set by the bridge); choose another name", key))
			continue
		}
		name, ok := strings.CutPrefix(v, "{")
		if ok {
			name, ok = strings.CutSuffix(name, "}")
		}
		idx := -1
		for i, n := range names {
			if ok && n == name {
				idx = i
			}
		}
		if idx < 0 {
			bound := "mqtt_topic has no named placeholders"
			if len(names) > 0 {
				bound = "mqtt_topic binds {" + strings.Join(names, "}, {") + "}"
			}
			errs = append(errs, fmt.Errorf("attribute %q: value %q must be one named placeholder of mqtt_topic, e.g. \"{%s}\" (%s)", key, v, firstOr(names, "device"), bound))
			continue
		}
		out = append(out, captureAttr{key: key, cap: idx})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].key < out[j].key })
	sort.Slice(errs, func(i, j int) bool { return errs[i].Error() < errs[j].Error() })
	return out, errors.Join(errs...)
}

func firstOr(names []string, def string) string {
	if len(names) > 0 {
		return names[0]
	}
	return def
}
