// Package boltstore keeps an mqtttest broker's sessions in a bbolt file, so
// that they survive a stop and a start: mochi's own bolt storage hook, with
// two repairs of what mochi v2.7.9 restores from it (see store). It is apart
// from mqtttest so that only tests link bbolt.
package boltstore

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/storage"
	"github.com/mochi-mqtt/server/v2/hooks/storage/bolt"
	"github.com/mochi-mqtt/server/v2/packets"
	"go.etcd.io/bbolt"

	"github.com/benthos-danube/benthos-danube/internal/mqtttest"
)

// Option keeps the broker's sessions (clients, subscriptions, in-flight
// messages) in the bbolt file at path, opened afresh at every start.
func Option(path string) mqtttest.Option {
	return mqtttest.WithHookFunc(func() (mochi.Hook, any) {
		// NoSync: the file outlives the server, not the machine.
		return store{new(bolt.Hook)}, &bolt.Options{Path: path, Options: &bbolt.Options{Timeout: 5 * time.Second, NoSync: true}}
	})
}

// store is mochi's own bbolt storage hook, which keeps the broker's
// sessions (clients, subscriptions, in-flight messages) in a file that
// survives a server stop and start, with two repairs of what mochi v2.7.9
// restores from it:
//
//   - Its bolt hook does not save the packet id of an in-flight message
//     (OnQosPublish leaves storage.Message.PacketID unset, unlike the badger
//     and pebble hooks), so every restored message of a client would get
//     packet id 0 and overwrite the others in the client's in-flight map: all
//     but one lost. The id is the suffix of the record's key
//     ("IFM_<client>:<id>"), and is restored from there.
//   - For an incoming QoS 1 PUBLISH, mochi stores the PUBACK as in-flight,
//     writes it, and only when the write succeeded deletes it and routes the
//     message (processPublish). A stored PUBACK therefore means the message
//     was never routed: the write failed because the server was closing.
//     Restored, mochi would send that PUBACK to the reconnecting publisher
//     (ResendInflightMessages), which then forgets a message no subscriber
//     ever got. Such records are not restored, so the publisher's session
//     resends the PUBLISH (DUP) instead, as MQTT 3.1.1 §4.4 intends.
type store struct {
	*bolt.Hook
}

func (s store) StoredInflightMessages() ([]storage.Message, error) {
	v, err := s.Hook.StoredInflightMessages()
	if err != nil {
		return nil, fmt.Errorf("bolt in-flight messages: %w", err)
	}
	out := v[:0]
	for _, m := range v {
		if m.FixedHeader.Type == packets.Puback {
			continue
		}
		if m.PacketID == 0 {
			j := strings.LastIndexByte(m.ID, ':')
			id, err := strconv.ParseUint(m.ID[j+1:], 10, 16)
			if j < 0 || err != nil {
				return nil, fmt.Errorf("in-flight record %q has no packet id", m.ID)
			}
			m.PacketID = uint16(id)
		}
		out = append(out, m)
	}
	return out, nil
}
