package mqttmeta

import "testing"

func TestAttribute(t *testing.T) {
	for k, want := range map[string]string{
		Topic:        AttrTopic,
		QoS:          AttrQoS,
		Retained:     AttrRetain,
		Duplicate:    AttrDup,
		MessageID:    MessageID, // no connector name: unchanged
		DanubeTopic:  DanubeTopic,
		"device_id":  "device_id",
		"mqtt.topic": "mqtt.topic", // already an attribute name
	} {
		if got := Attribute(k); got != want {
			t.Errorf("Attribute(%q) = %q, want %q", k, got, want)
		}
	}
}
