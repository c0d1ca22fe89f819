package mqttout

import (
	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/benthos-danube/benthos-danube/internal/mqttmeta"
)

// fromMQTT reports whether msg came from MQTT: it carries the Rust
// connector's `source: mqtt` attribute, or the MQTT topic it was published
// on (`mqtt_topic` from the mqtt input, or as a Danube attribute through the
// danube input; `mqtt.topic` under the connector's naming). The loop guard
// (skip_mqtt_origin) does not publish such a message.
func fromMQTT(msg *service.Message) bool {
	if v, ok := msg.MetaGet(mqttmeta.AttrSource); ok && v == mqttmeta.AttrSourceVal {
		return true
	}
	if _, ok := msg.MetaGetMut(mqttmeta.Topic); ok {
		return true
	}
	_, ok := msg.MetaGetMut(mqttmeta.AttrTopic)
	return ok
}
