package danubetest

import (
	"context"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/benthos-danube/benthos-danube/internal/danubepb"
)

// healthSvc serves danube.HealthCheck: OK for a live producer or active
// consumer, CLOSE for one the broker no longer knows (e.g. after Restart).
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
