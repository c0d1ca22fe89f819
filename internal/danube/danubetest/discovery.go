package danubetest

import (
	"context"
	"maps"
	"slices"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/benthos-danube/benthos-danube/internal/danubepb"
)

// discoverySvc serves danube.Discovery: topic lookups (Connect when s owns
// the topic, Redirect to its owner otherwise) and partition listings.
type discoverySvc struct {
	danubepb.UnimplementedDiscoveryServer
	s *Server
}

func (d discoverySvc) TopicLookup(_ context.Context, req *danubepb.TopicLookupRequest) (*danubepb.TopicLookupResponse, error) {
	s := d.s
	name := req.GetTopic()
	if !validTopicName(name) {
		return nil, status.Error(codes.InvalidArgument, invalidTopicText(name))
	}
	s.cluster.mu.Lock()
	t := s.cluster.topics[name]
	var owner *Server
	if t != nil {
		owner = t.owner
	}
	s.cluster.mu.Unlock()
	if owner == nil {
		return nil, status.Errorf(codes.NotFound, "Unable to find the requested topic: %s", name)
	}
	typ := danubepb.TopicLookupResponse_Redirect
	if owner == s {
		typ = danubepb.TopicLookupResponse_Connect
	}
	return &danubepb.TopicLookupResponse{
		RequestId:    req.GetRequestId(),
		ResponseType: typ,
		ConnectUrl:   owner.connectURL,
		BrokerUrl:    owner.brokerURL,
		Proxy:        owner.connectURL != owner.brokerURL,
	}, nil
}

func (d discoverySvc) TopicPartitions(_ context.Context, req *danubepb.TopicLookupRequest) (*danubepb.TopicPartitionsResponse, error) {
	s := d.s
	name := req.GetTopic()
	if !validTopicName(name) {
		return nil, status.Error(codes.InvalidArgument, invalidTopicText(name))
	}
	s.cluster.mu.Lock()
	defer s.cluster.mu.Unlock()
	resp := &danubepb.TopicPartitionsResponse{RequestId: req.GetRequestId(), Partitions: []string{}}
	if s.cluster.topics[name] != nil {
		resp.Partitions = []string{name}
		return resp, nil
	}
	for _, other := range slices.Sorted(maps.Keys(s.cluster.topics)) {
		if strings.HasPrefix(other, name) {
			resp.Partitions = append(resp.Partitions, other)
		}
	}
	return resp, nil
}
