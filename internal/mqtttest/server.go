package mqtttest

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"runtime"
	"strings"
	"sync"
	"time"

	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/listeners"
)

// TB is the part of testing.TB that NewTestServer uses. A *testing.T or
// *testing.B satisfies it.
type TB interface {
	Helper()
	Fatalf(format string, args ...any)
	Cleanup(func())
}

// Option configures a Server.
type Option func(*options)

type options struct {
	addr   string
	logger *slog.Logger
	caps   *mochi.Capabilities
	hooks  []func() (mochi.Hook, any)
	// stopTimeout bounds Stop once the connections were closed under mochi.
	stopTimeout time.Duration
}

// WithAddr listens on addr (host:port) instead of 127.0.0.1:0.
func WithAddr(addr string) Option { return func(o *options) { o.addr = addr } }

// WithLogger sets mochi's logger (default: discard).
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

// WithCapabilities sets mochi's capabilities (Receive Maximum, maximum QoS,
// ...); nil keeps mochi's defaults.
func WithCapabilities(c *mochi.Capabilities) Option { return func(o *options) { o.caps = c } }

// WithStopTimeout sets how long Stop waits for mochi to return after it
// closed the connections under it (default 10 s) before it gives up.
func WithStopTimeout(d time.Duration) Option { return func(o *options) { o.stopTimeout = d } }

// WithHook adds h, with its config, to the broker at every start (the same
// hook object each time, so that what it records survives a restart). A hook
// that provides OnConnectAuthenticate takes authentication over from the
// default allow-all hook, and must then also provide OnACLCheck.
func WithHook(h mochi.Hook, config any) Option {
	return WithHookFunc(func() (mochi.Hook, any) { return h, config })
}

// WithHookFunc adds the hook newHook returns, a fresh one at every start (for
// hooks that mochi closes when the server stops, such as storage).
func WithHookFunc(newHook func() (mochi.Hook, any)) Option {
	return func(o *options) { o.hooks = append(o.hooks, newHook) }
}

// Server is an embedded mochi MQTT broker. Its methods are safe for
// concurrent use.
type Server struct {
	opts options

	mu    sync.Mutex
	addr  string // the TCP listener's address, fixed after the first start
	srv   *mochi.Server
	conns *connTracker // the connections of the running broker
}

// NewServer starts a broker. Close it when done.
func NewServer(opts ...Option) (*Server, error) {
	o := options{addr: "127.0.0.1:0", logger: slog.New(slog.DiscardHandler), stopTimeout: defaultStopTimeout}
	for _, opt := range opts {
		opt(&o)
	}
	s := &Server{opts: o, addr: o.addr}
	if err := s.Start(); err != nil {
		return nil, err
	}
	return s, nil
}

// NewTestServer is NewServer for tests: it calls t.Fatalf on error, and
// stops the server on cleanup (t fails when Stop does).
func NewTestServer(t TB, opts ...Option) *Server {
	t.Helper()
	s, err := NewServer(opts...)
	if err != nil {
		t.Fatalf("mqtttest: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Stop(); err != nil {
			t.Fatalf("%v", err)
		}
	})
	return s
}

// Addr is host:port of the TCP listener.
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addr
}

// URL is the tcp:// URL of the TCP listener.
func (s *Server) URL() string { return "tcp://" + s.Addr() }

// Start starts a stopped broker on the same port, with extra listeners
// besides the TCP one (for this start only). Starting a running broker is an
// error.
func (s *Server) Start(extra ...listeners.Listener) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srv != nil {
		return errors.New("mqtttest: the broker is running")
	}
	srv := mochi.New(&mochi.Options{Logger: s.opts.logger, Capabilities: s.opts.caps})
	// The guard first: it then holds the session write lock before any
	// storage hook records the session.
	if err := srv.AddHook(newSessionGuard(), nil); err != nil {
		return fmt.Errorf("mqtttest: adding the session guard: %w", err)
	}
	if err := srv.AddHook(new(flowHook), nil); err != nil {
		return fmt.Errorf("mqtttest: adding the flow hook: %w", err)
	}
	ownAuth := false
	for _, newHook := range s.opts.hooks {
		h, cfg := newHook()
		ownAuth = ownAuth || h.Provides(mochi.OnConnectAuthenticate)
		if err := srv.AddHook(h, cfg); err != nil {
			return fmt.Errorf("mqtttest: adding hook %s: %w", h.ID(), err)
		}
	}
	if !ownAuth {
		if err := srv.AddHook(new(auth.AllowHook), nil); err != nil {
			return fmt.Errorf("mqtttest: adding the allow-all hook: %w", err)
		}
	}
	var (
		raw net.Listener
		err error
	)
	for i := 0; i < 50; i++ { // the port may linger briefly after a stop
		if raw, err = net.Listen("tcp", s.addr); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		_ = srv.Close()
		return fmt.Errorf("mqtttest: listening on %s: %w", s.addr, err)
	}
	conns := newConnTracker(raw)
	l := listeners.NewNet("tcp", conns)
	if err := srv.AddListener(l); err != nil {
		_ = raw.Close()
		_ = srv.Close()
		return fmt.Errorf("mqtttest: adding the TCP listener: %w", err)
	}
	for _, x := range extra {
		if err := srv.AddListener(x); err != nil {
			_ = srv.Close()
			return fmt.Errorf("mqtttest: adding listener %s: %w", x.ID(), err)
		}
	}
	if err := srv.Serve(); err != nil {
		_ = srv.Close()
		return fmt.Errorf("mqtttest: serving: %w", err)
	}
	s.addr, s.srv, s.conns = l.Address(), srv, conns
	return nil
}

