package mqtttest

import (
	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// flowHook makes the broker send an MQTT 5 client its messages as it does a
// 3.1.1 client's, without holding any back for the client's Receive Maximum.
// mochi v2.7.9's flow control has two faults:
//
//   - It loses track of the messages it holds back. Once a client has as many
//     QoS 1/2 messages unacknowledged as its Receive Maximum allows, the next
//     ones wait; mochi sends one of them only after a packet from the client,
//     and removes it from the client's in-flight messages as it sends it. Its
//     acknowledgement then releases nothing, so the quota shrinks until
//     nothing more is sent (a subscriber with Receive Maximum 10, fed 6,000
//     messages, got 20), and the message is not resent if the connection
//     drops.
//   - It can deadlock a client's in-flight messages. After each packet from a
//     client with quota left, mochi looks for a held-back message
//     (Inflight.NextImmediate): it read-locks the client's in-flight map, then
//     read-locks it again inside (Inflight.GetAll). A PUBLISH routed to the
//     client in between (Inflight.Set, the write lock) makes the second read
//     lock wait for the writer, and the writer for the first read lock: the
//     client, the publisher and mochi's event loop stop for good, and Close
//     waits for ever. This hung TestE2EMQTT5 on mochi, in CI and about one
//     run in fifteen under load.
//
// Without a send quota a client has nothing held back, and mochi takes
// neither path. Clients that apply back-pressure, such as the mqtt input,
// still hold a flood back: they stop reading, and TCP keeps it in the broker.
type flowHook struct {
	mochi.HookBase
}

func (*flowHook) ID() string { return "mqtttest-flow" }

func (*flowHook) Provides(b byte) bool { return b == mochi.OnConnect }

// OnConnect runs after mochi read the client's CONNECT properties and before
// it sets the session up; a session taken over also gets the quota of
// Props.ReceiveMaximum.
func (*flowHook) OnConnect(cl *mochi.Client, _ packets.Packet) error {
	cl.Properties.Props.ReceiveMaximum = 0
	cl.State.Inflight.ResetSendQuota(0)
	return nil
}
