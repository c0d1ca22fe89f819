package danubetest

import (
	"bytes"
	"context"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"

	"github.com/benthos-danube/benthos-danube/internal/danubepb"
)

const (
	nonReliable = danubepb.DispatchStrategy_NonReliable
	reliable    = danubepb.DispatchStrategy_Reliable
)

func TestTopicNameValidation(t *testing.T) {
	s := NewTestServer(t)
	st := dial(t, s)
	ctx := testCtx(t)
	tests := []struct {
		name  string
		valid bool
	}{
		{"/default/", true}, // broker quirk: empty parts pass (first: it is a prefix of the others)
		{"/default/orders", true},
		{"/default/or-ders_1", true},
		{"/default/ümlaut", true},
		{"a/default/c", true}, // broker quirk: no leading slash passes
		{"/default/a.b", false},
		{"/default/a b", false},
		{"/default/a:b", false},
		{"/default/a/b", false},
		{"default", false},
		{"", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := st.createProducer(ctx, tc.name, "p", nonReliable)
			_, lerr := st.disc.TopicLookup(ctx, &danubepb.TopicLookupRequest{Topic: tc.name})
			_, perr := st.disc.TopicPartitions(ctx, &danubepb.TopicLookupRequest{Topic: tc.name})
			_, serr := st.subscribe(ctx, tc.name, "s", "c", danubepb.ConsumerRequest_Shared)
			if tc.valid {
				mustOK(t, err)
				mustOK(t, lerr)
				mustOK(t, perr)
				mustOK(t, serr)
				return
			}
			text := "The topic: " + tc.name + " has an invalid format, should be: /namespace_name/topic_name"
			for _, e := range []error{err, lerr, perr, serr} {
				wantCode(t, e, codes.InvalidArgument, text)
			}
		})
	}
}

func TestTopicCreation(t *testing.T) {
	tests := []struct {
		name  string
		opts  []Option
		topic string
		code  codes.Code
		text  string
	}{
		{"auto create", nil, "/default/a", codes.OK, ""},
		{"auto create off", []Option{WithAutoCreateTopics(false)}, "/default/a", codes.NotFound, "Unable to find the topic: /default/a"},
		{"missing namespace", nil, "/iot/a", codes.Unavailable,
			"Unable to find the namespace iot, the topic can be created only for an exisiting namespace"},
		{"added namespace", []Option{WithNamespaces("iot")}, "/iot/a", codes.OK, ""},
		{"system namespace", nil, "/system/a", codes.OK, ""},
		{"cluster mode", []Option{WithClusterMode(true)}, "/default/a", codes.Unavailable,
			"The topic metadata was created, need to redo the lookup to find the correct broker"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := NewTestServer(t, tc.opts...)
			st := dial(t, s)
			ctx := testCtx(t)
			_, err := st.createProducer(ctx, tc.topic, "p", nonReliable)
			wantCode(t, err, tc.code, tc.text)
			if tc.code == codes.Unavailable && strings.Contains(tc.text, "metadata") {
				// The retry succeeds, and lookup finds the topic.
				_, err = st.createProducer(ctx, tc.topic, "p", nonReliable)
				mustOK(t, err)
			}
		})
	}

	t.Run("create namespace later", func(t *testing.T) {
		s := NewTestServer(t)
		st := dial(t, s)
		ctx := testCtx(t)
		_, err := st.createProducer(ctx, "/later/t", "p", nonReliable)
		wantCode(t, err, codes.Unavailable, "namespace later")
		s.CreateNamespace("later")
		_, err = st.createProducer(ctx, "/later/t", "p", nonReliable)
		mustOK(t, err)
	})

	t.Run("strategy mismatch", func(t *testing.T) {
		s := NewTestServer(t)
		st := dial(t, s)
		ctx := testCtx(t)
		_, err := st.createProducer(ctx, "/default/r", "p", reliable)
		mustOK(t, err)
		_, err = st.createProducer(ctx, "/default/r", "q", nonReliable)
		wantCode(t, err, codes.FailedPrecondition, "Producer requested dispatch strategy does not match topic strategy")
		_, err = st.createProducer(ctx, "/default/x", "p", danubepb.DispatchStrategy(7))
		wantCode(t, err, codes.InvalidArgument, "Dispatch strategy is missing")
	})
}

