package danubetest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/benthos-danube/benthos-danube/internal/danubepb"
)

// Server is one in-memory Danube broker serving gRPC on a loopback listener.
// It is safe for concurrent use.
type Server struct {
	cluster *Cluster
	cfg     config
	tokens  map[string]bool

	addr       string
	brokerURL  string
	connectURL string

	// Guarded by cluster.mu.
	producers map[uint64]*producer
	consumers map[uint64]*consumer

	// wakeAt is when the timer loop is due to run next (zero: no deadline
	// pending). Guarded by cluster.mu.
	wakeAt time.Time

	lifeMu sync.Mutex
	gs     *grpc.Server
	closed bool
	wg     sync.WaitGroup
	done   chan struct{}
	kickCh chan struct{}

	faultMu   sync.Mutex
	failures  map[string]*failure
	latency   time.Duration
	authSeen  []string
	proxySeen []HeaderRecord
	interned  map[string]string
}

// HeaderRecord is one RPC that carried a recorded metadata header.
type HeaderRecord struct {
	// RPC is the method name, e.g. "CreateProducer" or "TopicLookup".
	RPC string
	// Value is the header's first value.
	Value string
}

// ProxyHeader is the metadata key a client adds to producer and consumer RPCs
// when a lookup answered proxy = true (protocol §1.5). The broker ignores it
// for routing; BrokerURLHeaders records it.
const ProxyHeader = "x-danube-broker-url"

type failure struct {
	n    int
	code codes.Code
}

// streamWorkers is the size of the gRPC server's stream worker pool; RPCs
// beyond it get their own goroutine.
const streamWorkers = 32

// maxAuthRecords bounds Authorizations and BrokerURLHeaders each.
const maxAuthRecords = 1 << 20

// NewServer starts a broker with its own one-broker cluster. It listens on
// 127.0.0.1:0 unless WithAddr is given.
func NewServer(opts ...Option) (*Server, error) {
	return NewCluster(opts...).AddBroker()
}

// NewTestServer is NewServer for tests: it calls t.Fatal on error and
// registers Close with t.Cleanup.
func NewTestServer(t testing.TB, opts ...Option) *Server {
	t.Helper()
	s, err := NewServer(opts...)
	if err != nil {
		t.Fatalf("danubetest: start server: %v", err)
	}
	t.Cleanup(s.Close)
	return s
}

func newServer(c *Cluster, opts []Option) (*Server, error) {
	cfg := defaultConfig()
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.maxUnacked < 1 {
		cfg.maxUnacked = 1
	}
	if cfg.queueSize < 1 {
		cfg.queueSize = 1
	}
	s := &Server{
		cluster:   c,
		cfg:       cfg,
		tokens:    map[string]bool{},
		producers: map[uint64]*producer{},
		consumers: map[uint64]*consumer{},
		done:      make(chan struct{}),
		kickCh:    make(chan struct{}, 1),
		failures:  map[string]*failure{},
		interned:  map[string]string{},
	}
	for _, t := range cfg.tokens {
		s.tokens[t] = true
	}
	c.mu.Lock()
	for _, ns := range cfg.namespaces {
		c.namespaces[ns] = true
	}
	c.mu.Unlock()

	lis, err := net.Listen("tcp", cfg.addr)
	if err != nil {
		return nil, fmt.Errorf("danubetest: listen on %s: %w", cfg.addr, err)
	}
	s.addr = lis.Addr().String()
	scheme := "http://"
	if cfg.tls != nil {
		scheme = "https://"
	}
	s.brokerURL = scheme + s.addr
	if cfg.advertisedURL != "" {
		s.brokerURL = cfg.advertisedURL
	}
	s.connectURL = s.brokerURL
	if cfg.connectURL != "" {
		s.connectURL = cfg.connectURL
	}
	s.lifeMu.Lock()
	s.serveLocked(lis)
	s.lifeMu.Unlock()
	s.wg.Add(1)
	go s.timerLoop()
	cfg.logger.Info("danubetest broker listening (in-memory test broker, not Danube)", "addr", s.addr)
	return s, nil
}