// Stop closes the broker and every connection; Start opens it again. Stopping
// a stopped broker does nothing.
//
// mochi closes politely (DISCONNECT to each client, then it waits for every
// connection to end); a client that is not reading, or a connection that
// never sent CONNECT, would keep it waiting for ever, so after closeGrace the
// connections are closed under it, again until it returns. Should mochi
// still not return (stuck on something other than a connection) within
// WithStopTimeout's time, Stop gives up and returns an error naming where mochi waits;
// the broker counts as stopped and its goroutines are left behind.
func (s *Server) Stop() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srv == nil {
		return nil
	}
	srv, conns := s.srv, s.conns
	s.srv, s.conns = nil, nil
	conns.quiesce()
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Close()
	}()
	grace := time.NewTicker(closeGrace)
	defer grace.Stop()
	var giveUp <-chan time.Time
	for {
		select {
		case <-done:
			conns.closeAll() // any the broker did not close itself
			return nil
		case <-grace.C:
			conns.closeAll()
			if giveUp == nil {
				giveUp = time.After(s.opts.stopTimeout)
			}
		case <-giveUp:
			conns.closeAll()
			return fmt.Errorf("mqtttest: mochi did not finish closing %s after its connections were closed; it waits in:\n%s",
				s.opts.stopTimeout, mochiStacks())
		}
	}
}

const (
	// closeGrace is how long Stop lets mochi close its clients politely.
	closeGrace = 500 * time.Millisecond
	// defaultStopTimeout is how long Stop waits for mochi after closing the
	// connections under it, unless WithStopTimeout says otherwise.
	defaultStopTimeout = 10 * time.Second
)

// mochiStacks returns the stacks of the goroutines that run mochi code, for
// Stop's error.
func mochiStacks() string {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var out []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "mochi-mqtt/server") {
			out = append(out, g)
		}
	}
	return strings.Join(out, "\n\n")
}

// Restart stops and starts the broker.
func (s *Server) Restart(extra ...listeners.Listener) error {
	if err := s.Stop(); err != nil {
		return err
	}
	return s.Start(extra...)
}

// Close stops the broker, for a defer: it drops Stop's error (mochi left
// behind). Call Stop to see it; NewTestServer's cleanup
// does.
func (s *Server) Close() { _ = s.Stop() }

// Inflight returns the broker's count of in-flight messages of a client id,
// or -1 when the broker is stopped or does not know the client.
func (s *Server) Inflight(clientID string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srv == nil {
		return -1
	}
	cl, ok := s.srv.Clients.Get(clientID)
	if !ok {
		return -1
	}
	return cl.State.Inflight.Len()
}

// ExternalURL returns the URL of the external MQTT broker named by the
// environment variable MQTT_TEST_URL (such as tcp://127.0.0.1:1883), or ""
// when it is not set. A set but unreachable broker fails the test.
func ExternalURL(t TB) string {
	t.Helper()
	u := os.Getenv("MQTT_TEST_URL")
	if u == "" {
		return ""
	}
	host := u
	if i := strings.Index(host, "://"); i >= 0 {
		host = host[i+3:]
	}
	c, err := net.DialTimeout("tcp", host, 5*time.Second)
	if err != nil {
		t.Fatalf("MQTT_TEST_URL=%s is set but unreachable: %v", u, err)
		return ""
	}
	_ = c.Close()
	return u
}

// RunID returns a name unique to this run of the test t, for topics and
// client ids: tests against a shared external broker then see neither each
// other's messages nor each other's sessions.
func RunID(t interface{ Name() string }) string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return strings.ReplaceAll(t.Name(), "/", "_") + "-" + hex.EncodeToString(b)
}
