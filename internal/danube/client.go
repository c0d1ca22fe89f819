package danube

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/metadata"

	"github.com/benthos-danube/benthos-danube/internal/danube/topicname"
	pb "github.com/benthos-danube/benthos-danube/internal/danubepb"
	"github.com/benthos-danube/benthos-danube/internal/hostcheck"
	"github.com/benthos-danube/benthos-danube/internal/redact"
)

const (
	defaultDialTimeout = 10 * time.Second
	defaultKeepalive   = 30 * time.Second
	// maxRecvBytes leaves room above the 4 MiB request limit for delivered
	// messages, whose msg_id may be a little longer than when they were sent.
	maxRecvBytes = 16 << 20
	// proxyHeader routes producer/consumer RPCs through a proxy (§1.5).
	proxyHeader = "x-danube-broker-url"
)

// Option configures a Client.
type Option func(*clientOptions)

type clientOptions struct {
	tls         *tls.Config
	token       string
	tokenFile   string
	logger      *slog.Logger
	dialTimeout time.Duration
	keepalive   time.Duration
}

// WithTLS enables TLS with the given configuration. nil keeps plaintext h2c.
// The scheme of the service URL never selects TLS.
func WithTLS(cfg *tls.Config) Option { return func(o *clientOptions) { o.tls = cfg } }

// WithToken sends "authorization: Bearer <jwt>" on every RPC.
func WithToken(jwt string) Option { return func(o *clientOptions) { o.token = jwt } }

// WithTokenFile reads the JWT from path and re-reads it whenever the file's
// modification time or size changes. Surrounding whitespace is trimmed.
func WithTokenFile(path string) Option { return func(o *clientOptions) { o.tokenFile = path } }

// WithLogger sets the logger used for background events (default: discard).
func WithLogger(l *slog.Logger) Option { return func(o *clientOptions) { o.logger = l } }

// WithDialTimeout bounds each TCP/TLS connection attempt (default 10s).
func WithDialTimeout(d time.Duration) Option { return func(o *clientOptions) { o.dialTimeout = d } }

// WithKeepalive sets the interval of HTTP/2 keepalive pings used to detect a
// dead broker (default 30s; a ping unanswered for 10s closes the connection).
// d <= 0 disables keepalive pings.
func WithKeepalive(d time.Duration) Option {
	return func(o *clientOptions) {
		if d <= 0 {
			d = -1
		}
		o.keepalive = d
	}
}

// Client is a connection to a Danube cluster. It is safe for concurrent use.
type Client struct {
	serviceAddr string
	opts        clientOptions
	log         *slog.Logger
	token       *tokenSource
	reqID       atomic.Uint64

	mu        sync.Mutex
	closed    bool
	conns     map[string]*grpc.ClientConn
	producers map[*Producer]struct{}
	consumers map[*Consumer]struct{}
}

// NewClient creates a client for the broker at serviceURL, given as
// "host:port", "http://host:port" or "https://host:port". Connections are
// made lazily; use Ping to check reachability.
func NewClient(serviceURL string, opts ...Option) (*Client, error) {
	o := clientOptions{dialTimeout: defaultDialTimeout, keepalive: defaultKeepalive}
	for _, opt := range opts {
		opt(&o)
	}
	addr, err := ParseServiceURL(serviceURL)
	if err != nil {
		return nil, fmt.Errorf("danube: %w", err)
	}
	if o.dialTimeout <= 0 {
		o.dialTimeout = defaultDialTimeout
	}
	log := o.logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	c := &Client{
		serviceAddr: addr,
		opts:        o,
		log:         log,
		conns:       map[string]*grpc.ClientConn{},
		producers:   map[*Producer]struct{}{},
		consumers:   map[*Consumer]struct{}{},
	}
	if o.token != "" || o.tokenFile != "" {
		c.token = &tokenSource{static: o.token, path: o.tokenFile}
		if o.tokenFile != "" {
			if _, err := c.token.get(); err != nil {
				return nil, err
			}
		}
	}
	return c, nil
}