func (s *Server) serveLocked(lis net.Listener) {
	opts := []grpc.ServerOption{
		grpc.MaxRecvMsgSize(64 << 20),
		grpc.ChainUnaryInterceptor(s.unaryInterceptor),
		grpc.ChainStreamInterceptor(s.streamInterceptor),
		grpc.WaitForHandlers(true),
		// A pool of stream workers serves the unary Ack/Send RPCs of a busy
		// consumer or producer on goroutines whose stacks have already
		// grown, instead of one new goroutine per RPC (whose stack growth
		// was a large part of the broker's CPU per message under load).
		grpc.NumStreamWorkers(streamWorkers),
		// Danube's tonic server enforces no keepalive policy; grpc-go's
		// default would answer a client pinging every 30 s with GOAWAY
		// too_many_pings, which the real broker never sends.
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: time.Second, PermitWithoutStream: true}),
	}
	if s.cfg.tls != nil {
		opts = append(opts, grpc.Creds(credentials.NewTLS(s.cfg.tls)))
	}
	gs := grpc.NewServer(opts...)
	danubepb.RegisterProducerServiceServer(gs, producerSvc{s: s})
	danubepb.RegisterConsumerServiceServer(gs, consumerSvc{s: s})
	danubepb.RegisterDiscoveryServer(gs, discoverySvc{s: s})
	danubepb.RegisterHealthCheckServer(gs, healthSvc{s: s})
	danubepb.RegisterSchemaRegistryServer(gs, schemaSvc{s: s})
	s.gs = gs
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if err := gs.Serve(lis); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			s.cfg.logger.Error("danubetest serve", "err", err)
		}
	}()
}

// URL returns the broker URL, "http://127.0.0.1:<port>" ("https://" with
// TLS), or the WithAdvertisedURL value.
func (s *Server) URL() string { return s.brokerURL }

// Addr returns the listen address, "127.0.0.1:<port>".
func (s *Server) Addr() string { return s.addr }

// Cluster returns the cluster this broker belongs to.
func (s *Server) Cluster() *Cluster { return s.cluster }

// Close stops the broker and every goroutine it owns. It is idempotent.
func (s *Server) Close() {
	s.lifeMu.Lock()
	if s.closed {
		s.lifeMu.Unlock()
		return
	}
	s.closed = true
	gs := s.gs
	s.gs = nil
	close(s.done)
	s.lifeMu.Unlock()
	if gs != nil {
		gs.Stop()
	}
	s.wg.Wait()
}

// Stop closes the listener and every connection; RPCs in progress fail and
// new ones cannot connect. Topics, logs and registries are kept. Start
// listens again.
func (s *Server) Stop() {
	s.lifeMu.Lock()
	gs := s.gs
	s.gs = nil
	s.lifeMu.Unlock()
	if gs != nil {
		gs.Stop()
	}
}