func TestPartitions(t *testing.T) {
	s := NewTestServer(t)
	st := dial(t, s)
	ctx := testCtx(t)
	for i := range 12 {
		_, err := st.createProducer(ctx, "/default/orders-part-"+itoa(i), "p-"+itoa(i), nonReliable)
		mustOK(t, err)
	}
	_, err := st.createProducer(ctx, "/default/plain", "p", nonReliable)
	mustOK(t, err)

	tests := []struct {
		topic string
		want  []string
	}{
		{"/default/orders-part-3", []string{"/default/orders-part-3"}},
		{"/default/orders", []string{
			"/default/orders-part-0", "/default/orders-part-1", "/default/orders-part-10", "/default/orders-part-11",
			"/default/orders-part-2", "/default/orders-part-3", "/default/orders-part-4", "/default/orders-part-5",
			"/default/orders-part-6", "/default/orders-part-7", "/default/orders-part-8", "/default/orders-part-9"}},
		{"/default/plain", []string{"/default/plain"}},
		{"/default/pla", []string{"/default/plain"}}, // raw prefix quirk
		{"/default/unknown", []string{}},
	}
	for _, tc := range tests {
		t.Run(tc.topic, func(t *testing.T) {
			resp, err := st.disc.TopicPartitions(ctx, &danubepb.TopicLookupRequest{RequestId: 9, Topic: tc.topic})
			mustOK(t, err)
			if resp.GetRequestId() != 9 {
				t.Fatalf("request_id %d", resp.GetRequestId())
			}
			if !slices.Equal(resp.GetPartitions(), tc.want) && !(len(tc.want) == 0 && len(resp.GetPartitions()) == 0) {
				t.Fatalf("got %v want %v", resp.GetPartitions(), tc.want)
			}
		})
	}

	// Conflicts between partitioned and plain forms.
	_, err = st.createProducer(ctx, "/default/orders", "p", nonReliable)
	wantCode(t, err, codes.AlreadyExists, "")
	_, err = st.createProducer(ctx, "/default/plain-part-0", "p", nonReliable)
	wantCode(t, err, codes.AlreadyExists, "")

	p, err := st.createProducer(ctx, "/default/orders-part-2", "p-2", nonReliable)
	mustOK(t, err)
	mustOK(t, p.send(ctx, "x"))
	msgs := s.Messages("/default/orders-part-2")
	if len(msgs) != 1 || msgs[0].Partition != 2 || s.MessageCount("/default/orders-part-2") != 1 {
		t.Fatalf("messages %+v", msgs)
	}
	if s.Messages("/default/plain") != nil && len(s.Messages("/default/plain")) != 0 {
		t.Fatal("plain got messages")
	}
	if got := len(s.Topics()); got != 13 {
		t.Fatalf("topics %d", got)
	}
}

func itoa(i int) string { return strconv.Itoa(i) }

