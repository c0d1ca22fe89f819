package danubetest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/benthos-danube/benthos-danube/internal/danubepb"
)

type subject struct {
	name     string
	id       uint64
	typ      string
	versions []schemaVersion // versions[i] is version i+1
}

type schemaVersion struct {
	definition  []byte
	fingerprint string
	description string
	createdBy   string
	createdAt   uint64
	tags        []string
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
	for i, v := range subj.versions {
		if v.fingerprint == fp && bytes.Equal(v.definition, req.GetSchemaDefinition()) {
			return &danubepb.RegisterSchemaResponse{SchemaId: subj.id, Version: uint32(i + 1), IsNewVersion: false, Fingerprint: fp}, nil
		}
	}
	subj.typ = typ
	subj.versions = append(subj.versions, schemaVersion{
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
