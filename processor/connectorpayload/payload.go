// Package connectorpayload reproduces the payload bytes the Rust Danube MQTT
// source connector (danube-source-mqtt 0.3, danube-connectors) writes to
// Danube, so that Danube consumers written for it read what benthos-danube
// writes. Earlier connector versions (danube-connect 0.1/0.2) forwarded the
// MQTT payload unchanged; 0.3 does not:
//
//   - a payload that parses as JSON is re-serialised compactly with sorted
//     object keys (serde_json; see AppendCanonical for the exact rules);
//   - any other payload (text, binary, invalid UTF-8, a BOM, an empty
//     payload) becomes {"data":"<base64>","encoding":"base64","size":N};
//   - on topics whose schema type is `string`, a JSON string literal is
//     written unquoted;
//   - on `bytes` topics the payload is forwarded raw.
//
// The package is pure (no I/O) and its conversion is safe for concurrent
// use. The processor in processor.go exposes it to pipelines.
package connectorpayload

import (
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
)

// Mode is how a schema type's payloads are written.
type Mode uint8

const (
	// ModeJSON: canonical JSON, or the base64 envelope when the payload is
	// not JSON. No schema, and the types json_schema, json, number, avro.
	ModeJSON Mode = iota
	// ModeString: as ModeJSON, but a JSON string literal is written as its
	// decoded text. Schema type string.
	ModeString
	// ModeRaw: the payload unchanged. Schema type bytes, and protobuf (see
	// ParseSchemaType).
	ModeRaw
)

// SchemaTypes lists the accepted schema type names (case-insensitive), as
// the connector's [[schemas]].schema_type, plus "none" for a topic without
// a schema.
var SchemaTypes = []string{"none", "json_schema", "json", "number", "avro", "string", "bytes", "protobuf"}

// ParseSchemaType returns the mode of a schema type name, case-insensitive.
//
// Where the connector failed, the mode is the one a bridge that must not
// lose messages needs:
//   - bytes: the connector forwards a non-JSON payload raw, but a payload
//     that parses as JSON makes it fail (it tries to base64-decode the
//     envelope's data, or the string) and drops the message and the rest of
//     its batch. Raw for every payload keeps it and is what a bytes topic
//     means.
//   - protobuf: the connector fails on every message of the topic; the raw
//     payload (the publisher's encoded message) is forwarded instead.
func ParseSchemaType(name string) (Mode, error) {
	switch strings.ToLower(name) {
	case "", "none", "json_schema", "json", "number", "avro":
		return ModeJSON, nil
	case "string":
		return ModeString, nil
	case "bytes", "protobuf":
		return ModeRaw, nil
	}
	return 0, fmt.Errorf("unknown schema type %q, expected one of %s", name, strings.Join(SchemaTypes, ", "))
}

// Append appends to dst the bytes the connector writes for payload on a
// topic of mode m.
func Append(dst, payload []byte, m Mode) []byte {
	if m == ModeRaw {
		return append(dst, payload...)
	}
	if out, ok := appendCanonical(dst, payload, m == ModeString); ok {
		return out
	}
	return AppendEnvelope(dst, payload)
}

// AppendEnvelope appends the connector's wrapping of a payload that is not
// JSON: {"data":<standard base64, padded>,"encoding":"base64","size":N}.
func AppendEnvelope(dst, payload []byte) []byte {
	dst = append(dst, `{"data":"`...)
	dst = base64.StdEncoding.AppendEncode(dst, payload)
	dst = append(dst, `","encoding":"base64","size":`...)
	dst = strconv.AppendInt(dst, int64(len(payload)), 10)
	return append(dst, '}')
}
