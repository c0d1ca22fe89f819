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

const servedElsewhere = "The topic exists but is served by another broker, redo the Lookup request"

type producerSvc struct {
	danubepb.UnimplementedProducerServiceServer
	s *Server
}

// createTopicLocked auto-creates a topic for CreateProducer.
func (s *Server) createTopicLocked(name string, strategy danubepb.DispatchStrategy) (*topic, error) {
	if !s.cfg.autoCreate {
		return nil, status.Errorf(codes.NotFound, "Unable to find the topic: %s", name)
	}
	return s.newTopicLocked(name, strategy)
}

// newTopicLocked creates a topic owned by s, as auto-creation or an
// administrator does.
func (s *Server) newTopicLocked(name string, strategy danubepb.DispatchStrategy) (*topic, error) {
	c := s.cluster
	if strategy != danubepb.DispatchStrategy_NonReliable && strategy != danubepb.DispatchStrategy_Reliable {
		return nil, status.Error(codes.InvalidArgument, "Dispatch strategy is missing")
	}
	ns := namespaceOf(name)
	if !c.namespaces[ns] {
		return nil, status.Errorf(codes.Unavailable,
			"Unable to find the namespace %s, the topic can be created only for an exisiting namespace", ns)
	}
	if i := strings.LastIndex(name, "-part-"); i >= 0 {
		if base := name[:i]; c.topics[base] != nil {
			return nil, status.Errorf(codes.AlreadyExists,
				"Topic '%s' already exists as a non-partitioned topic, cannot create partition '%s'", base, name)
		}
	} else {
		for other := range c.topics {
			if strings.HasPrefix(other, name) {
				return nil, status.Errorf(codes.AlreadyExists,
					"Topic '%s' conflicts with existing topic '%s' (partitioned topic or name prefix)", name, other)
			}
		}
	}
	t := &topic{
		name:      name,
		partition: partitionOf(name),
		reliable:  strategy == danubepb.DispatchStrategy_Reliable,
		owner:     s,
		producers: map[string]uint64{},
		subs:      map[string]*subscription{},
	}
	c.topics[name] = t
	s.cfg.logger.Debug("danubetest topic created", "topic", name, "reliable", t.reliable)
	return t, nil
}

func (p producerSvc) CreateProducer(_ context.Context, req *danubepb.ProducerRequest) (*danubepb.ProducerResponse, error) {
	s := p.s
	c := s.cluster
	name := req.GetTopicName()
	if !validTopicName(name) {
		return nil, status.Error(codes.InvalidArgument, invalidTopicText(name))
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	t := c.topics[name]
	if t == nil {
		var err error
		if t, err = s.createTopicLocked(name, req.GetDispatchStrategy()); err != nil {
			return nil, err
		}
		if s.cfg.clusterMode {
			return nil, status.Error(codes.Unavailable,
				"The topic metadata was created, need to redo the lookup to find the correct broker")
		}
	}
	if t.owner != s {
		return nil, status.Error(codes.Unavailable, servedElsewhere)
	}
	want := danubepb.DispatchStrategy_NonReliable
	if t.reliable {
		want = danubepb.DispatchStrategy_Reliable
	}
	if req.GetDispatchStrategy() != want {
		return nil, status.Error(codes.FailedPrecondition, "Producer requested dispatch strategy does not match topic strategy")
	}
	if ref := req.GetSchemaRef(); ref != nil {
		subj := ref.GetSubject()
		switch {
		case t.subject != "" && t.subject != subj:
			return nil, status.Errorf(codes.FailedPrecondition,
				"Topic '%s' uses schema subject '%s', cannot use '%s'. Only admin can change topic schema.", name, t.subject, subj)
		case t.subject == "":
			if c.schemas[subj] == nil {
				return nil, status.Errorf(codes.FailedPrecondition,
					"Failed to assign schema '%s' to topic '%s': Schema not found for subject: %s. Ensure schema is registered first.", subj, name, subj)
			}
			t.subject = subj
		}
	}
	if id, ok := t.producers[req.GetProducerName()]; ok {
		if _, live := s.producers[id]; live {
			return &danubepb.ProducerResponse{RequestId: req.GetRequestId(), ProducerId: id, ProducerName: req.GetProducerName()}, nil
		}
	}
	id := randomID(func(id uint64) bool { _, ok := s.producers[id]; return ok })
	s.producers[id] = &producer{id: id, name: req.GetProducerName(), topic: name}
	t.producers[req.GetProducerName()] = id
	s.cfg.logger.Debug("danubetest producer created", "topic", name, "producer", req.GetProducerName(), "id", id)
	return &danubepb.ProducerResponse{RequestId: req.GetRequestId(), ProducerId: id, ProducerName: req.GetProducerName()}, nil
}

func (p producerSvc) SendMessage(_ context.Context, req *danubepb.StreamMessage) (*danubepb.MessageResponse, error) {
	s := p.s
	c := s.cluster
	if req.GetMsgId() == nil {
		return nil, status.Error(codes.InvalidArgument, "msg_id is required")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	pid := req.GetMsgId().GetProducerId()
	pr := s.producers[pid]
	if pr == nil {
		return nil, status.Errorf(codes.NotFound, "The producer with id %d does not exist", pid)
	}
	name := req.GetMsgId().GetTopicName()
	if n := len(req.GetPayload()); n > s.cfg.maxMessageSize {
		return nil, status.Errorf(codes.InvalidArgument, "Message size %d exceeds maximum allowed %d for topic %s", n, s.cfg.maxMessageSize, name)
	}
	t := c.topics[name]
	switch {
	case t == nil || t.owner != s:
		return nil, status.Errorf(codes.PermissionDenied, "Unable to publish the message: Topic %s not found on this broker", name)
	case t.draining:
		return nil, status.Errorf(codes.PermissionDenied, "Unable to publish the message: Topic %s is draining or closed; retry lookup/moved", name)
	case pr.topic != name:
		return nil, status.Errorf(codes.PermissionDenied, "Unable to publish the message: Producer %d is not attached to topic %s", pid, name)
	}
	if err := s.checkMessageSchemaLocked(t, req); err != nil {
		return nil, err
	}
	c.storeLocked(t, req)
	if t.reliable {
		s.dispatchTopicLocked(t, nowFunc())
	} else {
		s.dispatchNonReliableLocked(t, req)
	}
	return &danubepb.MessageResponse{RequestId: req.GetRequestId()}, nil
}

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

type healthSvc struct {
	danubepb.UnimplementedHealthCheckServer
	s *Server
}

func (h healthSvc) HealthCheck(_ context.Context, req *danubepb.HealthCheckRequest) (*danubepb.HealthCheckResponse, error) {
	s := h.s
	s.cluster.mu.Lock()
	defer s.cluster.mu.Unlock()
	ok := false
	switch req.GetClient() {
	case danubepb.HealthCheckRequest_Producer:
		_, ok = s.producers[req.GetId()]
	case danubepb.HealthCheckRequest_Consumer:
		co := s.consumers[req.GetId()]
		ok = co != nil && co.active
	default:
		return nil, status.Error(codes.InvalidArgument, "Invalid client type")
	}
	st := danubepb.HealthCheckResponse_CLOSE
	if ok {
		st = danubepb.HealthCheckResponse_OK
	}
	return &danubepb.HealthCheckResponse{Status: st}, nil
}
