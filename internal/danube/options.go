package danube

import (
	"crypto/tls"
	"log/slog"
	"time"
)

const (
	defaultDialTimeout = 10 * time.Second
	defaultKeepalive   = 30 * time.Second
	// maxRecvBytes leaves room above the 4 MiB request limit for delivered
	// messages, whose msg_id may be a little longer than when they were sent.
	maxRecvBytes = 16 << 20
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
