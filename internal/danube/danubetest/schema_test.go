package danubetest

import (
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/benthos-danube/benthos-danube/internal/danubepb"
)

// schemaProducer creates a producer bound to subject on topic and returns a
// send function stamping schema id and version (nil: not stamped).
func schemaProducer(t *testing.T, st *stubs, topic, subject string) func(payload string, id *uint64, version *uint32) error {
	t.Helper()
	ctx := testCtx(t)
	st.reqID++
	resp, err := st.prod.CreateProducer(ctx, &danubepb.ProducerRequest{
		RequestId: st.reqID, ProducerName: "p-" + subject, TopicName: topic,
		SchemaRef: &danubepb.SchemaReference{Subject: subject, VersionRef: &danubepb.SchemaReference_UseLatest{UseLatest: true}},
	})
	mustOK(t, err)
	n := uint64(0)
	return func(payload string, id *uint64, version *uint32) error {
		n++
		_, err := st.prod.SendMessage(ctx, &danubepb.StreamMessage{
			RequestId: n, MsgId: &danubepb.MsgID{ProducerId: resp.GetProducerId(), TopicName: topic},
			Payload: []byte(payload), PublishTime: uint64(time.Now().UnixMilli()),
			SchemaId: id, SchemaVersion: version,
		})
		return err
	}
}

func register(t *testing.T, st *stubs, subject, typ, def string) (uint64, uint32) {
	t.Helper()
	r, err := st.reg.RegisterSchema(testCtx(t), &danubepb.RegisterSchemaRequest{Subject: subject, SchemaType: typ, SchemaDefinition: []byte(def)})
	mustOK(t, err)
	return r.GetSchemaId(), r.GetVersion()
}

const tempSchema = `{"type":"object","properties":{"temp":{"type":"number"}},"required":["temp"]}`

// TestTopicValidationPolicy: the policy and payload validation set through
// the admin RPCs decide what SendMessage refuses (PermissionDenied) and what
// it only counts.
func TestTopicValidationPolicy(t *testing.T) {
	type send struct {
		payload  string
		noID     bool // send without schema_id
		otherID  bool // stamp the id of another subject
		wantCode codes.Code
		wantText string
	}
	tests := []struct {
		name         string
		policy       string // "" keeps the default
		payload      bool
		sends        []send
		wantWarnings int
	}{
		{name: "default warn without payload validation", sends: []send{
			{payload: `{"temp":"hot"}`},
			{payload: `not json`},
			{payload: `{"temp":1}`, noID: true},
		}, wantWarnings: 1},
		{name: "warn with payload validation", policy: "warn", payload: true, sends: []send{
			{payload: `{"temp":"hot"}`},
			{payload: `{"temp":1}`},
		}, wantWarnings: 1},
		{name: "enforce with payload validation", policy: "ENFORCE", payload: true, sends: []send{
			{payload: `{"temp":21.5}`},
			{payload: `{"temp":"hot"}`, wantCode: codes.PermissionDenied, wantText: "Unable to publish the message: Schema validation failed: payload does not match subject 'temps' version 1"},
			{payload: `not json`, wantCode: codes.PermissionDenied, wantText: "payload is not valid JSON"},
			{payload: `{"temp":1}`, noID: true, wantCode: codes.PermissionDenied, wantText: "message has no schema_id"},
			{payload: `{"temp":1}`, otherID: true, wantCode: codes.PermissionDenied, wantText: "belongs to subject 'names'"},
			{payload: `{"temp":2}`},
		}},
		{name: "enforce without payload validation", policy: "enforce", sends: []send{
			{payload: `{"temp":"hot"}`},
			{payload: `{"temp":1}`, noID: true, wantCode: codes.PermissionDenied, wantText: "no schema_id"},
		}},
		{name: "none", policy: "none", payload: true, sends: []send{
			{payload: `{"temp":"hot"}`, noID: true},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := NewTestServer(t)
			st := dial(t, s)
			ctx := testCtx(t)
			id, v := register(t, st, "temps", "json_schema", tempSchema)
			otherID, _ := register(t, st, "names", "string", "")
			const topic = "/default/temps"
			mustOK(t, s.CreateTopic(topic, false))
			sendFn := schemaProducer(t, st, topic, "temps")
			if tc.policy != "" {
				_, err := st.reg.UpdateTopicValidationPolicy(ctx, &danubepb.UpdateTopicValidationPolicyRequest{
					TopicName: topic, ValidationPolicy: tc.policy, EnablePayloadValidation: tc.payload})
				mustOK(t, err)
			}
			stored := 0
			for i, sd := range tc.sends {
				sid, sv := &id, &v
				switch {
				case sd.noID:
					sid, sv = nil, nil
				case sd.otherID:
					sid = &otherID
				}
				err := sendFn(sd.payload, sid, sv)
				if sd.wantCode == codes.OK {
					mustOK(t, err)
					stored++
					continue
				}
				t.Logf("send %d: %v", i, err)
				wantCode(t, err, sd.wantCode, sd.wantText)
			}
			if got := s.MessageCount(topic); got != stored {
				t.Fatalf("stored %d messages, want %d", got, stored)
			}
			if got := s.SchemaWarnings(topic); got != tc.wantWarnings {
				t.Fatalf("SchemaWarnings = %d, want %d", got, tc.wantWarnings)
			}
		})
	}
}

