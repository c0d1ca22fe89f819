package danubetest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/benthos-danube/benthos-danube/internal/danubepb"
)

type subject struct {
	name     string
	id       uint64
	typ      string
	versions []*schemaVersion // versions[i] is version i+1
	// registerCalls counts the RegisterSchema calls that named this subject
	// (identical re-registrations included).
	registerCalls int
}

type schemaVersion struct {
	definition  []byte
	fingerprint string
	description string
	createdBy   string
	createdAt   uint64
	tags        []string

	// The JSON Schema compiled on first use by payload validation (json_schema
	// subjects only), or the reason it does not compile.
	compiled   *jsonschema.Schema
	compileErr error
}

var schemaTypes = map[string]string{
	"bytes": "bytes", "string": "string", "number": "number", "int": "number", "int64": "number",
	"float": "number", "double": "number", "avro": "avro", "json_schema": "json_schema", "json": "json_schema",
	"protobuf": "protobuf", "proto": "protobuf",
}

type schemaSvc struct {
	danubepb.UnimplementedSchemaRegistryServer
	s *Server
}

func (r schemaSvc) RegisterSchema(_ context.Context, req *danubepb.RegisterSchemaRequest) (*danubepb.RegisterSchemaResponse, error) {
	if req.GetSubject() == "" {
		return nil, status.Error(codes.InvalidArgument, "Subject must not be empty")
	}
	typ, ok := schemaTypes[strings.ToLower(req.GetSchemaType())]
	if !ok {
		return nil, status.Errorf(codes.Internal, "Failed to register schema: unsupported schema type %q", req.GetSchemaType())
	}
	sum := sha256.Sum256(req.GetSchemaDefinition())
	fp := hex.EncodeToString(sum[:])
	c := r.s.cluster
	c.mu.Lock()
	defer c.mu.Unlock()
	subj := c.schemas[req.GetSubject()]
	if subj == nil {
		c.nextSchema++
		subj = &subject{name: req.GetSubject(), id: c.nextSchema, typ: typ}
		c.schemas[subj.name] = subj
		c.schemaByID[subj.id] = subj
	}
	subj.registerCalls++
	for i, v := range subj.versions {
		if v.fingerprint == fp && bytes.Equal(v.definition, req.GetSchemaDefinition()) {
			return &danubepb.RegisterSchemaResponse{SchemaId: subj.id, Version: uint32(i + 1), IsNewVersion: false, Fingerprint: fp}, nil
		}
	}
	subj.typ = typ
	subj.versions = append(subj.versions, &schemaVersion{
		definition:  slices.Clone(req.GetSchemaDefinition()),
		fingerprint: fp,
		description: req.GetDescription(),
		createdBy:   req.GetCreatedBy(),
		createdAt:   uint64(time.Now().Unix()),
		tags:        slices.Clone(req.GetTags()),
	})
	return &danubepb.RegisterSchemaResponse{SchemaId: subj.id, Version: uint32(len(subj.versions)), IsNewVersion: true, Fingerprint: fp}, nil
}

func schemaResponse(subj *subject, version int) *danubepb.GetSchemaResponse {
	v := subj.versions[version-1]
	return &danubepb.GetSchemaResponse{
		SchemaId:          subj.id,
		Version:           uint32(version),
		Subject:           subj.name,
		SchemaType:        subj.typ,
		SchemaDefinition:  slices.Clone(v.definition),
		Description:       v.description,
		CreatedAt:         v.createdAt,
		CreatedBy:         v.createdBy,
		Tags:              slices.Clone(v.tags),
		Fingerprint:       v.fingerprint,
		CompatibilityMode: "backward",
	}
}

func (r schemaSvc) GetLatestSchema(_ context.Context, req *danubepb.GetLatestSchemaRequest) (*danubepb.GetSchemaResponse, error) {
	c := r.s.cluster
	c.mu.Lock()
	defer c.mu.Unlock()
	subj := c.schemas[req.GetSubject()]
	if subj == nil || len(subj.versions) == 0 {
		return nil, status.Errorf(codes.NotFound, "Schema not found for subject: %s", req.GetSubject())
	}
	return schemaResponse(subj, len(subj.versions)), nil
}

func (r schemaSvc) GetSchema(_ context.Context, req *danubepb.GetSchemaRequest) (*danubepb.GetSchemaResponse, error) {
	c := r.s.cluster
	c.mu.Lock()
	defer c.mu.Unlock()
	subj := c.schemaByID[req.GetSchemaId()]
	if subj == nil || len(subj.versions) == 0 {
		return nil, status.Errorf(codes.NotFound, "Schema not found for ID: %d", req.GetSchemaId())
	}
	v := len(subj.versions)
	if req.Version != nil {
		v = int(*req.Version)
		if v < 1 || v > len(subj.versions) {
			return nil, status.Errorf(codes.NotFound, "Schema version %d not found for ID: %d", v, req.GetSchemaId())
		}
	}
	return schemaResponse(subj, v), nil
}

