package mqtt

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/storage"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"
)

// testBroker is an embedded mochi MQTT broker on 127.0.0.1, restartable on
// the same port, optionally with sessions kept in memStore across restarts.
type testBroker struct {
	t     testing.TB
	addr  string
	store *memStore // nil: sessions die with the server
	obs   *observer
	mu    sync.Mutex
	srv   *mochi.Server
}

func newTestBroker(t testing.TB, persistent bool) *testBroker {
	t.Helper()
	b := &testBroker{t: t, addr: "127.0.0.1:0", obs: newObserver()}
	if persistent {
		b.store = newMemStore()
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
	if b.store != nil {
		if err := srv.AddHook(b.store, nil); err != nil {
			b.t.Fatal(err)
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
}

func newObserver() *observer {
	return &observer{acks: map[string]map[uint16]int{}, ackTotal: map[string]int{}, denySub: map[string]bool{}, pubs: map[string]int{}}
}

func (o *observer) ID() string { return "test-observer" }

func (o *observer) Provides(b byte) bool {
	return bytes.Contains([]byte{mochi.OnPacketRead, mochi.OnACLCheck, mochi.OnConnectAuthenticate, mochi.OnPublished}, []byte{b})
}

func (o *observer) OnConnectAuthenticate(_ *mochi.Client, pk packets.Packet) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.badUser == "" || string(pk.Connect.Username) != o.badUser
}

func (o *observer) OnACLCheck(_ *mochi.Client, topic string, write bool) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return write || !o.denySub[topic]
}

func (o *observer) OnPacketRead(cl *mochi.Client, pk packets.Packet) (packets.Packet, error) {
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

// memStore is a minimal in-memory mochi storage hook: the broker's sessions
// (clients, subscriptions, in-flight messages) survive a server stop/start
// when the same memStore is added to the new server. It plays the role of
// mochi's badger/bolt/pebble hooks, which are not available offline.
type memStore struct {
	mochi.HookBase
	mu       sync.Mutex
	clients  map[string]storage.Client
	subs     map[string]storage.Subscription
	inflight map[string]storage.Message
}

func newMemStore() *memStore {
	return &memStore{clients: map[string]storage.Client{}, subs: map[string]storage.Subscription{}, inflight: map[string]storage.Message{}}
}

func (s *memStore) ID() string { return "test-memstore" }

func (s *memStore) Provides(b byte) bool {
	return bytes.Contains([]byte{
		mochi.OnSessionEstablished, mochi.OnDisconnect, mochi.OnSubscribed, mochi.OnUnsubscribed,
		mochi.OnQosPublish, mochi.OnQosComplete, mochi.OnQosDropped, mochi.OnClientExpired,
		mochi.StoredClients, mochi.StoredSubscriptions, mochi.StoredInflightMessages,
	}, []byte{b})
}

func (s *memStore) OnSessionEstablished(cl *mochi.Client, _ packets.Packet) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.clients[cl.ID] = storage.Client{
		ID: cl.ID, T: storage.ClientKey, Remote: cl.Net.Remote, Listener: cl.Net.Listener,
		Username: cl.Properties.Username, Clean: cl.Properties.Clean, ProtocolVersion: cl.Properties.ProtocolVersion,
	}
}

func (s *memStore) OnDisconnect(cl *mochi.Client, _ error, expire bool) {
	if !expire || cl.StopCause() == packets.ErrSessionTakenOver {
		return
	}
	s.dropClient(cl.ID)
}

func (s *memStore) OnClientExpired(cl *mochi.Client) { s.dropClient(cl.ID) }

func (s *memStore) dropClient(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.clients, id)
	for k, v := range s.subs {
		if v.Client == id {
			delete(s.subs, k)
		}
	}
	for k, v := range s.inflight {
		if v.Client == id {
			delete(s.inflight, k)
		}
	}
}

func (s *memStore) OnSubscribed(cl *mochi.Client, pk packets.Packet, codes []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, f := range pk.Filters {
		if codes[i] >= 0x80 {
			continue
		}
		s.subs[cl.ID+":"+f.Filter] = storage.Subscription{ID: cl.ID + ":" + f.Filter, T: storage.SubscriptionKey, Client: cl.ID, Filter: f.Filter, Qos: codes[i]}
	}
}

func (s *memStore) OnUnsubscribed(cl *mochi.Client, pk packets.Packet) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, f := range pk.Filters {
		delete(s.subs, cl.ID+":"+f.Filter)
	}
}

func (s *memStore) OnQosPublish(cl *mochi.Client, pk packets.Packet, sent int64, _ int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	id := fmt.Sprintf("%s:%d", cl.ID, pk.PacketID)
	s.inflight[id] = storage.Message{
		ID: id, T: storage.InflightKey, Client: cl.ID, Origin: pk.Origin, FixedHeader: pk.FixedHeader,
		TopicName: pk.TopicName, Payload: append([]byte(nil), pk.Payload...), Sent: sent, Created: pk.Created, PacketID: pk.PacketID,
	}
}

func (s *memStore) OnQosComplete(cl *mochi.Client, pk packets.Packet) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.inflight, fmt.Sprintf("%s:%d", cl.ID, pk.PacketID))
}

func (s *memStore) OnQosDropped(cl *mochi.Client, pk packets.Packet) { s.OnQosComplete(cl, pk) }

func (s *memStore) StoredClients() ([]storage.Client, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]storage.Client, 0, len(s.clients))
	for _, v := range s.clients {
		out = append(out, v)
	}
	return out, nil
}

func (s *memStore) StoredSubscriptions() ([]storage.Subscription, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]storage.Subscription, 0, len(s.subs))
	for _, v := range s.subs {
		out = append(out, v)
	}
	return out, nil
}

func (s *memStore) StoredInflightMessages() ([]storage.Message, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]storage.Message, 0, len(s.inflight))
	for _, v := range s.inflight {
		out = append(out, v)
	}
	return out, nil
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
