package danubetest

import (
	"crypto/tls"
	"log/slog"
	"time"
)

// Defaults of the configurable broker policies.
const (
	// DefaultAckTimeout is the reliable-dispatch redelivery delay for a
	// message that was delivered but never acked (Danube's default).
	DefaultAckTimeout = 30 * time.Second
	// DefaultNackDelay is the base of the exponential nack redelivery policy
	// (base × 2^(attempt−1), capped at MaxNackDelay).
	DefaultNackDelay = time.Second
	// DefaultMaxUnacked is the per-subscription reliable in-flight window.
	DefaultMaxUnacked = 10
	// DefaultMaxRedeliveries is max_redelivery_count: after this many
	// redeliveries (plus the original delivery) a message blocks its
	// subscription.
	DefaultMaxRedeliveries = 5
	// DefaultMaxMessageSize is the topic max_message_size policy (payload
	// bytes), 10 MiB.
	DefaultMaxMessageSize = 10 * 1024 * 1024
	// DefaultConsumerQueue is the per-consumer queue length of non-reliable
	// dispatch (Danube's channel of 4); a message for a full queue is
	// dropped, as Danube drops it (try_send, "consumer channel full;
	// dropping non-reliable message"), and counted (DroppedMessages).
	DefaultConsumerQueue = 4
	// MaxNackDelay caps every nack redelivery delay.
	MaxNackDelay = 60 * time.Second
	// MaxRequestBytes is the largest encoded request the broker accepts
	// (tonic's default decode limit). Bigger requests get OutOfRange.
	MaxRequestBytes = 4194304
)

// Option configures a Server (or every broker of a Cluster).
type Option func(*config)

type config struct {
	addr            string
	autoCreate      bool
	clusterMode     bool
	namespaces      []string
	tls             *tls.Config
	tokens          []string
	ackTimeout      time.Duration
	nackDelay       time.Duration
	maxUnacked      int
	maxRedeliveries int
	maxMessageSize  int
	queueSize       int
	connectURL      string
	advertisedURL   string
	logger          *slog.Logger
}

func defaultConfig() config {
	return config{
		addr:            "127.0.0.1:0",
		autoCreate:      true,
		ackTimeout:      DefaultAckTimeout,
		nackDelay:       DefaultNackDelay,
		maxUnacked:      DefaultMaxUnacked,
		maxRedeliveries: DefaultMaxRedeliveries,
		maxMessageSize:  DefaultMaxMessageSize,
		queueSize:       DefaultConsumerQueue,
		logger:          slog.New(slog.DiscardHandler),
	}
}

// WithAddr sets the listen address (default "127.0.0.1:0", an ephemeral
// loopback port).
func WithAddr(addr string) Option { return func(c *config) { c.addr = addr } }

// WithAutoCreateTopics switches topic auto-creation by CreateProducer
// (default true). Off, CreateProducer on a missing topic gets NotFound.
func WithAutoCreateTopics(on bool) Option { return func(c *config) { c.autoCreate = on } }

// WithClusterMode makes the first CreateProducer of a new topic create it and
// return Unavailable ("need to redo the lookup"), as a cluster-mode broker
// does; the retry succeeds.
func WithClusterMode(on bool) Option { return func(c *config) { c.clusterMode = on } }

// WithNamespaces adds namespaces; "default" and "system" always exist.
func WithNamespaces(ns ...string) Option {
	return func(c *config) { c.namespaces = append(c.namespaces, ns...) }
}

// WithTLS serves TLS with cfg instead of plaintext h2c; URL then uses https://.
func WithTLS(cfg *tls.Config) Option { return func(c *config) { c.tls = cfg } }

// WithTokens enables authentication: every RPC must carry
// "authorization: Bearer <t>" (or "bearer <t>") with t one of tokens.
func WithTokens(tokens ...string) Option {
	return func(c *config) { c.tokens = append(c.tokens, tokens...) }
}

// WithAckTimeout sets the reliable redelivery delay for delivered messages
// that are never acked (default 30s).
func WithAckTimeout(d time.Duration) Option { return func(c *config) { c.ackTimeout = d } }

// WithNackDelay sets the base of the nack redelivery policy (default 1s). The
// delay of the k-th delivery's nack is max(base × 2^(k−1), delay_ms), capped
// at 60s.
func WithNackDelay(d time.Duration) Option { return func(c *config) { c.nackDelay = d } }

// WithMaxUnacked sets the reliable in-flight window per subscription
// (default 10).
func WithMaxUnacked(n int) Option { return func(c *config) { c.maxUnacked = n } }

// WithMaxRedeliveries sets max_redelivery_count (default 5). A message that
// needs one more redelivery after that blocks its subscription (Danube's
// default Block poison policy). A negative value disables the limit.
func WithMaxRedeliveries(n int) Option { return func(c *config) { c.maxRedeliveries = n } }

// WithMaxMessageSize sets the topic max_message_size policy in payload bytes
// (default 10 MiB). Bigger payloads get InvalidArgument from SendMessage.
func WithMaxMessageSize(n int) Option { return func(c *config) { c.maxMessageSize = n } }

// WithConsumerQueue sets the per-consumer queue length of non-reliable
// dispatch (default 4, as in Danube). Messages for a full queue are dropped,
// counted (DroppedMessages) and logged, as Danube drops them: a benchmark
// with a live non-reliable consumer at tens of thousands of messages per
// second needs a deeper queue (e.g. 4096) to measure the client rather
// than the broker's drops. Reliable topics never drop (their window is
// max_unacked) and queue up to max_unacked + n messages per consumer.
func WithConsumerQueue(n int) Option { return func(c *config) { c.queueSize = n } }

// WithConnectURL makes lookups advertise url as connect_url (the broker_url
// stays the broker's own URL), so lookups answer proxy = true.
func WithConnectURL(url string) Option { return func(c *config) { c.connectURL = url } }

// WithAdvertisedURL sets the URL the broker advertises as its own broker_url
// and connect_url in lookups (default "http://<listen address>"), for a
// broker listening on 0.0.0.0.
func WithAdvertisedURL(url string) Option { return func(c *config) { c.advertisedURL = url } }

// WithLogger sets the logger (default: discard).
func WithLogger(l *slog.Logger) Option {
	return func(c *config) {
		if l != nil {
			c.logger = l
		}
	}
}
