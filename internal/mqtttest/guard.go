package mqtttest

import (
	"bytes"
	"sync"
	"time"

	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// sessionGuard closes a race in mochi v2.7.9's session take-over that loses
// QoS 1/2 messages of persistent sessions. A PUBLISH is routed by looking the
// subscriber up in s.Clients and then adding the message to that client's
// in-flight map; a reconnecting client takes the session over by cloning the
// old client object's in-flight map, clearing it, and replacing the object in
// s.Clients (inheritClientSession). A message routed to the old object after
// the clone (it was looked up before the replacement) ends in the orphaned
// object's in-flight map: never sent, never stored, lost. It shows most after
// a broker restart, when publishers reconnect first and route to the restored
// offline session while the subscriber takes it over.
//
// The guard makes routing and take-over mutually exclusive: routing a PUBLISH
// (OnPublish .. OnPacketProcessed) holds a read lock, establishing a session
// (OnSessionEstablish .. the CONNACK, after the take-over) the write lock.
type sessionGuard struct {
	mochi.HookBase
	rw      sync.RWMutex
	mu      sync.Mutex
	readers map[*mochi.Client]bool
	writer  *mochi.Client
	release chan struct{}
}

func newSessionGuard() *sessionGuard { return &sessionGuard{readers: map[*mochi.Client]bool{}} }

func (g *sessionGuard) ID() string { return "mqtttest-session-guard" }

func (g *sessionGuard) Provides(b byte) bool {
	return bytes.Contains([]byte{mochi.OnPublish, mochi.OnPacketProcessed, mochi.OnSessionEstablish, mochi.OnSessionEstablished, mochi.OnPacketEncode}, []byte{b})
}

func (g *sessionGuard) OnPublish(cl *mochi.Client, pk packets.Packet) (packets.Packet, error) {
	g.rw.RLock()
	g.mu.Lock()
	g.readers[cl] = true
	g.mu.Unlock()
	return pk, nil
}

func (g *sessionGuard) OnPacketProcessed(cl *mochi.Client, pk packets.Packet, _ error) {
	if pk.FixedHeader.Type != packets.Publish {
		return
	}
	g.mu.Lock()
	held := g.readers[cl]
	delete(g.readers, cl)
	g.mu.Unlock()
	if held {
		g.rw.RUnlock()
	}
}

func (g *sessionGuard) OnSessionEstablish(cl *mochi.Client, _ packets.Packet) {
	g.rw.Lock()
	done := make(chan struct{})
	g.mu.Lock()
	g.writer, g.release = cl, done
	g.mu.Unlock()
	// Safety net: a connection that fails before its CONNACK is encoded
	// must not keep the broker locked.
	go func() {
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			g.unlock(cl)
		}
	}()
}

func (g *sessionGuard) OnPacketEncode(cl *mochi.Client, pk packets.Packet) packets.Packet {
	if pk.FixedHeader.Type == packets.Connack {
		g.unlock(cl)
	}
	return pk
}

func (g *sessionGuard) OnSessionEstablished(cl *mochi.Client, _ packets.Packet) { g.unlock(cl) }

func (g *sessionGuard) unlock(cl *mochi.Client) {
	g.mu.Lock()
	if g.writer != cl {
		g.mu.Unlock()
		return
	}
	close(g.release)
	g.writer, g.release = nil, nil
	g.mu.Unlock()
	g.rw.Unlock()
}