// ParseServiceURL checks a Danube service URL and returns the host:port to
// dial. The accepted form is "host:port", optionally prefixed by "http://" or
// "https://" (in any case) and followed by '/'; surrounding spaces are
// ignored. The scheme never selects TLS (see WithTLS). host is a name or an
// IP address (IPv6 in brackets), port a number from 1 to 65535. Anything else
// could never be dialled, so it is refused here rather than retried.
func ParseServiceURL(serviceURL string) (string, error) {
	// The URL is masked: this error is logged and shown on /ready.
	bad := func(format string, args ...any) error {
		return fmt.Errorf("invalid Danube URL %q: %s", redact.URL(serviceURL), fmt.Sprintf(format, args...))
	}
	addr := stripScheme(serviceURL)
	if addr == "" {
		return "", bad("no host:port; use host:port, optionally prefixed by http:// or https://")
	}
	if at := strings.LastIndex(addr, "@"); at >= 0 && !strings.ContainsAny(addr[:at], "/?#") {
		// Danube authenticates with a JWT, never with URL credentials.
		return "", bad("it must not carry credentials (user:password@): Danube authenticates with a JWT, pass it as token or token_file")
	}
	if i := strings.Index(addr, "://"); i >= 0 {
		return "", bad("unsupported scheme %q; use host:port, optionally prefixed by http:// or https:// (TLS is set by the tls field, not by the scheme)", addr[:i+3])
	}
	if i := strings.IndexAny(addr, "/?#"); i >= 0 {
		return "", bad("unexpected %q after host:port", addr[i:])
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		var ae *net.AddrError
		switch {
		case errors.As(err, &ae) && ae.Err == "missing port in address":
			return "", bad("no port; use host:port, e.g. %s:6650 (6650 is Danube's default)", addr)
		case errors.As(err, &ae) && ae.Err == "too many colons in address":
			return "", bad("%s; write an IPv6 address in brackets, e.g. [::1]:6650", ae.Err)
		case errors.As(err, &ae):
			return "", bad("%s", ae.Err)
		}
		return "", bad("%v", err)
	}
	if host == "" {
		return "", bad("no host")
	}
	if !hostcheck.Valid(host) {
		return "", bad("invalid host %q; use a host name (letters, digits, '.', '-', '_') or an IP address", host)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return "", bad("port %q is not a number from 1 to 65535", port)
	}
	return addr, nil
}

// stripScheme removes a leading http:// or https:// and trailing slashes.
func stripScheme(u string) string {
	u = strings.TrimSpace(u)
	for _, p := range []string{"http://", "https://"} {
		if len(u) >= len(p) && strings.EqualFold(u[:len(p)], p) {
			u = u[len(p):]
			break
		}
	}
	return strings.TrimRight(u, "/")
}

// Close closes every producer and consumer of the client, then every gRPC
// connection. It is idempotent.
func (c *Client) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	prods := make([]*Producer, 0, len(c.producers))
	for p := range c.producers {
		prods = append(prods, p)
	}
	cons := make([]*Consumer, 0, len(c.consumers))
	for co := range c.consumers {
		cons = append(cons, co)
	}
	c.mu.Unlock()

	for _, p := range prods {
		_ = p.Close()
	}
	for _, co := range cons {
		_ = co.Close()
	}

	c.mu.Lock()
	conns := c.conns
	c.conns = map[string]*grpc.ClientConn{}
	c.mu.Unlock()
	var errs []error
	for addr, cc := range conns {
		if err := cc.Close(); err != nil {
			errs = append(errs, fmt.Errorf("closing connection to %s: %w", addr, err))
		}
	}
	return errors.Join(errs...)
}

// conn returns the shared connection for addr (host:port), creating it on first use.
func (c *Client) conn(addr string) (*grpc.ClientConn, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, ErrClosed
	}
	if cc, ok := c.conns[addr]; ok {
		return cc, nil
	}
	creds := insecure.NewCredentials()
	if c.opts.tls != nil {
		creds = credentials.NewTLS(c.opts.tls.Clone())
	}
	dialTimeout := c.opts.dialTimeout
	dopts := []grpc.DialOption{
		grpc.WithTransportCredentials(creds),
		grpc.WithContextDialer(func(ctx context.Context, a string) (net.Conn, error) {
			d := net.Dialer{Timeout: dialTimeout}
			return d.DialContext(ctx, "tcp", a)
		}),
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 3 * time.Second},
			MinConnectTimeout: dialTimeout,
		}),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxRecvBytes)),
	}
	if c.opts.keepalive > 0 {
		dopts = append(dopts, grpc.WithKeepaliveParams(keepalive.ClientParameters{
			Time: c.opts.keepalive, Timeout: 10 * time.Second, PermitWithoutStream: true,
		}))
	}
	if c.token != nil {
		dopts = append(dopts,
			grpc.WithChainUnaryInterceptor(c.unaryAuth),
			grpc.WithChainStreamInterceptor(c.streamAuth))
	}
	cc, err := grpc.NewClient(addr, dopts...)
	if err != nil {
		return nil, fmt.Errorf("danube: creating connection to %s: %w", addr, err)
	}
	c.conns[addr] = cc
	return cc, nil
}

