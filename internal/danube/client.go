package danube

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"

	"google.golang.org/grpc"
)

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