// TestTopicSchemaAdmin: ConfigureTopicSchema assigns a subject and policy
// (to every partition of a base name), GetTopicSchemaConfig reads them back,
// and bad requests get the codes the admin API answers.
func TestTopicSchemaAdmin(t *testing.T) {
	s := NewTestServer(t)
	st := dial(t, s)
	ctx := testCtx(t)
	id, _ := register(t, st, "temps", "json_schema", tempSchema)
	for _, p := range []string{"/default/parts-part-0", "/default/parts-part-1"} {
		mustOK(t, s.CreateTopic(p, false))
	}
	_, err := st.reg.ConfigureTopicSchema(ctx, &danubepb.ConfigureTopicSchemaRequest{
		TopicName: "/default/parts", SchemaSubject: "temps", ValidationPolicy: "enforce", EnablePayloadValidation: true})
	mustOK(t, err)
	for _, p := range []string{"/default/parts-part-0", "/default/parts-part-1"} {
		cfg, err := st.reg.GetTopicSchemaConfig(ctx, &danubepb.GetTopicSchemaConfigRequest{TopicName: p})
		mustOK(t, err)
		if cfg.GetSchemaSubject() != "temps" || cfg.GetValidationPolicy() != "enforce" || !cfg.GetEnablePayloadValidation() || cfg.GetSchemaId() != id {
			t.Fatalf("%s config = %v", p, cfg)
		}
	}
	// A producer naming another subject is refused: the admin set it.
	_, err = st.prod.CreateProducer(ctx, &danubepb.ProducerRequest{ProducerName: "x", TopicName: "/default/parts-part-0",
		SchemaRef: &danubepb.SchemaReference{Subject: "other", VersionRef: &danubepb.SchemaReference_UseLatest{UseLatest: true}}})
	wantCode(t, err, codes.FailedPrecondition, "uses schema subject 'temps'")
	// A producer without schema on an enforce topic can be created, but its
	// messages are refused.
	p, err := st.createProducer(ctx, "/default/parts-part-1", "plain", danubepb.DispatchStrategy_NonReliable)
	mustOK(t, err)
	wantCode(t, p.send(ctx, `{"temp":1}`), codes.PermissionDenied, "Schema validation failed")

	_, err = st.reg.ConfigureTopicSchema(ctx, &danubepb.ConfigureTopicSchemaRequest{TopicName: "/default/parts", SchemaSubject: "temps", ValidationPolicy: "strict"})
	wantCode(t, err, codes.InvalidArgument, "Invalid validation policy")
	_, err = st.reg.ConfigureTopicSchema(ctx, &danubepb.ConfigureTopicSchemaRequest{TopicName: "/default/nope", SchemaSubject: "temps", ValidationPolicy: "warn"})
	wantCode(t, err, codes.NotFound, "Topic not found")
	_, err = st.reg.ConfigureTopicSchema(ctx, &danubepb.ConfigureTopicSchemaRequest{TopicName: "/default/parts", SchemaSubject: "unregistered", ValidationPolicy: "warn"})
	wantCode(t, err, codes.FailedPrecondition, "Ensure schema is registered first")
	_, err = st.reg.GetTopicSchemaConfig(ctx, &danubepb.GetTopicSchemaConfigRequest{TopicName: "/default/nope"})
	wantCode(t, err, codes.NotFound, "")

	// The Go-level setter does the same; an enforce topic without subject
	// refuses everything.
	mustOK(t, s.CreateTopic("/default/bare", false))
	mustOK(t, s.SetTopicSchemaPolicy("/default/bare", "", PolicyEnforce, false))
	bare, err := st.createProducer(ctx, "/default/bare", "b", danubepb.DispatchStrategy_NonReliable)
	mustOK(t, err)
	wantCode(t, bare.send(ctx, "x"), codes.PermissionDenied, "has no schema subject")
	if err := s.SetTopicSchemaPolicy("/default/bare", "", "sometimes", false); err == nil {
		t.Fatal("SetTopicSchemaPolicy accepted an unknown policy")
	}
}