func (c *Client) authCtx(ctx context.Context) (context.Context, error) {
	tok, err := c.token.get()
	if err != nil {
		return nil, err
	}
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+tok), nil
}

func (c *Client) unaryAuth(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	ctx, err := c.authCtx(ctx)
	if err != nil {
		return err
	}
	return invoker(ctx, method, req, reply, cc, opts...)
}

func (c *Client) streamAuth(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	ctx, err := c.authCtx(ctx)
	if err != nil {
		return nil, err
	}
	return streamer(ctx, desc, cc, method, opts...)
}

// tokenSource yields the JWT, re-reading the file when it changes.
type tokenSource struct {
	static string
	path   string

	mu    sync.Mutex
	tok   string
	mtime time.Time
	size  int64
}

func (t *tokenSource) get() (string, error) {
	if t.path == "" {
		return t.static, nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	fi, err := os.Stat(t.path)
	if err != nil {
		if t.tok != "" {
			return t.tok, nil // keep the last good token while the file is being replaced
		}
		return "", fmt.Errorf("danube: reading token file: %w", err)
	}
	if t.tok != "" && fi.ModTime().Equal(t.mtime) && fi.Size() == t.size {
		return t.tok, nil
	}
	b, err := os.ReadFile(t.path)
	if err != nil {
		if t.tok != "" {
			return t.tok, nil
		}
		return "", fmt.Errorf("danube: reading token file: %w", err)
	}
	tok := string(bytes.TrimSpace(b))
	if tok == "" {
		if t.tok != "" {
			return t.tok, nil
		}
		return "", fmt.Errorf("danube: token file %s is empty", t.path)
	}
	t.tok, t.mtime, t.size = tok, fi.ModTime(), fi.Size()
	return tok, nil
}

// TLSConfig builds a client TLS configuration: caFile ("" = system roots)
// verifies the broker, certFile/keyFile (both or neither) present a client
// certificate for mTLS, and skipVerify disables verification (development only).
func TLSConfig(caFile, certFile, keyFile string, skipVerify bool) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: skipVerify} //nolint:gosec // explicit opt-in
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("danube: reading CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("danube: no PEM certificate found in CA file %s", caFile)
		}
		cfg.RootCAs = pool
	}
	if (certFile == "") != (keyFile == "") {
		return nil, fmt.Errorf("danube: client certificate and key must be given together")
	}
	if certFile != "" {
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("danube: loading client certificate: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

// ValidateTopic checks that name has the form "/namespace/topic", each part
// made of ASCII letters, digits, '_' and '-'.
func ValidateTopic(name string) error {
	if err := topicname.Validate(name); err != nil {
		return fmt.Errorf("danube: %w", err)
	}
	return nil
}

// PartitionForKey returns the partition of key: FNV-1a 64 over the key's
// bytes, modulo partitions as unsigned 64-bit, as the official clients do.
// It returns 0 when partitions <= 1.
func PartitionForKey(key string, partitions int) int {
	if partitions <= 1 {
		return 0
	}
	h := uint64(0xcbf29ce484222325)
	for i := 0; i < len(key); i++ {
		h ^= uint64(key[i])
		h *= 0x100000001b3
	}
	return int(h % uint64(partitions))
}

// brokerAddr is where a topic is served.
type brokerAddr struct {
	addr      string // host:port to dial (from connect_url)
	brokerURL string // the owner's identity URL, for msg_id and the proxy header
	proxy     bool
}

func (c *Client) serviceBroker() brokerAddr {
	return brokerAddr{addr: c.serviceAddr, brokerURL: "http://" + c.serviceAddr}
}

// withProxy adds the proxy routing header when the lookup asked for it.
func withProxy(ctx context.Context, b brokerAddr) context.Context {
	if b.proxy {
		return metadata.AppendToOutgoingContext(ctx, proxyHeader, b.brokerURL)
	}
	return ctx
}

// lookup asks the broker at addr where topic is served. Connect and
// Redirect are handled identically: dial connect_url, remember broker_url.
func (c *Client) lookup(ctx context.Context, addr, topic string) (brokerAddr, error) {
	cc, err := c.conn(addr)
	if err != nil {
		return brokerAddr{}, err
	}
	resp, err := pb.NewDiscoveryClient(cc).TopicLookup(ctx, &pb.TopicLookupRequest{RequestId: c.reqID.Add(1), Topic: topic})
	if err != nil {
		return brokerAddr{}, newError(topic, "TopicLookup", err)
	}
	if resp.GetResponseType() == pb.TopicLookupResponse_Failed {
		return brokerAddr{}, &Error{Topic: topic, RPC: "TopicLookup", Code: codes.Unavailable, Err: errors.New("lookup failed")}
	}
	b := brokerAddr{addr: stripScheme(resp.GetConnectUrl()), brokerURL: resp.GetBrokerUrl(), proxy: resp.GetProxy()}
	if b.addr == "" {
		b.addr = stripScheme(b.brokerURL)
	}
	if b.brokerURL == "" {
		b.brokerURL = "http://" + b.addr
	}
	if b.addr == "" {
		return brokerAddr{}, &Error{Topic: topic, RPC: "TopicLookup", Code: codes.Internal, Err: errors.New("lookup returned no broker URL")}
	}
	return b, nil
}

// lookupKeep looks topic up at prev's address (then at the service URL) and
// returns the answer, or prev when both lookups fail (e.g. NotFound for a
// brand-new topic, which is then created at the previous address).
func (c *Client) lookupKeep(ctx context.Context, prev brokerAddr, topic string) brokerAddr {
	b, err := c.lookup(ctx, prev.addr, topic)
	if err == nil {
		return b
	}
	if prev.addr != c.serviceAddr && codeOf(err) != codes.NotFound {
		if b, err2 := c.lookup(ctx, c.serviceAddr, topic); err2 == nil {
			return b
		}
	}
	c.log.Debug("danube lookup failed, keeping previous broker", "topic", topic, "broker", prev.addr, "error", err)
	return prev
}

// Ping checks that the service URL answers gRPC: it looks up a dummy topic;
// NotFound counts as reachable.
func (c *Client) Ping(ctx context.Context) error {
	_, err := c.lookup(ctx, c.serviceAddr, "/default/benthos-danube-ping")
	switch codeOf(err) {
	case codes.OK, codes.NotFound:
		return nil
	}
	return err
}

// TopicPartitions returns the topics that make up topic: [topic] for a
// non-partitioned topic, or its "<topic>-part-<N>" partitions ordered by N.
// Names that merely share the prefix are dropped. An unknown topic gives an
// empty list and no error.
func (c *Client) TopicPartitions(ctx context.Context, topic string) ([]string, error) {
	if err := ValidateTopic(topic); err != nil {
		return nil, &Error{Topic: topic, RPC: "TopicPartitions", Code: codes.InvalidArgument, Err: err, permanent: true}
	}
	cc, err := c.conn(c.serviceAddr)
	if err != nil {
		return nil, err
	}
	resp, err := pb.NewDiscoveryClient(cc).TopicPartitions(ctx, &pb.TopicLookupRequest{RequestId: c.reqID.Add(1), Topic: topic})
	if err != nil {
		return nil, newError(topic, "TopicPartitions", err)
	}
	return filterPartitions(topic, resp.GetPartitions()), nil
}

// filterPartitions keeps the exact name or "<base>-part-<digits>" names,
// ordered by partition number.
func filterPartitions(base string, names []string) []string {
	type part struct {
		name string
		n    int
	}
	var parts []part
	prefix := base + "-part-"
	for _, n := range names {
		if n == base {
			return []string{base}
		}
		if !strings.HasPrefix(n, prefix) {
			continue
		}
		suf := n[len(prefix):]
		if suf == "" || strings.Trim(suf, "0123456789") != "" {
			continue
		}
		num, err := strconv.Atoi(suf)
		if err != nil {
			continue
		}
		parts = append(parts, part{n, num})
	}
	sort.Slice(parts, func(i, j int) bool { return parts[i].n < parts[j].n })
	out := make([]string, len(parts))
	for i, p := range parts {
		out[i] = p.name
	}
	return out
}

// register/unregister track producers and consumers for Client.Close.
func (c *Client) register(p *Producer, co *Consumer) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return ErrClosed
	}
	if p != nil {
		c.producers[p] = struct{}{}
	}
	if co != nil {
		c.consumers[co] = struct{}{}
	}
	return nil
}

func (c *Client) unregister(p *Producer, co *Consumer) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.producers, p)
	delete(c.consumers, co)
}
