package mqtt

import (
	"bytes"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/benthos-danube/benthos-danube/internal/componenttest"
	"github.com/benthos-danube/benthos-danube/internal/mqtttest"
	"github.com/benthos-danube/benthos-danube/internal/mqtttest/boltstore"
)

// testBroker is an mqtttest broker (restartable on the same port, with its
// session take-over guard) with the observer hook, optionally with sessions
// kept across restarts by the repaired bolt store (mqtttest/boltstore).
type testBroker struct {
	*mqtttest.Server
	t    testing.TB
	addr string // fixed for the broker's life
	obs  *observer
}

func newTestBroker(t testing.TB, persistent bool) *testBroker {
	t.Helper()
	obs := newObserver()
	opts := []mqtttest.Option{mqtttest.WithHook(obs, nil)}
	if persistent {
		opts = append(opts, boltstore.Option(filepath.Join(t.TempDir(), "mochi.db")))
	}
	srv := mqtttest.NewTestServer(t, opts...)
	return &testBroker{Server: srv, t: t, addr: srv.Addr(), obs: obs}
}

func (b *testBroker) url() string { return b.URL() }

// start starts the stopped broker again.
func (b *testBroker) start() {
	b.t.Helper()
	if err := b.Start(); err != nil {
		b.t.Fatalf("%v", err)
	}
}

func (b *testBroker) stop() { b.Stop() }

// clientInflight returns the broker's in-flight count for a client id.
func (b *testBroker) clientInflight(id string) int { return b.Inflight(id) }

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

// externalBrokerURL returns MQTT_TEST_URL, failing the test when it is set
// but unreachable.
func externalBrokerURL(t testing.TB) string { return mqtttest.ExternalURL(t) }

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
	componenttest.WaitFor(t, timeout, what, cond)
}