// TestPayloadValidatorsByType: string payloads must be UTF-8, number
// payloads 4 or 8 bytes (Danube's NumberValidator, which refuses the JSON
// text the Rust connector sends), bytes anything; a json_schema subject
// whose definition does not compile refuses every payload under enforce.
func TestPayloadValidatorsByType(t *testing.T) {
	tests := []struct {
		typ, def string
		ok, bad  []string
	}{
		{"string", "", []string{"hello", ""}, []string{"\xff\xfe"}},
		{"number", "", []string{"12345678", "1234"}, []string{"42", ""}},
		{"bytes", "", []string{"\xff", ""}, nil},
		{"json_schema", `"not a schema"`, nil, []string{`{}`}},
	}
	for _, tc := range tests {
		t.Run(tc.typ, func(t *testing.T) {
			s := NewTestServer(t)
			st := dial(t, s)
			id, v := register(t, st, "subj", tc.typ, tc.def)
			const topic = "/default/typed"
			mustOK(t, s.CreateTopic(topic, false))
			send := schemaProducer(t, st, topic, "subj")
			mustOK(t, s.SetTopicSchemaPolicy(topic, "subj", PolicyEnforce, true))
			for _, p := range tc.ok {
				mustOK(t, send(p, &id, &v))
			}
			for _, p := range tc.bad {
				wantCode(t, send(p, &id, &v), codes.PermissionDenied, "Schema validation failed")
			}
		})
	}
}

// TestSchemaRegistrations counts RegisterSchema calls per subject.
func TestSchemaRegistrations(t *testing.T) {
	s := NewTestServer(t)
	st := dial(t, s)
	register(t, st, "a", "json_schema", `{}`)
	register(t, st, "a", "json_schema", `{}`)
	register(t, st, "b", "string", "")
	if got := s.SchemaRegistrations("a"); got != 2 {
		t.Fatalf("SchemaRegistrations(a) = %d, want 2", got)
	}
	if got := s.SchemaRegistrations("b"); got != 1 {
		t.Fatalf("SchemaRegistrations(b) = %d, want 1", got)
	}
	if got := s.SchemaRegistrations("c"); got != 0 {
		t.Fatalf("SchemaRegistrations(c) = %d, want 0", got)
	}
}
