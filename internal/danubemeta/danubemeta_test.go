package danubemeta_test

import (
	"strings"
	"testing"

	"github.com/benthos-danube/benthos-danube/internal/danubemeta"
	"github.com/benthos-danube/benthos-danube/internal/mqttmeta"
)

func TestKeys(t *testing.T) {
	seen := map[string]bool{}
	for _, k := range danubemeta.Keys {
		if !strings.HasPrefix(k, danubemeta.Prefix) || seen[k] || !danubemeta.IsKey(k) {
			t.Errorf("key %q: prefix, unique and IsKey expected", k)
		}
		seen[k] = true
	}
	for _, k := range []string{"device_id", "danube", mqttmeta.DanubePartitions, mqttmeta.DanubeReliable, "mqtt_topic"} {
		if danubemeta.IsKey(k) {
			t.Errorf("IsKey(%q) = true", k)
		}
	}
	if danubemeta.Topic != mqttmeta.DanubeTopic {
		t.Error("danube_topic must stay the danube output's routing key")
	}
}