// Topic validation policies (ConfigureTopicSchema, UpdateTopicValidationPolicy).
const (
	PolicyNone    = "none"
	PolicyWarn    = "warn"
	PolicyEnforce = "enforce"
)

// topicPolicy is a topic's schema validation configuration. A topic without
// one has the broker's default: warn, payload validation off.
type topicPolicy struct {
	validation        string
	payloadValidation bool
	warnings          int // messages that failed a check under warn
}

func policyOf(t *topic) topicPolicy {
	if t.policy == nil {
		return topicPolicy{validation: PolicyWarn}
	}
	return *t.policy
}

func parsePolicy(p string) (string, bool) {
	switch strings.ToLower(strings.TrimSpace(p)) {
	case PolicyNone:
		return PolicyNone, true
	case PolicyWarn, "":
		return PolicyWarn, true
	case PolicyEnforce:
		return PolicyEnforce, true
	}
	return "", false
}

// adminTopicsLocked returns the topic name and, for a partitioned topic
// given by its base name, every partition.
func (c *Cluster) adminTopicsLocked(name string) []*topic {
	if t := c.topics[name]; t != nil {
		return []*topic{t}
	}
	var out []*topic
	for _, other := range slices.Sorted(maps.Keys(c.topics)) {
		if t := c.topics[other]; t.partition >= 0 && strings.HasPrefix(other, name+"-part-") {
			out = append(out, t)
		}
	}
	return out
}

// configureTopicLocked sets a topic's subject (when subject is not "") and
// validation policy, as the admin RPCs do.
func (c *Cluster) configureTopicLocked(name, subject, policy string, payloadValidation bool) error {
	pol, ok := parsePolicy(policy)
	if !ok {
		return status.Errorf(codes.InvalidArgument, "Invalid validation policy '%s': expected none, warn or enforce", policy)
	}
	ts := c.adminTopicsLocked(name)
	if len(ts) == 0 {
		return status.Errorf(codes.NotFound, "Topic not found: %s", name)
	}
	if subject != "" {
		if subj := c.schemas[subject]; subj == nil || len(subj.versions) == 0 {
			return status.Errorf(codes.FailedPrecondition, "Schema not found for subject: %s. Ensure schema is registered first.", subject)
		}
	}
	for _, t := range ts {
		if subject != "" {
			t.subject = subject
		}
		warnings := 0
		if t.policy != nil {
			warnings = t.policy.warnings
		}
		t.policy = &topicPolicy{validation: pol, payloadValidation: payloadValidation, warnings: warnings}
	}
	return nil
}

// SetTopicSchemaPolicy configures a topic's schema validation as Danube's
// admin API does (ConfigureTopicSchema): subject, when not "", becomes the
// topic's subject (it must be registered); policy is "none", "warn" (the
// default of every topic) or "enforce"; payloadValidation makes the broker
// validate each payload against the schema version the message names. With
// "enforce" a message that fails a check is refused with PermissionDenied
// "Unable to publish the message: Schema validation failed: …"; with "warn"
// it is stored and counted (SchemaWarnings). The topic (or, for a base name,
// its partitions) must exist.
func (s *Server) SetTopicSchemaPolicy(topicName, subject, policy string, payloadValidation bool) error {
	c := s.cluster
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.configureTopicLocked(topicName, subject, policy, payloadValidation)
}

// SchemaWarnings returns how many messages on the exact topic or partition
// failed a schema check that its "warn" policy only logged.
func (s *Server) SchemaWarnings(topicName string) int {
	c := s.cluster
	c.mu.Lock()
	defer c.mu.Unlock()
	if t := c.topics[topicName]; t != nil && t.policy != nil {
		return t.policy.warnings
	}
	return 0
}

// SchemaRegistrations returns how many RegisterSchema calls named subject,
// identical re-registrations included.
func (s *Server) SchemaRegistrations(subject string) int {
	c := s.cluster
	c.mu.Lock()
	defer c.mu.Unlock()
	if subj := c.schemas[subject]; subj != nil {
		return subj.registerCalls
	}
	return 0
}

// checkMessageSchemaLocked applies the topic's validation policy to a
// message SendMessage is about to store (protocol §4.13). It returns the
// PermissionDenied status that refuses the message, or nil.
func (s *Server) checkMessageSchemaLocked(t *topic, m *danubepb.StreamMessage) error {
	c := s.cluster
	pol := policyOf(t)
	if pol.validation == PolicyNone {
		return nil
	}
	var subj *subject
	if sid := m.SchemaId; sid != nil && t.subject != "" {
		if subj = c.schemaByID[*sid]; subj == nil {
			// Refused even under warn.
			return status.Errorf(codes.PermissionDenied, "Unable to publish the message: Schema ID %d not found in registry", *sid)
		}
	}
	var problem string
	switch {
	case t.subject == "":
		if pol.validation != PolicyEnforce {
			return nil
		}
		problem = fmt.Sprintf("topic %s has no schema subject", t.name)
	case m.SchemaId == nil:
		problem = fmt.Sprintf("message has no schema_id, topic %s uses schema subject '%s'", t.name, t.subject)
	case subj.name != t.subject:
		problem = fmt.Sprintf("schema_id %d belongs to subject '%s', topic %s uses '%s'", subj.id, subj.name, t.name, t.subject)
	case pol.payloadValidation:
		if err := validatePayload(subj, m); err != nil {
			problem = err.Error()
		}
	}
	if problem == "" {
		return nil
	}
	if pol.validation == PolicyEnforce {
		return status.Errorf(codes.PermissionDenied, "Unable to publish the message: Schema validation failed: %s", problem)
	}
	if t.policy == nil {
		t.policy = &topicPolicy{validation: PolicyWarn}
	}
	t.policy.warnings++
	s.cfg.logger.Warn("danubetest schema validation failed (policy warn, message stored)", "topic", t.name, "problem", problem)
	return nil
}

