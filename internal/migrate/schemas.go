package migrate

import (
	"errors"
	"fmt"
	"math"
	"strings"

	"github.com/benthos-danube/benthos-danube/processor/connectorpayload"
)

// rawSchema is one [[schemas]] entry of a 0.3 file (danube-connect-core
// SchemaMapping).
type rawSchema struct {
	Topic           *string `toml:"topic"`
	Subject         *string `toml:"subject"`
	SchemaType      *string `toml:"schema_type"`
	SchemaFile      *string `toml:"schema_file"`
	AutoRegister    *bool   `toml:"auto_register"`
	VersionStrategy any     `toml:"version_strategy"`
}

// schema is a resolved [[schemas]] entry, in the shape of the danube
// output's schemas field.
type schema struct {
	index        int
	topic        string
	subject      string
	typ          string // lower case
	file         string
	autoRegister bool
	strategy     string // latest, pinned or minimum
	version      int64
}

// schemaTypes are the connector's accepted schema_type values.
var schemaTypes = []string{"json_schema", "json", "string", "number", "bytes", "avro", "protobuf"}

// resolveSchemas checks the [[schemas]] entries as the connector does at
// start-up and returns one per topic (the connector keeps the last entry of
// a topic in a HashMap), in file order.
func resolveSchemas(raw []rawSchema, mappings []mapping, w *collector) ([]schema, error) {
	var errs []error
	routed := map[string]bool{}
	for _, m := range mappings {
		routed[m.danubeTopic] = true
	}
	var out []schema
	byTopic := map[string]int{}
	for i, r := range raw {
		where := fmt.Sprintf("schemas[%d]", i)
		var missing []string
		for _, k := range []struct {
			name string
			v    *string
		}{{"topic", r.Topic}, {"subject", r.Subject}, {"schema_type", r.SchemaType}, {"schema_file", r.SchemaFile}} {
			if k.v == nil {
				missing = append(missing, "`"+k.name+"`")
			}
		}
		if len(missing) > 0 {
			hint := ""
			if r.SchemaFile == nil {
				hint = " (schema_file is required even for types that read no file; use \"\")"
			}
			errs = append(errs, fmt.Errorf("%s: missing field %s%s", where, strings.Join(missing, ", "), hint))
			continue
		}
		s := schema{index: i, topic: *r.Topic, subject: *r.Subject, typ: strings.ToLower(*r.SchemaType), file: *r.SchemaFile, autoRegister: boolOr(r.AutoRegister, true)}
		if !containsString(schemaTypes, s.typ) {
			errs = append(errs, fmt.Errorf("%s: unknown schema_type %q, expected one of %s (case-insensitive)", where, *r.SchemaType, strings.Join(schemaTypes, ", ")))
			continue
		}
		var err error
		if s.strategy, s.version, err = versionStrategy(r.VersionStrategy); err != nil {
			errs = append(errs, fmt.Errorf("%s: version_strategy: %w", where, err))
			continue
		}
		if s.subject == "" {
			errs = append(errs, fmt.Errorf("%s: subject cannot be empty", where))
			continue
		}
		needsFile := s.typ == "json_schema" || s.typ == "json" || s.typ == "avro" || s.typ == "protobuf"
		if needsFile && s.file == "" {
			errs = append(errs, fmt.Errorf("%s: schema type %s needs a schema_file (the connector reads it at start-up)", where, s.typ))
			continue
		}
		if !needsFile && s.file != "" {
			w.warnf("%s: schema_file %q is not read for schema type %s (the connector ignores it); migrated as given", where, s.file, s.typ)
		}
		if !routed[s.topic] {
			w.warnf("%s: topic %q is the `to` of no route: the connector only logged a warning and registered the schema anyway; no message of this pipeline goes there", where, s.topic)
		}
		switch s.typ {
		case "number":
			w.warnf("%s: schema type number: the broker's number validator accepts only 4- or 8-byte payloads, but the connector (and this pipeline) send numbers as JSON text; a broker enforcing payload validation refuses them", where)
		case "protobuf":
			w.warnf("%s: schema type protobuf: the connector failed on every message of %s (a configuration error per message, the messages were lost); this pipeline forwards their raw payload", where, s.topic)
		case "bytes":
			w.warnf("%s: schema type bytes: the connector forwarded payloads that are not JSON raw, and failed on JSON payloads (the message and the rest of its batch were dropped); this pipeline forwards every payload of %s raw", where, s.topic)
		}
		if j, dup := byTopic[s.topic]; dup {
			w.warnf("%s: topic %q already has schemas[%d]: the last entry wins, as in the connector; schemas[%d] is not migrated", where, s.topic, out[j].index, out[j].index)
			out[j] = s
			continue
		}
		byTopic[s.topic] = len(out)
		out = append(out, s)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return out, nil
}

// versionStrategy reads "latest", { pinned = N } or { minimum = N }.
func versionStrategy(v any) (string, int64, error) {
	switch t := v.(type) {
	case nil:
		return "latest", 0, nil
	case string:
		if t == "latest" {
			return "latest", 0, nil
		}
		return "", 0, fmt.Errorf("unknown variant %q, expected \"latest\", { pinned = N } or { minimum = N } (lower case)", t)
	case map[string]any:
		if len(t) != 1 {
			return "", 0, fmt.Errorf("expected exactly one of pinned or minimum, got %d keys", len(t))
		}
		for k, n := range t {
			if k != "pinned" && k != "minimum" {
				return "", 0, fmt.Errorf("unknown variant %q, expected \"latest\", { pinned = N } or { minimum = N } (lower case)", k)
			}
			ver, ok := n.(int64)
			if !ok || ver < 0 || ver > math.MaxUint32 {
				return "", 0, fmt.Errorf("%s = %v: the version must be an integer from 0 to %d", k, n, uint32(math.MaxUint32))
			}
			return k, ver, nil
		}
	}
	return "", 0, fmt.Errorf("expected \"latest\", { pinned = N } or { minimum = N }, got %v", v)
}

// payloadModes is the danube_connector_payload schema type of every topic
// with a [[schemas]] entry whose type changes what is written.
func payloadTypes(schemas []schema) map[string]string {
	out := map[string]string{}
	for _, s := range schemas {
		if m, err := connectorpayload.ParseSchemaType(s.typ); err == nil && m != connectorpayload.ModeJSON {
			out[s.topic] = s.typ
		}
	}
	return out
}

func containsString(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
