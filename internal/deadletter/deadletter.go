// Package deadletter holds the dead-letter contract shared by the `mqtt`
// input and the `danube` and `mqtt` outputs: the metadata keys that mark a message as
// undeliverable and describe why, the reasons, and the local spool where a
// payload too large for Danube is kept whole.
//
// A message carrying the metadata key Reason is never sent to its Danube
// topic: the `danube` output writes it to its dead-letter destination and
// only then acknowledges it. The input sets these keys for a message that
// cannot be routed; any pipeline can set them (for example in a `catch`) to
// dead-letter a message it judged invalid.
package deadletter

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// Metadata keys (and Danube attribute names of a dead-letter record).
const (
	// Reason is why the message can never be delivered (one of the Reason*
	// constants, or any word a pipeline chooses). Its presence marks the
	// message for the dead-letter destination.
	Reason = "dead_letter_reason"
	// Error is the full error text.
	Error = "dead_letter_error"
	// Topic is the Danube topic the message was meant for ("" when none
	// could be formed).
	Topic = "dead_letter_topic"
	// MQTTTopic is the MQTT topic a message of the mqtt output was meant
	// for ("" when none could be formed).
	MQTTTopic = "dead_letter_mqtt_topic"
	// Mapping names the input mapping that routed the message: its
	// mqtt_topic as configured, or "none" when no mapping matched.
	Mapping = "dead_letter_mapping"
	// Time is when the message was dead-lettered, RFC 3339 with
	// nanoseconds, UTC.
	Time = "dead_letter_time"
	// Size is the payload size in bytes, SHA256 its SHA-256 (hex); both are
	// set when the record's payload is truncated.
	Size   = "dead_letter_size"
	SHA256 = "dead_letter_sha256"
	// Truncated is "true" when the record carries only the first bytes of
	// the payload; SpoolFile then names the file holding all of it.
	Truncated = "dead_letter_truncated"
	SpoolFile = "dead_letter_spool_file"
)

// Reasons set by benthos-danube.
const (
	// ReasonNoMapping: the MQTT topic matches no topic mapping (a
	// subscription kept by a persistent session from an older config).
	ReasonNoMapping = "no_mapping"
	// ReasonInvalidTopic: the Danube topic cannot be formed (a placeholder
	// value with characters a topic name cannot hold, or an interpolated
	// topic that resolves to no valid name).
	ReasonInvalidTopic = "invalid_topic"
	// ReasonTooLarge: the payload exceeds what Danube accepts.
	ReasonTooLarge = "too_large"
	// ReasonNamespaceMissing: the topic's namespace does not exist.
	ReasonNamespaceMissing = "namespace_missing"
	// ReasonTopicMissing: the topic does not exist and the broker does not
	// create topics.
	ReasonTopicMissing = "topic_missing"
	// ReasonPermissionDenied: the broker refused the producer or message.
	ReasonPermissionDenied = "permission_denied"
	// ReasonSchemaRejected: the broker refused the payload or its schema
	// (PermissionDenied or FailedPrecondition naming the schema, e.g. a
	// topic with the enforce validation policy).
	ReasonSchemaRejected = "schema_rejected"
	// ReasonSchemaInvalid: the payload failed the JSON Schema of its
	// topic's json_schema entry, checked by the danube output before
	// sending (Error holds the validation error).
	ReasonSchemaInvalid = "schema_invalid"
	// ReasonRejected: any other permanent refusal by the broker.
	ReasonRejected = "rejected"
	// ReasonInvalidMessage: the pipeline produced a message an output
	// cannot send as it is (its key, QoS, retain flag or routing metadata
	// cannot be read).
	ReasonInvalidMessage = "invalid_message"
	// ReasonExpired: an MQTT 5 message whose Message Expiry Interval ran
	// out while it waited in the bridge (for the pipeline or in retry).
	ReasonExpired = "expired"
)

// MappingNone is the Mapping value of a message that matched no mapping.
const MappingNone = "none"

// DefaultTopic is the default dead-letter topic. The namespace "default"
// exists on every Danube broker.
const DefaultTopic = "/default/dead_letter"

// Digest returns the hex SHA-256 of b.
func Digest(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// Spool keeps whole payloads in a directory: one file with the payload's
// bytes and one JSON file with its description side by side.
type Spool struct {
	dir string
}

// NewSpool returns a spool writing into dir. The directory is created on
// the first write, so a bad path fails that write (an outage of the
// dead-letter destination) rather than the start-up.
func NewSpool(dir string) *Spool { return &Spool{dir: dir} }

// Dir returns the spool directory.
func (s *Spool) Dir() string { return s.dir }

// Write stores payload and its description and returns the path of the
// payload file. Files are written under a temporary name and renamed, so a
// crash never leaves a partial file under the final name.
func (s *Spool) Write(payload []byte, attrs map[string]string, now time.Time) (string, error) {
	if s == nil || s.dir == "" {
		return "", errors.New("no spool directory configured")
	}
	if err := os.MkdirAll(s.dir, 0o750); err != nil {
		return "", fmt.Errorf("creating the dead-letter spool directory: %w", err)
	}
	dir, err := filepath.Abs(s.dir)
	if err != nil {
		return "", fmt.Errorf("resolving the dead-letter spool directory: %w", err)
	}
	base := strconv.FormatInt(now.UnixNano(), 10) + "-" + Digest(payload)[:16]
	path := filepath.Join(dir, base+".payload")
	if err := writeFile(path, payload); err != nil {
		return "", err
	}
	desc := make(map[string]string, len(attrs)+1)
	for k, v := range attrs {
		desc[k] = v
	}
	desc[SpoolFile] = path
	js, err := json.MarshalIndent(desc, "", "  ")
	if err != nil {
		return "", fmt.Errorf("describing the spooled payload: %w", err)
	}
	if err := writeFile(filepath.Join(dir, base+".json"), append(js, '\n')); err != nil {
		return "", err
	}
	return path, nil
}

func writeFile(path string, b []byte) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o640)
	if err != nil {
		return fmt.Errorf("writing to the dead-letter spool: %w", err)
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return fmt.Errorf("writing to the dead-letter spool: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("writing to the dead-letter spool: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("writing to the dead-letter spool: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("writing to the dead-letter spool: %w", err)
	}
	return nil
}
