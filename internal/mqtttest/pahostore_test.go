package mqtttest_test

import (
	"testing"

	"github.com/eclipse/paho.mqtt.golang/packets"

	"github.com/benthos-danube/benthos-danube/internal/mqtttest"
)

// TestPahoStoreCopiesPublishes: what paho does to a PUBLISH it got from the
// store (it sets DUP before resending) touches neither the packet it stored
// nor a later Get's; other packets pass through.
func TestPahoStoreCopiesPublishes(t *testing.T) {
	s := mqtttest.NewPahoStore()
	s.Open()
	t.Cleanup(s.Close)
	pub := packets.NewControlPacket(packets.Publish).(*packets.PublishPacket)
	pub.Qos, pub.MessageID, pub.TopicName, pub.Payload = 1, 7, "a/b", []byte("x")
	s.Put("o.7", pub)
	first := s.Get("o.7").(*packets.PublishPacket)
	first.Dup = true
	second := s.Get("o.7").(*packets.PublishPacket)
	switch {
	case first == pub || second == pub || first == second:
		t.Fatal("Get handed out the stored packet, or the same copy twice")
	case pub.Dup || second.Dup:
		t.Fatal("setting DUP on one copy changed another")
	case second.TopicName != "a/b" || second.MessageID != 7 || string(second.Payload) != "x":
		t.Fatalf("the copy differs: %+v", second)
	}
	rel := packets.NewControlPacket(packets.Pubrel).(*packets.PubrelPacket)
	rel.MessageID = 8
	s.Put("o.8", rel)
	if got := s.Get("o.8"); got != rel {
		t.Fatalf("a PUBREL came back as %v", got)
	}
	if n := len(s.All()); n != 2 {
		t.Fatalf("All lists %d keys, want 2", n)
	}
}
