package danube

import (
	"math"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	pb "github.com/benthos-danube/benthos-danube/internal/danubepb"
)

// TestSizeBound: sizeBound never undercounts proto.Size, so the cheap check
// in checkSize lets through only messages that the exact one lets through.
func TestSizeBound(t *testing.T) {
	big := strings.Repeat("x", 70000) // lengths past every varint step we meet
	key := "sensors/d1"
	id, ver := uint64(math.MaxUint64), uint32(math.MaxUint32)
	for _, tc := range []struct {
		name string
		msg  *pb.StreamMessage
	}{
		{"empty", &pb.StreamMessage{}},
		{"typical", &pb.StreamMessage{RequestId: 1 << 40, Payload: []byte(big[:90]), PublishTime: 1 << 62, ProducerName: "benthos-danube-default-t",
			MsgId:      &pb.MsgID{ProducerId: 77, TopicName: "/default/t", BrokerAddr: "http://127.0.0.1:6650"},
			Attributes: map[string]string{"mqtt.topic": key, "mqtt.qos": "1", "mqtt.retain": "false", "mqtt.dup": "false", "mqtt_message_id": "65535", "source": "mqtt"},
			RoutingKey: &key}},
		{"maximal scalars", &pb.StreamMessage{RequestId: math.MaxUint64, PublishTime: math.MaxUint64, SchemaId: &id, SchemaVersion: &ver,
			MsgId: &pb.MsgID{ProducerId: math.MaxUint64, TopicOffset: math.MaxUint64}}},
		{"long fields", &pb.StreamMessage{Payload: []byte(big), ProducerName: big, SubscriptionName: big, RoutingKey: &big,
			MsgId: &pb.MsgID{TopicName: big, BrokerAddr: big}, Attributes: map[string]string{big: big, "": "", "k": big}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if b, n := sizeBound(tc.msg), proto.Size(tc.msg); b < n {
				t.Fatalf("sizeBound %d < proto.Size %d", b, n)
			}
		})
	}
}