// Start listens again on the same address after Stop. It retries for a few
// seconds while the port is still busy. It is a no-op when running.
func (s *Server) Start() error {
	s.lifeMu.Lock()
	defer s.lifeMu.Unlock()
	if s.closed {
		return errors.New("danubetest: start: server closed")
	}
	if s.gs != nil {
		return nil
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		lis, err := net.Listen("tcp", s.addr)
		if err == nil {
			s.serveLocked(lis)
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("danubetest: listen again on %s: %w", s.addr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Restart simulates a broker restart: every producer and consumer of this
// broker is dropped (open streams end with Unavailable; later sends and
// receives get NotFound, health checks CLOSE). Topics, ownership, logs,
// subscriptions and reliable cursors are kept.
func (s *Server) Restart() {
	c := s.cluster
	c.mu.Lock()
	defer c.mu.Unlock()
	for id, p := range s.producers {
		if t := c.topics[p.topic]; t != nil && t.producers[p.name] == id {
			delete(t.producers, p.name)
		}
	}
	s.producers = map[uint64]*producer{}
	errRestart := status.Error(codes.Unavailable, "broker restarted")
	for _, co := range s.consumers {
		s.removeConsumerLocked(co, errRestart)
	}
	s.consumers = map[uint64]*consumer{}
	s.cfg.logger.Info("danubetest broker restarted", "addr", s.addr)
}

// MoveTopic moves the ownership of a topic to broker to (of the same
// cluster). The old owner drops the topic's producers and consumers (their
// health checks answer CLOSE, their sends NotFound); lookups anywhere then
// answer the new owner. Logs and cursors carry over.
func (s *Server) MoveTopic(topicName string, to *Server) {
	c := s.cluster
	c.mu.Lock()
	defer c.mu.Unlock()
	t := c.topics[topicName]
	if t == nil {
		return
	}
	old := t.owner
	for _, id := range t.producers {
		delete(old.producers, id)
	}
	t.producers = map[string]uint64{}
	errMoved := status.Error(codes.Unavailable, "topic moved to another broker")
	for _, sub := range t.subs {
		for _, co := range append([]*consumer(nil), sub.consumers...) {
			co.broker.removeConsumerLocked(co, errMoved)
		}
	}
	t.owner = to
	t.draining = false
	to.kick()
}

// SetDraining marks a topic as draining: SendMessage answers PermissionDenied
// "… is draining or closed; retry lookup/moved" until it is switched off.
func (s *Server) SetDraining(topicName string, on bool) {
	c := s.cluster
	c.mu.Lock()
	defer c.mu.Unlock()
	if t := c.topics[topicName]; t != nil {
		t.draining = on
	}
}

// CreateNamespace adds a namespace to the cluster.
func (s *Server) CreateNamespace(ns string) { s.cluster.CreateNamespace(ns) }

// CreateTopic creates a topic (or one partition, "<base>-part-N") owned by
// s, as Danube's admin API does, whether or not topics are auto-created. The
// namespace must exist. Creating an existing topic is a no-op.
func (s *Server) CreateTopic(name string, reliable bool) error {
	if !validTopicName(name) {
		return errors.New(invalidTopicText(name))
	}
	strategy := danubepb.DispatchStrategy_NonReliable
	if reliable {
		strategy = danubepb.DispatchStrategy_Reliable
	}
	s.cluster.mu.Lock()
	defer s.cluster.mu.Unlock()
	if s.cluster.topics[name] != nil {
		return nil
	}
	_, err := s.newTopicLocked(name, strategy)
	return err
}

// FailNext makes the next n calls of rpc (the method name, e.g.
// "CreateProducer", "SendMessage", "Subscribe", "ReceiveMessages",
// "TopicLookup", "HealthCheck", "RegisterSchema") fail with code. n <= 0
// clears it.
func (s *Server) FailNext(rpc string, n int, code codes.Code) {
	s.faultMu.Lock()
	defer s.faultMu.Unlock()
	if n <= 0 {
		delete(s.failures, rpc)
		return
	}
	s.failures[rpc] = &failure{n: n, code: code}
}

// SetLatency adds d to every RPC (0 removes it).
func (s *Server) SetLatency(d time.Duration) {
	s.faultMu.Lock()
	defer s.faultMu.Unlock()
	s.latency = d
}

// Authorizations returns every "authorization" metadata value seen, in order
// (RPCs without the header are not recorded).
func (s *Server) Authorizations() []string {
	s.faultMu.Lock()
	defer s.faultMu.Unlock()
	return append([]string(nil), s.authSeen...)
}

// BrokerURLHeaders returns every RPC that carried the "x-danube-broker-url"
// proxy header (ProxyHeader), with its value, in order. RPCs without the
// header are not recorded, so a lookup that wrongly carried it shows up here
// as "TopicLookup".
func (s *Server) BrokerURLHeaders() []HeaderRecord {
	s.faultMu.Lock()
	defer s.faultMu.Unlock()
	return append([]HeaderRecord(nil), s.proxySeen...)
}

// Messages returns copies of everything SendMessage accepted for the exact
// topic or partition name, in order (cluster-wide).
func (s *Server) Messages(topicName string) []Message { return s.cluster.Messages(topicName) }

// MessageCount returns the number of messages accepted for the exact topic or
// partition name.
func (s *Server) MessageCount(topicName string) int { return s.cluster.MessageCount(topicName) }

// TotalMessages returns the number of messages accepted on every topic.
func (s *Server) TotalMessages() int { return s.cluster.TotalMessages() }

// Topics returns every topic and partition name of the cluster, sorted.
func (s *Server) Topics() []string { return s.cluster.Topics() }

// WaitForMessages blocks until the exact topic holds at least n messages or
// ctx is done.
func (s *Server) WaitForMessages(ctx context.Context, topicName string, n int) error {
	return s.cluster.WaitForMessages(ctx, topicName, n)
}

// DroppedMessages returns how many messages of the exact non-reliable topic
// were dropped for a subscription (see Cluster.DroppedMessages).
func (s *Server) DroppedMessages(topicName string) int { return s.cluster.DroppedMessages(topicName) }

// Unacked reports the unacked and acked message counts of a reliable
// subscription (see Cluster.Unacked).
func (s *Server) Unacked(topicName, subscription string) (unacked, acked int, ok bool) {
	return s.cluster.Unacked(topicName, subscription)
}

// ProducerCount returns the number of producers registered on this broker.
func (s *Server) ProducerCount() int {
	s.cluster.mu.Lock()
	defer s.cluster.mu.Unlock()
	return len(s.producers)
}

// ConsumerCount returns the number of consumers registered on this broker.
func (s *Server) ConsumerCount() int {
	s.cluster.mu.Lock()
	defer s.cluster.mu.Unlock()
	return len(s.consumers)
}

func rpcName(fullMethod string) string {
	return fullMethod[strings.LastIndex(fullMethod, "/")+1:]
}

// pre runs latency, auth recording and checking, and fault injection.
func (s *Server) pre(ctx context.Context, rpc string) error {
	s.faultMu.Lock()
	lat := s.latency
	s.faultMu.Unlock()
	if lat > 0 {
		tm := time.NewTimer(lat)
		select {
		case <-tm.C:
		case <-ctx.Done():
			tm.Stop()
			return status.FromContextError(ctx.Err()).Err()
		}
	}
	md, _ := metadata.FromIncomingContext(ctx)
	vals := md.Get("authorization")
	proxy := md.Get(ProxyHeader)
	s.faultMu.Lock()
	if len(vals) > 0 && len(s.authSeen) < maxAuthRecords {
		s.authSeen = append(s.authSeen, s.internLocked(vals[0]))
	}
	if len(proxy) > 0 && len(s.proxySeen) < maxAuthRecords {
		s.proxySeen = append(s.proxySeen, HeaderRecord{RPC: rpc, Value: s.internLocked(proxy[0])})
	}
	s.faultMu.Unlock()
	if len(s.tokens) > 0 {
		if len(vals) == 0 {
			return status.Error(codes.Unauthenticated, "Authentication credentials are missing")
		}
		v := vals[0]
		tok, ok := strings.CutPrefix(v, "Bearer ")
		if !ok {
			tok, ok = strings.CutPrefix(v, "bearer ")
		}
		if !ok || !s.tokens[tok] {
			return status.Error(codes.Unauthenticated, "Invalid token")
		}
	}
	s.faultMu.Lock()
	defer s.faultMu.Unlock()
	if f := s.failures[rpc]; f != nil {
		f.n--
		if f.n <= 0 {
			delete(s.failures, rpc)
		}
		return status.Errorf(f.code, "danubetest: injected %s failure", rpc)
	}
	return nil
}

// internLocked returns a shared copy of v so that millions of identical
// recorded header values cost one string. faultMu must be held.
func (s *Server) internLocked(v string) string {
	if iv, ok := s.interned[v]; ok {
		return iv
	}
	s.interned[v] = v
	return v
}

func (s *Server) unaryInterceptor(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if err := s.pre(ctx, rpcName(info.FullMethod)); err != nil {
		return nil, err
	}
	if m, ok := req.(proto.Message); ok {
		if n := proto.Size(m); n > MaxRequestBytes {
			return nil, status.Errorf(codes.OutOfRange,
				"Error, decoded message length too large: found %d bytes, the limit is: %d bytes", n, MaxRequestBytes)
		}
	}
	return handler(ctx, req)
}

func (s *Server) streamInterceptor(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	if err := s.pre(ss.Context(), rpcName(info.FullMethod)); err != nil {
		return err
	}
	return handler(srv, ss)
}

// kick wakes the timer loop so it recomputes its next deadline.
func (s *Server) kick() {
	select {
	case s.kickCh <- struct{}{}:
	default:
	}
}

// scheduleLocked makes the timer loop run no later than at (zero: nothing to
// schedule). It wakes the loop only when at is earlier than the loop's
// current timer, so a steady stream of deliveries, each with an ack timeout
// later than the one pending, costs no wake-up. cluster.mu must be held.
func (s *Server) scheduleLocked(at time.Time) {
	if at.IsZero() || (!s.wakeAt.IsZero() && !at.Before(s.wakeAt)) {
		return
	}
	s.wakeAt = at
	s.kick()
}

// timerLoop runs time-based reliable redelivery (nack delays, ack timeouts)
// for the topics this broker owns. It sleeps until the earliest deadline; it
// never wakes itself (scheduleLocked wakes it for an earlier deadline).
func (s *Server) timerLoop() {
	defer s.wg.Done()
	tm := time.NewTimer(time.Hour)
	defer tm.Stop()
	for {
		select {
		case <-s.done:
			return
		case <-s.kickCh:
		case <-tm.C:
		}
		c := s.cluster
		now := time.Now()
		var next time.Time
		c.mu.Lock()
		for _, t := range c.topics {
			if t.owner != s || !t.reliable {
				continue
			}
			if n := s.dispatchDeadlinesLocked(t, now); !n.IsZero() && (next.IsZero() || n.Before(next)) {
				next = n
			}
		}
		s.wakeAt = next
		c.mu.Unlock()
		wait := time.Hour
		if !next.IsZero() {
			wait = max(time.Until(next), time.Millisecond)
		}
		if !tm.Stop() {
			select {
			case <-tm.C:
			default:
			}
		}
		tm.Reset(wait)
	}
}