// validatePayload checks m's payload against the version of subj it names
// (the latest when it names none), as the broker's validators do: JSON
// Schema for json_schema, UTF-8 for string, 4 or 8 bytes for number (the
// broker's NumberValidator), anything for bytes. Avro and Protobuf payloads
// are not checked by this test broker.
func validatePayload(subj *subject, m *danubepb.StreamMessage) error {
	n := len(subj.versions)
	if m.SchemaVersion != nil {
		n = int(*m.SchemaVersion)
	}
	if n < 1 || n > len(subj.versions) {
		return fmt.Errorf("schema version %d of subject '%s' not found", n, subj.name)
	}
	v := subj.versions[n-1]
	payload := m.GetPayload()
	switch subj.typ {
	case "string":
		if !utf8.Valid(payload) {
			return errors.New("payload is not valid UTF-8 (schema type string)")
		}
	case "number":
		if len(payload) != 4 && len(payload) != 8 {
			return fmt.Errorf("payload of %d bytes is not a 4- or 8-byte number (schema type number)", len(payload))
		}
	case "json_schema":
		sch, err := v.jsonSchema(subj.name, n)
		if err != nil {
			return err
		}
		inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(payload))
		if err != nil {
			return fmt.Errorf("payload is not valid JSON: %v", err)
		}
		if err := sch.Validate(inst); err != nil {
			return fmt.Errorf("payload does not match subject '%s' version %d: %s", subj.name, n, strings.Join(strings.Fields(err.Error()), " "))
		}
	}
	return nil
}

// jsonSchema compiles the version's definition once.
func (v *schemaVersion) jsonSchema(subject string, n int) (*jsonschema.Schema, error) {
	if v.compiled != nil || v.compileErr != nil {
		return v.compiled, v.compileErr
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(v.definition))
	if err == nil {
		url := fmt.Sprintf("https://danubetest.invalid/schemas/%s/%d.json", subject, n)
		comp := jsonschema.NewCompiler()
		if err = comp.AddResource(url, doc); err == nil {
			v.compiled, err = comp.Compile(url)
		}
	}
	if err != nil {
		v.compileErr = fmt.Errorf("subject '%s' version %d is not a valid JSON Schema: %v", subject, n, err)
	}
	return v.compiled, v.compileErr
}

func (r schemaSvc) ConfigureTopicSchema(_ context.Context, req *danubepb.ConfigureTopicSchemaRequest) (*danubepb.ConfigureTopicSchemaResponse, error) {
	if req.GetSchemaSubject() == "" {
		return nil, status.Error(codes.InvalidArgument, "Schema subject must not be empty")
	}
	c := r.s.cluster
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.configureTopicLocked(req.GetTopicName(), req.GetSchemaSubject(), req.GetValidationPolicy(), req.GetEnablePayloadValidation()); err != nil {
		return nil, err
	}
	return &danubepb.ConfigureTopicSchemaResponse{Success: true, Message: "Topic schema configured"}, nil
}

func (r schemaSvc) UpdateTopicValidationPolicy(_ context.Context, req *danubepb.UpdateTopicValidationPolicyRequest) (*danubepb.UpdateTopicValidationPolicyResponse, error) {
	c := r.s.cluster
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.configureTopicLocked(req.GetTopicName(), "", req.GetValidationPolicy(), req.GetEnablePayloadValidation()); err != nil {
		return nil, err
	}
	return &danubepb.UpdateTopicValidationPolicyResponse{Success: true, Message: "Validation policy updated"}, nil
}

func (r schemaSvc) GetTopicSchemaConfig(_ context.Context, req *danubepb.GetTopicSchemaConfigRequest) (*danubepb.GetTopicSchemaConfigResponse, error) {
	c := r.s.cluster
	c.mu.Lock()
	defer c.mu.Unlock()
	ts := c.adminTopicsLocked(req.GetTopicName())
	if len(ts) == 0 {
		return nil, status.Errorf(codes.NotFound, "Topic not found: %s", req.GetTopicName())
	}
	t := ts[0]
	pol := policyOf(t)
	resp := &danubepb.GetTopicSchemaConfigResponse{SchemaSubject: t.subject, ValidationPolicy: pol.validation, EnablePayloadValidation: pol.payloadValidation}
	if subj := c.schemas[t.subject]; subj != nil {
		resp.SchemaId = subj.id
	}
	return resp, nil
}
