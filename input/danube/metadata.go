package danubein

import (
	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/benthos-danube/benthos-danube/internal/danube"
	"github.com/benthos-danube/benthos-danube/internal/danubemeta"
)

// toMessage is the Benthos message of a Danube message: the payload as is,
// the attributes under their own names, then the danubemeta keys (which
// win over an attribute of the same name).
func toMessage(m *danube.ReceivedMessage, subscription string) *service.Message {
	msg := service.NewMessage(m.Payload)
	for k, v := range m.Attributes {
		msg.MetaSetMut(k, v)
	}
	msg.MetaSetMut(danubemeta.Topic, m.BaseTopic)
	if m.Partition >= 0 {
		msg.MetaSetMut(danubemeta.Partition, m.Partition)
	}
	msg.MetaSetMut(danubemeta.PartitionTopic, m.Topic)
	msg.MetaSetMut(danubemeta.ProducerName, m.ProducerName)
	msg.MetaSetMut(danubemeta.ProducerID, m.ProducerID)
	msg.MetaSetMut(danubemeta.Offset, m.Offset)
	msg.MetaSetMut(danubemeta.PublishTime, m.PublishTime.UTC())
	if m.HasRoutingKey {
		msg.MetaSetMut(danubemeta.RoutingKey, m.RoutingKey)
	}
	if m.SchemaID != nil {
		msg.MetaSetMut(danubemeta.SchemaID, *m.SchemaID)
	}
	if m.SchemaVersion != nil {
		msg.MetaSetMut(danubemeta.SchemaVersion, *m.SchemaVersion)
	}
	msg.MetaSetMut(danubemeta.Subscription, subscription)
	return msg
}
