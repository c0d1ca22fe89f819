package mqtttest

import (
	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/eclipse/paho.mqtt.golang/packets"
)

// NewPahoStore returns a message store for paho.mqtt.golang test clients
// that reconnect with QoS 1/2 messages in flight (ClientOptions.SetStore).
//
// It is paho's memory store, except that it keeps its own copy of each
// PUBLISH and hands out a fresh copy on every Get. With paho's own store,
// paho 1.5.1 sets the DUP flag, when it resends after a reconnect, on the very
// packet its writer may still be sending: the race detector reports it in
// paho (upstream issue #703), and a test that restarts a broker fails for it.
// The copy on Put is taken in Publish, before the packet goes to the writer.
func NewPahoStore() paho.Store { return copyingStore{paho.NewMemoryStore()} }

type copyingStore struct{ paho.Store }

func (s copyingStore) Put(key string, m packets.ControlPacket) { s.Store.Put(key, clonePublish(m)) }

func (s copyingStore) Get(key string) packets.ControlPacket { return clonePublish(s.Store.Get(key)) }

// clonePublish copies a PUBLISH (its payload is shared: nobody writes it);
// other packets are returned as they are.
func clonePublish(m packets.ControlPacket) packets.ControlPacket {
	if p, ok := m.(*packets.PublishPacket); ok {
		c := *p
		return &c
	}
	return m
}
