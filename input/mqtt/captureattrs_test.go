package mqtt

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"
)

func TestCaptureAttributesConfig(t *testing.T) {
	const base = "urls: [tcp://x:1883]\ntopic_mappings:\n  - mqtt_topic: \"sites/{site}/devices/{device}/+\"\n    danube_topic: /iot/telemetry\n    attributes: "
	cases := []struct{ attrs, want string }{
		{`{device_id: "{device}", site: "{site}"}`, ""},
		{`{device_id: "{dev}"}`, `topic_mappings[0].attributes: attribute "device_id": value "{dev}" must be one named placeholder of mqtt_topic, e.g. "{site}" (mqtt_topic binds {site}, {device})`},
		{`{device_id: "dev-{device}"}`, `value "dev-{device}" must be one named placeholder`},
		{`{device_id: "+"}`, `value "+" must be one named placeholder`},
		{`{mqtt_device: "{device}"}`, `attribute name "mqtt_device" is reserved`},
		{`{mqtt.device: "{device}"}`, `attribute name "mqtt.device" is reserved`},
		{`{danube_topic: "{device}"}`, `attribute name "danube_topic" is reserved`},
		{`{dead_letter_reason: "{device}"}`, `attribute name "dead_letter_reason" is reserved`},
		{`{source: "{site}"}`, `attribute name "source" is reserved`},
	}
	for _, c := range cases {
		yaml := base + c.attrs + "\n"
		lints := lintInput(t, yaml)
		cfg, err := startUp(t, yaml)
		if c.want == "" {
			if err != nil || len(lints) > 0 {
				t.Errorf("%s: start-up %v, lint %q", c.attrs, err, lints)
				continue
			}
			got := cfg.mappings[0].attrs
			if len(got) != 2 || got[0] != (captureAttr{"device_id", 1}) || got[1] != (captureAttr{"site", 0}) {
				t.Errorf("%s: parsed %+v", c.attrs, got)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: start-up error %v, want %q", c.attrs, err, c.want)
		}
		if len(lints) != 1 || !strings.Contains(lints[0], c.want) {
			t.Errorf("%s: lint %q, want %q", c.attrs, lints, c.want)
		}
	}
	// No placeholders at all.
	_, err := startUp(t, "urls: [tcp://x:1883]\ntopic_mappings: [{mqtt_topic: a/+, danube_topic: /a/b, attributes: {x: \"{x}\"}}]\n")
	if err == nil || !strings.Contains(err.Error(), "mqtt_topic has no named placeholders") {
		t.Errorf("got %v", err)
	}
}

// TestCaptureAttributes: a mapping's attributes are set as metadata on the
// messages it routes, only on those, with the raw topic level.
func TestCaptureAttributes(t *testing.T) {
	for _, bc := range testBrokers(t, false) {
		t.Run(bc.name, func(t *testing.T) {
			id := runID(t)
			rec := newReceived()
			ts := startStream(t, fmt.Sprintf(`
urls: [ %s ]
client_id: %s-bridge
topic_mappings:
  - mqtt_topic: %[2]s/sites/{site}/devices/{device}/telemetry
    danube_topic: /iot/{site}_telemetry
    attributes: { device_id: "{device}", site_name: "{site}" }
  - mqtt_topic: %[2]s/other/{device}
    danube_topic: /iot/other
`, bc.url, id), func(_ context.Context, m *service.Message) error {
				rec.add(m)
				return nil
			})
			ts.waitConnected(t)
			pub := newPublisher(t, bc.url, id+"-pub", true)
			pub.publishWait(t, id+"/sites/eu1/devices/dev.7/telemetry", 1, "a") // '.' is fine in an attribute
			pub.publishWait(t, id+"/other/dev8", 1, "b")
			waitFor(t, 10*time.Second, "two messages", func() bool { return rec.unique() >= 2 })

			a := rec.get("a")[0]
			if got := metaAny(t, a, "device_id"); got != "dev.7" {
				t.Errorf("device_id = %v", got)
			}
			if got := metaAny(t, a, "site_name"); got != "eu1" {
				t.Errorf("site_name = %v", got)
			}
			if got := metaAny(t, a, "danube_topic"); got != "/iot/eu1_telemetry" {
				t.Errorf("danube_topic = %v", got)
			}
			b := rec.get("b")[0]
			if got := metaAny(t, b, "device_id"); got != nil {
				t.Errorf("a mapping without attributes set device_id = %v", got)
			}
		})
	}
}