func TestRedirectBetweenBrokers(t *testing.T) {
	cl := NewCluster()
	a, err := cl.AddBroker()
	mustOK(t, err)
	t.Cleanup(a.Close)
	b, err := cl.AddBroker()
	mustOK(t, err)
	t.Cleanup(b.Close)
	sa, sb := dial(t, a), dial(t, b)
	ctx := testCtx(t)
	const topic = "/default/moving"

	_, err = sa.disc.TopicLookup(ctx, &danubepb.TopicLookupRequest{Topic: topic})
	wantCode(t, err, codes.NotFound, "Unable to find the requested topic: "+topic)

	pa, err := sa.createProducer(ctx, topic, "p", reliable)
	mustOK(t, err)
	mustOK(t, pa.send(ctx, "m0"))

	la, err := sa.disc.TopicLookup(ctx, &danubepb.TopicLookupRequest{RequestId: 5, Topic: topic})
	mustOK(t, err)
	if la.GetResponseType() != danubepb.TopicLookupResponse_Connect || la.GetBrokerUrl() != a.URL() || la.GetConnectUrl() != a.URL() || la.GetProxy() || la.GetRequestId() != 5 {
		t.Fatalf("lookup at owner: %+v", la)
	}
	lb, err := sb.disc.TopicLookup(ctx, &danubepb.TopicLookupRequest{Topic: topic})
	mustOK(t, err)
	if lb.GetResponseType() != danubepb.TopicLookupResponse_Redirect || lb.GetConnectUrl() != a.URL() {
		t.Fatalf("lookup at non-owner: %+v", lb)
	}
	_, err = sb.createProducer(ctx, topic, "p", reliable)
	wantCode(t, err, codes.Unavailable, "The topic exists but is served by another broker, redo the Lookup request")
	_, err = sb.subscribe(ctx, topic, "s", "c", danubepb.ConsumerRequest_Exclusive)
	wantCode(t, err, codes.Unavailable, "served by another broker")

	a.SetDraining(topic, true)
	wantCode(t, pa.send(ctx, "x"), codes.PermissionDenied,
		"Unable to publish the message: Topic "+topic+" is draining or closed; retry lookup/moved")

	a.MoveTopic(topic, b)
	hc, err := sa.hc.HealthCheck(ctx, &danubepb.HealthCheckRequest{Client: danubepb.HealthCheckRequest_Producer, Id: pa.id})
	mustOK(t, err)
	if hc.GetStatus() != danubepb.HealthCheckResponse_CLOSE {
		t.Fatal("health on old owner not CLOSE")
	}
	wantCode(t, pa.send(ctx, "x"), codes.NotFound, "does not exist")
	for _, st := range []*stubs{sa, sb} {
		l, err := st.disc.TopicLookup(ctx, &danubepb.TopicLookupRequest{Topic: topic})
		mustOK(t, err)
		if l.GetBrokerUrl() != b.URL() {
			t.Fatalf("lookup after move: %+v", l)
		}
	}
	pb, err := sb.createProducer(ctx, topic, "p", reliable)
	mustOK(t, err)
	mustOK(t, pb.send(ctx, "m1"))
	msgs := b.Messages(topic)
	if len(msgs) != 2 || msgs[1].Offset != 1 {
		t.Fatalf("offsets after move: %+v", msgs)
	}
}

func TestProxyLookup(t *testing.T) {
	s := NewTestServer(t, WithConnectURL("http://proxy:1234"))
	st := dial(t, s)
	ctx := testCtx(t)
	_, err := st.createProducer(ctx, "/default/t", "p", nonReliable)
	mustOK(t, err)
	l, err := st.disc.TopicLookup(ctx, &danubepb.TopicLookupRequest{Topic: "/default/t"})
	mustOK(t, err)
	if !l.GetProxy() || l.GetConnectUrl() != "http://proxy:1234" || l.GetBrokerUrl() != s.URL() {
		t.Fatalf("%+v", l)
	}
	if got := s.BrokerURLHeaders(); len(got) != 0 {
		t.Fatalf("headers recorded without any sent: %+v", got)
	}
	hctx := metadata.AppendToOutgoingContext(ctx, ProxyHeader, s.URL())
	_, err = st.disc.TopicLookup(hctx, &danubepb.TopicLookupRequest{Topic: "/default/t"})
	mustOK(t, err)
	_, err = st.createProducer(hctx, "/default/t", "p2", nonReliable)
	mustOK(t, err)
	want := []HeaderRecord{{RPC: "TopicLookup", Value: s.URL()}, {RPC: "CreateProducer", Value: s.URL()}}
	if got := s.BrokerURLHeaders(); !slices.Equal(got, want) {
		t.Fatalf("BrokerURLHeaders = %+v, want %+v", got, want)
	}
}

