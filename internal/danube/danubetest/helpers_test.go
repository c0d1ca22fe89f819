package danubetest

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/benthos-danube/benthos-danube/internal/danubepb"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// stubs bundles the raw generated clients over one loopback connection.
type stubs struct {
	conn  *grpc.ClientConn
	prod  danubepb.ProducerServiceClient
	cons  danubepb.ConsumerServiceClient
	disc  danubepb.DiscoveryClient
	hc    danubepb.HealthCheckClient
	reg   danubepb.SchemaRegistryClient
	reqID uint64
}

func dial(t *testing.T, s *Server) *stubs {
	t.Helper()
	conn, err := grpc.NewClient(s.Addr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatalf("dial %s: %v", s.Addr(), err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return &stubs{
		conn: conn,
		prod: danubepb.NewProducerServiceClient(conn),
		cons: danubepb.NewConsumerServiceClient(conn),
		disc: danubepb.NewDiscoveryClient(conn),
		hc:   danubepb.NewHealthCheckClient(conn),
		reg:  danubepb.NewSchemaRegistryClient(conn),
	}
}

func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func withToken(ctx context.Context, v string) context.Context {
	return metadata.AppendToOutgoingContext(ctx, "authorization", v)
}

// wantCode fails unless err has code and (when text != "") contains text.
func wantCode(t *testing.T, err error, code codes.Code, text string) {
	t.Helper()
	st, _ := status.FromError(err)
	if st.Code() != code {
		t.Fatalf("got code %v (%v), want %v", st.Code(), err, code)
	}
	if text != "" && !strings.Contains(st.Message(), text) {
		t.Fatalf("got message %q, want it to contain %q", st.Message(), text)
	}
}

func mustOK(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("unexpected error: %v", err)
	}
}

type testProducer struct {
	st    *stubs
	id    uint64
	topic string
	name  string
	n     uint64
}

func (st *stubs) createProducer(ctx context.Context, topic, name string, ds danubepb.DispatchStrategy) (*testProducer, error) {
	st.reqID++
	resp, err := st.prod.CreateProducer(ctx, &danubepb.ProducerRequest{
		RequestId: st.reqID, ProducerName: name, TopicName: topic, DispatchStrategy: ds,
	})
	if err != nil {
		return nil, err
	}
	return &testProducer{st: st, id: resp.GetProducerId(), topic: topic, name: name}, nil
}

func (p *testProducer) send(ctx context.Context, payload string) error {
	p.n++
	_, err := p.st.prod.SendMessage(ctx, &danubepb.StreamMessage{
		RequestId:   p.n,
		MsgId:       &danubepb.MsgID{ProducerId: p.id, TopicName: p.topic, BrokerAddr: "http://x"},
		Payload:     []byte(payload),
		PublishTime: uint64(time.Now().UnixMilli()),
		Attributes:  map[string]string{"k": payload},
	})
	return err
}

func (st *stubs) subscribe(ctx context.Context, topic, sub, name string, typ danubepb.ConsumerRequest_SubscriptionType) (uint64, error) {
	st.reqID++
	resp, err := st.cons.Subscribe(ctx, &danubepb.ConsumerRequest{
		RequestId: st.reqID, TopicName: topic, ConsumerName: name, Subscription: sub, SubscriptionType: typ,
	})
	if err != nil {
		return 0, err
	}
	return resp.GetConsumerId(), nil
}

// receiver reads a ReceiveMessages stream into a channel.
type receiver struct {
	ch     chan *danubepb.StreamMessage
	done   chan error
	cancel context.CancelFunc
}

func (st *stubs) receive(t *testing.T, id uint64) *receiver {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	stream, err := st.cons.ReceiveMessages(ctx, &danubepb.ReceiveRequest{RequestId: 1, ConsumerId: id})
	if err != nil {
		cancel()
		t.Fatalf("ReceiveMessages: %v", err)
	}
	r := &receiver{ch: make(chan *danubepb.StreamMessage, 100), done: make(chan error, 1), cancel: cancel}
	go func() {
		for {
			m, err := stream.Recv()
			if err != nil {
				if errors.Is(err, io.EOF) {
					err = nil
				}
				r.done <- err
				close(r.ch)
				return
			}
			r.ch <- m
		}
	}()
	t.Cleanup(func() {
		cancel()
		for range r.ch {
		}
	})
	return r
}

func (r *receiver) next(t *testing.T, within time.Duration) *danubepb.StreamMessage {
	t.Helper()
	select {
	case m, ok := <-r.ch:
		if !ok {
			t.Fatalf("stream ended: %v", <-r.done)
		}
		return m
	case <-time.After(within):
		t.Fatalf("no message within %v", within)
	}
	return nil
}

func (r *receiver) none(t *testing.T, within time.Duration) {
	t.Helper()
	select {
	case m, ok := <-r.ch:
		if ok {
			t.Fatalf("unexpected message %q offset %d", m.GetPayload(), m.GetMsgId().GetTopicOffset())
		}
	case <-time.After(within):
	}
}

func (st *stubs) ack(ctx context.Context, sub string, m *danubepb.StreamMessage) error {
	_, err := st.cons.Ack(ctx, &danubepb.AckRequest{RequestId: m.GetRequestId(), MsgId: m.GetMsgId(), SubscriptionName: sub})
	return err
}

func (st *stubs) nack(ctx context.Context, sub string, m *danubepb.StreamMessage, delayMs *uint64) error {
	_, err := st.cons.Nack(ctx, &danubepb.NackRequest{RequestId: m.GetRequestId(), MsgId: m.GetMsgId(), SubscriptionName: sub, DelayMs: delayMs})
	return err
}
