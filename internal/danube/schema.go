package danube

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"google.golang.org/grpc/codes"

	pb "github.com/benthos-danube/benthos-danube/internal/danubepb"
)

// SchemaRef references a schema-registry subject from a producer.
// PinnedVersion > 0 pins that version; otherwise MinVersion > 0 requires the
// latest version to be at least MinVersion; otherwise the latest is used.
type SchemaRef struct {
	Subject       string
	PinnedVersion uint32 // 0 = latest
	MinVersion    uint32
}

func (s *SchemaRef) proto() *pb.SchemaReference {
	if s == nil {
		return nil
	}
	r := &pb.SchemaReference{Subject: s.Subject}
	switch {
	case s.PinnedVersion > 0:
		r.VersionRef = &pb.SchemaReference_PinnedVersion{PinnedVersion: s.PinnedVersion}
	case s.MinVersion > 0:
		r.VersionRef = &pb.SchemaReference_MinVersion{MinVersion: s.MinVersion}
	default:
		r.VersionRef = &pb.SchemaReference_UseLatest{UseLatest: true}
	}
	return r
}

func (c *Client) schemaClient() (pb.SchemaRegistryClient, error) {
	cc, err := c.conn(c.serviceAddr)
	if err != nil {
		return nil, err
	}
	return pb.NewSchemaRegistryClient(cc), nil
}

// RegisterSchema registers definition under subject. schemaType is one of
// "bytes", "string", "number", "avro", "json_schema", "protobuf". Registering
// an identical definition again returns the existing id and version.
func (c *Client) RegisterSchema(ctx context.Context, subject, schemaType string, definition []byte) (id uint64, version uint32, err error) {
	sc, err := c.schemaClient()
	if err != nil {
		return 0, 0, err
	}
	resp, err := sc.RegisterSchema(ctx, &pb.RegisterSchemaRequest{
		Subject: subject, SchemaType: schemaType, SchemaDefinition: definition, CreatedBy: "benthos-danube",
	})
	if err != nil {
		return 0, 0, newError(subject, "RegisterSchema", err)
	}
	return resp.GetSchemaId(), resp.GetVersion(), nil
}

// LatestSchema returns the schema id and latest version of subject.
func (c *Client) LatestSchema(ctx context.Context, subject string) (id uint64, version uint32, err error) {
	sc, err := c.schemaClient()
	if err != nil {
		return 0, 0, err
	}
	resp, err := sc.GetLatestSchema(ctx, &pb.GetLatestSchemaRequest{Subject: subject})
	if err != nil {
		return 0, 0, newError(subject, "GetLatestSchema", err)
	}
	return resp.GetSchemaId(), resp.GetVersion(), nil
}

// resolveSchema resolves a producer's schema reference to the (schema_id,
// version) stamped on each message (protocol §4.13).
func (c *Client) resolveSchema(ctx context.Context, ref *SchemaRef) (uint64, uint32, error) {
	id, latest, err := c.LatestSchema(ctx, ref.Subject)
	if err != nil {
		return 0, 0, err
	}
	switch {
	case ref.PinnedVersion > 0:
		if ref.PinnedVersion > latest {
			return 0, 0, &Error{Topic: ref.Subject, RPC: "GetLatestSchema", Code: codes.FailedPrecondition, permanent: true,
				Err: fmt.Errorf("pinned schema version %d of subject %q does not exist (latest is %d)", ref.PinnedVersion, ref.Subject, latest)}
		}
		if ref.PinnedVersion == latest {
			return id, latest, nil
		}
		sc, err := c.schemaClient()
		if err != nil {
			return 0, 0, err
		}
		v := ref.PinnedVersion
		resp, err := sc.GetSchema(ctx, &pb.GetSchemaRequest{SchemaId: id, Version: &v})
		if err != nil {
			return 0, 0, newError(ref.Subject, "GetSchema", err)
		}
		return resp.GetSchemaId(), resp.GetVersion(), nil
	case ref.MinVersion > 0 && latest < ref.MinVersion:
		return 0, 0, &Error{Topic: ref.Subject, RPC: "GetLatestSchema", Code: codes.FailedPrecondition, permanent: true,
			Err: fmt.Errorf("latest schema version %d of subject %q is below the required minimum %d", latest, ref.Subject, ref.MinVersion)}
	}
	return id, latest, nil
}

// Schema types as the registry's RegisterSchema takes them.
const (
	SchemaTypeJSONSchema = "json_schema"
	SchemaTypeString     = "string"
	SchemaTypeNumber     = "number"
	SchemaTypeBytes      = "bytes"
	SchemaTypeAvro       = "avro"
	SchemaTypeProtobuf   = "protobuf"
)

// NormalizeSchemaType maps a configured schema type to its wire form:
// json_schema (also spelt json), string, number, bytes, avro or protobuf,
// case-insensitively — the set the Rust connector 0.3 accepts. ok is false
// for anything else.
func NormalizeSchemaType(t string) (wire string, ok bool) {
	switch strings.ToLower(strings.TrimSpace(t)) {
	case "json_schema", "json":
		return SchemaTypeJSONSchema, true
	case "string":
		return SchemaTypeString, true
	case "number":
		return SchemaTypeNumber, true
	case "bytes":
		return SchemaTypeBytes, true
	case "avro":
		return SchemaTypeAvro, true
	case "protobuf":
		return SchemaTypeProtobuf, true
	}
	return "", false
}

// IsSchemaNotFound reports whether err is the registry's NotFound answer
// for a subject (or schema id) it does not hold.
func IsSchemaNotFound(err error) bool {
	var de *Error
	if !errors.As(err, &de) || de.Code != codes.NotFound {
		return false
	}
	return de.RPC == "GetLatestSchema" || de.RPC == "GetSchema"
}