func TestProducers(t *testing.T) {
	s := NewTestServer(t, WithMaxMessageSize(10))
	st := dial(t, s)
	ctx := testCtx(t)
	p1, err := st.createProducer(ctx, "/default/a", "p", nonReliable)
	mustOK(t, err)
	p2, err := st.createProducer(ctx, "/default/a", "p", nonReliable)
	mustOK(t, err)
	if p1.id != p2.id || p1.id == 0 {
		t.Fatalf("not idempotent: %d %d", p1.id, p2.id)
	}
	p3, err := st.createProducer(ctx, "/default/a", "other", nonReliable)
	mustOK(t, err)
	if p3.id == p1.id {
		t.Fatal("same id for another name")
	}
	_, err = st.createProducer(ctx, "/default/b", "p", nonReliable)
	mustOK(t, err)

	tests := []struct {
		name    string
		msg     *danubepb.StreamMessage
		code    codes.Code
		text    string
		storeAt string
	}{
		{"ok", &danubepb.StreamMessage{RequestId: 7, MsgId: &danubepb.MsgID{ProducerId: p1.id, TopicName: "/default/a"}}, codes.OK, "", "/default/a"},
		{"unknown producer", &danubepb.StreamMessage{MsgId: &danubepb.MsgID{ProducerId: 42, TopicName: "/default/a"}},
			codes.NotFound, "The producer with id 42 does not exist", ""},
		{"other topic", &danubepb.StreamMessage{MsgId: &danubepb.MsgID{ProducerId: p1.id, TopicName: "/default/b"}},
			codes.PermissionDenied, "Unable to publish the message: ", ""},
		{"too big for policy", &danubepb.StreamMessage{Payload: make([]byte, 11), MsgId: &danubepb.MsgID{ProducerId: p1.id, TopicName: "/default/a"}},
			codes.InvalidArgument, "Message size 11 exceeds maximum allowed 10 for topic /default/a", ""},
		{"no msg_id", &danubepb.StreamMessage{}, codes.InvalidArgument, "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := st.prod.SendMessage(ctx, tc.msg)
			wantCode(t, err, tc.code, tc.text)
			if err == nil && resp.GetRequestId() != tc.msg.GetRequestId() {
				t.Fatalf("request id %d", resp.GetRequestId())
			}
		})
	}
	if s.TotalMessages() != 1 {
		t.Fatalf("total %d", s.TotalMessages())
	}
}

func TestOversizeRequest(t *testing.T) {
	s := NewTestServer(t)
	st := dial(t, s)
	ctx := testCtx(t)
	p, err := st.createProducer(ctx, "/default/big", "p", nonReliable)
	mustOK(t, err)
	tests := []struct {
		name string
		size int
		code codes.Code
	}{
		{"just under", MaxRequestBytes - 100, codes.OK},
		{"over 4 MiB", MaxRequestBytes + 1, codes.OutOfRange},
		{"way over", 8 << 20, codes.OutOfRange},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := &danubepb.StreamMessage{MsgId: &danubepb.MsgID{ProducerId: p.id, TopicName: p.topic}, Payload: make([]byte, tc.size)}
			_, err := st.prod.SendMessage(ctx, m)
			text := ""
			if tc.code == codes.OutOfRange {
				text = "Error, decoded message length too large: found " + itoa(proto.Size(m)) + " bytes, the limit is: 4194304 bytes"
			}
			wantCode(t, err, tc.code, text)
		})
	}
	if s.MessageCount("/default/big") != 1 {
		t.Fatalf("count %d", s.MessageCount("/default/big"))
	}
}

func TestAuth(t *testing.T) {
	s := NewTestServer(t, WithTokens("good"))
	st := dial(t, s)
	ctx := testCtx(t)
	tests := []struct {
		name   string
		header string
		code   codes.Code
		text   string
	}{
		{"missing", "", codes.Unauthenticated, "Authentication credentials are missing"},
		{"bad token", "Bearer nope", codes.Unauthenticated, "Invalid token"},
		{"bad prefix", "Basic good", codes.Unauthenticated, "Invalid token"},
		{"bearer", "Bearer good", codes.OK, ""},
		{"lower bearer", "bearer good", codes.OK, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := ctx
			if tc.header != "" {
				c = withToken(ctx, tc.header)
			}
			_, err := st.disc.TopicPartitions(c, &danubepb.TopicLookupRequest{Topic: "/default/x"})
			wantCode(t, err, tc.code, tc.text)
		})
	}
	got := s.Authorizations()
	want := []string{"Bearer nope", "Basic good", "Bearer good", "bearer good"}
	if !slices.Equal(got, want) {
		t.Fatalf("authorizations %q want %q", got, want)
	}
}

