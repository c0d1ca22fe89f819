package mqtt

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/storage"
	"github.com/mochi-mqtt/server/v2/hooks/storage/bolt"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"
	"go.etcd.io/bbolt"
)

// testBroker is an embedded mochi MQTT broker on 127.0.0.1, restartable on
// the same port, optionally with sessions kept across restarts by mochi's bolt
// storage hook (boltStore) in a file, and with sessionGuard closing mochi's
// session take-over race.
type testBroker struct {
	t     testing.TB
	addr  string
	store string // bolt database file; "": sessions die with the server
	obs   *observer
	mu    sync.Mutex
	srv   *mochi.Server
}

func newTestBroker(t testing.TB, persistent bool) *testBroker {
	t.Helper()
	b := &testBroker{t: t, addr: "127.0.0.1:0", obs: newObserver()}
	if persistent {
		b.store = filepath.Join(t.TempDir(), "mochi.db")
	}
	b.start()
	t.Cleanup(b.stop)
	return b
}

func (b *testBroker) url() string { return "tcp://" + b.addr }

func (b *testBroker) start() {
	b.t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	srv := mochi.New(&mochi.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err := srv.AddHook(b.obs, nil); err != nil {
		b.t.Fatal(err)
	}
	if err := srv.AddHook(newSessionGuard(), nil); err != nil {
		b.t.Fatal(err)
	}
	if b.store != "" {
		// NoSync: the file outlives the server, not the machine.
		err := srv.AddHook(boltStore{new(bolt.Hook)}, &bolt.Options{Path: b.store, Options: &bbolt.Options{Timeout: 5 * time.Second, NoSync: true}})
		if err != nil {
			b.t.Fatalf("mochi bolt storage: %v", err)
		}
	}
	l := listeners.NewTCP(listeners.Config{ID: "t", Address: b.addr})
	var err error
	for i := 0; i < 50; i++ { // the port may linger briefly after a stop
		if err = srv.AddListener(l); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
		l = listeners.NewTCP(listeners.Config{ID: "t", Address: b.addr})
	}
	if err != nil {
		b.t.Fatalf("mochi listen on %s: %v", b.addr, err)
	}
	b.addr = l.Address()
	if err := srv.Serve(); err != nil {
		b.t.Fatalf("mochi serve: %v", err)
	}
	b.srv = srv
}

func (b *testBroker) stop() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.srv != nil {
		_ = b.srv.Close()
		b.srv = nil
	}
}

// clientInflight returns the broker's in-flight count for a client id.
func (b *testBroker) clientInflight(id string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.srv == nil {
		return -1
	}
	cl, ok := b.srv.Clients.Get(id)
	if !ok {
		return -1
	}
	return cl.State.Inflight.Len()
}

// observer records, per client, the PUBACK/PUBREC packet ids a client sent
// and the subscriptions to refuse or credentials to reject.
type observer struct {
	mochi.HookBase
	mu       sync.Mutex
	acks     map[string]map[uint16]int // client -> packet id -> PUBACK/PUBREC count
	ackTotal map[string]int
	denySub  map[string]bool
	badUser  string
	pubs     map[string]int // payloads the broker accepted from publishers
	routes   map[string][]route
	connects map[string]packets.Packet // client -> its last CONNECT
	subs     map[string]packets.Packet // client -> its last SUBSCRIBE
}

// route is one QoS>0 PUBLISH the broker queued for a subscriber: which
// client object (a taken-over one is orphaned) and packet id, for diagnostics.
type route struct {
	cl  *mochi.Client
	pid uint16
	at  time.Time
}

func newObserver() *observer {
	return &observer{acks: map[string]map[uint16]int{}, ackTotal: map[string]int{}, denySub: map[string]bool{}, pubs: map[string]int{}, routes: map[string][]route{}, connects: map[string]packets.Packet{}, subs: map[string]packets.Packet{}}
}

func (o *observer) ID() string { return "test-observer" }

func (o *observer) Provides(b byte) bool {
	return bytes.Contains([]byte{mochi.OnPacketRead, mochi.OnACLCheck, mochi.OnConnectAuthenticate, mochi.OnPublished, mochi.OnQosPublish}, []byte{b})
}

func (o *observer) OnConnectAuthenticate(_ *mochi.Client, pk packets.Packet) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.connects[pk.Connect.ClientIdentifier] = pk
	return o.badUser == "" || string(pk.Connect.Username) != o.badUser
}

