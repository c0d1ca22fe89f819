package danube

import (
	"context"
	"errors"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"

	pb "github.com/benthos-danube/benthos-danube/internal/danubepb"
)

const (
	// proxyHeader routes producer and consumer RPCs through a proxy broker
	// when a lookup answers proxy = true.
	proxyHeader = "x-danube-broker-url"
)

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