func TestHealthAndRestart(t *testing.T) {
	s := NewTestServer(t)
	st := dial(t, s)
	ctx := testCtx(t)
	p, err := st.createProducer(ctx, "/default/h", "p", nonReliable)
	mustOK(t, err)
	cid, err := st.subscribe(ctx, "/default/h", "s", "c", danubepb.ConsumerRequest_Shared)
	mustOK(t, err)
	r := st.receive(t, cid)
	waitAttached(t, s, cid)

	health := func(ct danubepb.HealthCheckRequest_ClientType, id uint64) danubepb.HealthCheckResponse_ClientStatus {
		t.Helper()
		resp, err := st.hc.HealthCheck(ctx, &danubepb.HealthCheckRequest{Client: ct, Id: id})
		mustOK(t, err)
		return resp.GetStatus()
	}
	if health(danubepb.HealthCheckRequest_Producer, p.id) != danubepb.HealthCheckResponse_OK ||
		health(danubepb.HealthCheckRequest_Consumer, cid) != danubepb.HealthCheckResponse_OK {
		t.Fatal("health not OK before restart")
	}
	if health(danubepb.HealthCheckRequest_Producer, 12345) != danubepb.HealthCheckResponse_CLOSE {
		t.Fatal("unknown id not CLOSE")
	}
	_, err = st.hc.HealthCheck(ctx, &danubepb.HealthCheckRequest{Client: 5, Id: p.id})
	wantCode(t, err, codes.InvalidArgument, "Invalid client type")

	s.Restart()
	if health(danubepb.HealthCheckRequest_Producer, p.id) != danubepb.HealthCheckResponse_CLOSE ||
		health(danubepb.HealthCheckRequest_Consumer, cid) != danubepb.HealthCheckResponse_CLOSE {
		t.Fatal("health not CLOSE after restart")
	}
	wantCode(t, p.send(ctx, "x"), codes.NotFound, "does not exist")
	select {
	case <-r.ch:
	case <-time.After(5 * time.Second):
		t.Fatal("stream did not end on restart")
	}
	wantCode(t, <-r.done, codes.Unavailable, "")
	stream, err := st.cons.ReceiveMessages(ctx, &danubepb.ReceiveRequest{ConsumerId: cid})
	mustOK(t, err)
	_, err = stream.Recv()
	wantCode(t, err, codes.NotFound, "The consumer with the id")

	// Recreate works and the topic is kept.
	p2, err := st.createProducer(ctx, "/default/h", "p", nonReliable)
	mustOK(t, err)
	mustOK(t, p2.send(ctx, "y"))
	if s.MessageCount("/default/h") != 1 {
		t.Fatal("topic lost")
	}
}

func TestStopStart(t *testing.T) {
	s := NewTestServer(t)
	st := dial(t, s)
	ctx := testCtx(t)
	addr := s.Addr()
	p, err := st.createProducer(ctx, "/default/ss", "p", nonReliable)
	mustOK(t, err)
	mustOK(t, p.send(ctx, "a"))
	s.Stop()
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	err = p.send(short, "b")
	cancel()
	if err == nil {
		t.Fatal("send succeeded while stopped")
	}
	mustOK(t, s.Start())
	if s.Addr() != addr {
		t.Fatalf("address changed %s → %s", addr, s.Addr())
	}
	st2 := dial(t, s)
	p.st = st2
	mustOK(t, p.send(ctx, "c")) // producers survive Stop/Start
	if s.MessageCount("/default/ss") != 2 {
		t.Fatalf("count %d", s.MessageCount("/default/ss"))
	}
}