func (o *observer) OnACLCheck(_ *mochi.Client, topic string, write bool) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return write || !o.denySub[topic]
}

func (o *observer) OnPacketRead(cl *mochi.Client, pk packets.Packet) (packets.Packet, error) {
	if pk.FixedHeader.Type == packets.Subscribe {
		o.mu.Lock()
		o.subs[cl.ID] = pk
		o.mu.Unlock()
	}
	if t := pk.FixedHeader.Type; t == packets.Puback || t == packets.Pubrec {
		o.mu.Lock()
		m := o.acks[cl.ID]
		if m == nil {
			m = map[uint16]int{}
			o.acks[cl.ID] = m
		}
		m[pk.PacketID]++
		o.ackTotal[cl.ID]++
		o.mu.Unlock()
	}
	return pk, nil
}

func (o *observer) OnQosPublish(cl *mochi.Client, pk packets.Packet, _ int64, _ int) {
	if pk.FixedHeader.Type != packets.Publish {
		return
	}
	o.mu.Lock()
	o.routes[string(pk.Payload)] = append(o.routes[string(pk.Payload)], route{cl: cl, pid: pk.PacketID, at: time.Now()})
	o.mu.Unlock()
}

// describe tells, for a missing payload, where the broker routed it.
func (o *observer) describe(payload string) string {
	o.mu.Lock()
	defer o.mu.Unlock()
	out := ""
	for _, r := range o.routes[payload] {
		_, inMem := r.cl.State.Inflight.Get(r.pid)
		out += fmt.Sprintf("[%s pid %d cl %p takenOver %v closed %v stillInflight %v at %s] ", r.cl.ID, r.pid, r.cl, r.cl.IsTakenOver(), r.cl.Closed(), inMem, r.at.Format("15:04:05.000"))
	}
	return out
}

func (o *observer) OnPublished(_ *mochi.Client, pk packets.Packet) {
	o.mu.Lock()
	o.pubs[string(pk.Payload)]++
	o.mu.Unlock()
}

// published reports how often the broker accepted payload from a publisher.
func (o *observer) published(payload string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.pubs[payload]
}

// lastConnect and lastSubscribe return the last CONNECT and SUBSCRIBE of a
// client.
func (o *observer) lastConnect(client string) (packets.Packet, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	pk, ok := o.connects[client]
	return pk, ok
}

func (o *observer) lastSubscribe(client string) (packets.Packet, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	pk, ok := o.subs[client]
	return pk, ok
}

func (o *observer) acked(client string, id uint16) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.acks[client][id]
}

func (o *observer) totalAcks(client string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.ackTotal[client]
}

// boltStore is mochi's own bbolt storage hook, which keeps the broker's
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
type boltStore struct {
	*bolt.Hook
}

func (s boltStore) StoredInflightMessages() ([]storage.Message, error) {
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

func (g *sessionGuard) ID() string { return "test-session-guard" }

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

// externalBrokerURL returns MQTT_TEST_URL, failing the test when it is set
// but unreachable.
func externalBrokerURL(t testing.TB) string {
	u := os.Getenv("MQTT_TEST_URL")
	if u == "" {
		return ""
	}
	host := u
	if i := strings.Index(host, "://"); i >= 0 {
		host = host[i+3:]
	}
	c, err := net.DialTimeout("tcp", host, 3*time.Second)
	if err != nil {
		t.Fatalf("MQTT_TEST_URL=%s is set but unreachable: %v", u, err)
	}
	_ = c.Close()
	return u
}

// brokerCase is a broker a test runs against.
type brokerCase struct {
	name  string
	url   string
	mochi *testBroker // nil for the external broker
}

// testBrokers returns the embedded mochi broker, plus MQTT_TEST_URL when set.
func testBrokers(t *testing.T, persistent bool) []brokerCase {
	out := []brokerCase{{name: "mochi"}}
	out[0].mochi = newTestBroker(t, persistent)
	out[0].url = out[0].mochi.url()
	if u := externalBrokerURL(t); u != "" {
		out = append(out, brokerCase{name: "external", url: u})
	}
	return out
}

// waitFor polls cond until it holds or the timeout passes.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		case <-time.After(20 * time.Millisecond):
		}
	}
}