func TestFailNextAndLatency(t *testing.T) {
	s := NewTestServer(t)
	st := dial(t, s)
	ctx := testCtx(t)
	s.FailNext("CreateProducer", 2, codes.Unavailable)
	for range 2 {
		_, err := st.createProducer(ctx, "/default/f", "p", nonReliable)
		wantCode(t, err, codes.Unavailable, "injected")
	}
	p, err := st.createProducer(ctx, "/default/f", "p", nonReliable)
	mustOK(t, err)
	s.FailNext("SendMessage", 1, codes.ResourceExhausted)
	wantCode(t, p.send(ctx, "a"), codes.ResourceExhausted, "")
	mustOK(t, p.send(ctx, "b"))
	if s.MessageCount("/default/f") != 1 {
		t.Fatal("failed send stored")
	}
	s.SetLatency(100 * time.Millisecond)
	start := time.Now()
	mustOK(t, p.send(ctx, "c"))
	if time.Since(start) < 100*time.Millisecond {
		t.Fatal("latency not applied")
	}
	s.SetLatency(0)
}

func TestSchemaRegistry(t *testing.T) {
	s := NewTestServer(t)
	st := dial(t, s)
	ctx := testCtx(t)
	reg := func(subject, def string) *danubepb.RegisterSchemaResponse {
		t.Helper()
		r, err := st.reg.RegisterSchema(ctx, &danubepb.RegisterSchemaRequest{Subject: subject, SchemaType: "json_schema", SchemaDefinition: []byte(def)})
		mustOK(t, err)
		return r
	}
	r1 := reg("orders", `{"type":"object"}`)
	r2 := reg("orders", `{"type":"object","x":1}`)
	r3 := reg("orders", `{"type":"object"}`)
	r4 := reg("other", `"s"`)
	if r1.GetVersion() != 1 || !r1.GetIsNewVersion() || r2.GetVersion() != 2 || r2.GetSchemaId() != r1.GetSchemaId() ||
		r3.GetVersion() != 1 || r3.GetIsNewVersion() || r4.GetSchemaId() == r1.GetSchemaId() {
		t.Fatalf("register: %v %v %v %v", r1, r2, r3, r4)
	}
	latest, err := st.reg.GetLatestSchema(ctx, &danubepb.GetLatestSchemaRequest{Subject: "orders"})
	mustOK(t, err)
	if latest.GetVersion() != 2 || latest.GetSchemaId() != r1.GetSchemaId() {
		t.Fatalf("latest %v", latest)
	}
	v1 := uint32(1)
	got, err := st.reg.GetSchema(ctx, &danubepb.GetSchemaRequest{SchemaId: r1.GetSchemaId(), Version: &v1})
	mustOK(t, err)
	if got.GetVersion() != 1 || !bytes.Equal(got.GetSchemaDefinition(), []byte(`{"type":"object"}`)) {
		t.Fatalf("get %v", got)
	}
	_, err = st.reg.GetLatestSchema(ctx, &danubepb.GetLatestSchemaRequest{Subject: "nope"})
	wantCode(t, err, codes.NotFound, "Schema not found for subject: nope")
	_, err = st.reg.GetSchema(ctx, &danubepb.GetSchemaRequest{SchemaId: 999})
	wantCode(t, err, codes.NotFound, "Schema not found for ID: 999")
	_, err = st.reg.ListVersions(ctx, &danubepb.ListVersionsRequest{Subject: "orders"})
	wantCode(t, err, codes.Unimplemented, "")

	create := func(topic, subject string) error {
		_, err := st.prod.CreateProducer(ctx, &danubepb.ProducerRequest{ProducerName: "p", TopicName: topic,
			SchemaRef: &danubepb.SchemaReference{Subject: subject, VersionRef: &danubepb.SchemaReference_UseLatest{UseLatest: true}}})
		return err
	}
	wantCode(t, create("/default/s1", "unregistered"), codes.FailedPrecondition, "Ensure schema is registered first")
	mustOK(t, create("/default/s2", "orders"))
	wantCode(t, create("/default/s2", "other"), codes.FailedPrecondition,
		"Topic '/default/s2' uses schema subject 'orders', cannot use 'other'")
}
