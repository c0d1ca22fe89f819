package danubeout

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/benthos-danube/benthos-danube/internal/danube"
)

// This file binds the producers of each topic to a schema-registry subject
// (the schemas field), registers missing subjects at Connect and validates
// json_schema payloads before they are sent. The checks of the field are in
// check.go (checkSchemaEntries).

// Version strategies of a schemas entry.
const (
	strategyLatest  = "latest"
	strategyPinned  = "pinned"
	strategyMinimum = "minimum"
)

// schemaBinding is one checked entry of the schemas field.
type schemaBinding struct {
	index        int    // position in schemas, for messages
	topic        string // as configured
	pattern      *regexp.Regexp
	subject      string
	typ          string // wire type (danube.SchemaType*)
	file         string
	definition   []byte // what RegisterSchema sends ("" for string/number/bytes)
	autoRegister bool
	ref          danube.SchemaRef
	validator    *jsonschema.Schema // json_schema only
}

// name is how errors and logs name the entry.
func (b *schemaBinding) name() string {
	return fmt.Sprintf("%s[%d] (topic %s, subject %s)", fieldSchemas, b.index, b.topic, b.subject)
}

// validate checks payload against the entry's JSON Schema. It returns nil
// for entries of other types.
func (b *schemaBinding) validate(payload []byte) error {
	if b.validator == nil {
		return nil
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(payload))
	if err != nil {
		return fmt.Errorf("payload is not valid JSON, which subject %s (json_schema, %s) requires: %v", b.subject, b.file, err)
	}
	if err := b.validator.Validate(inst); err != nil {
		return fmt.Errorf("payload does not match the JSON Schema of subject %s (%s): %s", b.subject, b.file, validationText(err))
	}
	return nil
}

// schemaBindings finds the subject of a topic: an exact schemas entry, else
// the first placeholder entry that matches, else schema.subject (fallback).
// The dead-letter topic never has one: its records keep the original payload.
type schemaBindings struct {
	list     []*schemaBinding
	exact    map[string]*schemaBinding
	patterns []*schemaBinding
	fallback *danube.SchemaRef
	dlTopic  string

	mu    sync.Mutex
	cache map[string]*schemaBinding // topic → matching placeholder entry (nil: none)

	// ready is set once Connect has checked (and registered) every subject.
	readyMu sync.Mutex
	ready   bool
}

// maxPatternCache bounds the cache of placeholder matches; it is cleared
// when full.
const maxPatternCache = 10000

func newSchemaBindings(list []*schemaBinding, fallback *danube.SchemaRef, dlTopic string) *schemaBindings {
	b := &schemaBindings{list: list, exact: map[string]*schemaBinding{}, fallback: fallback, dlTopic: dlTopic, cache: map[string]*schemaBinding{}}
	for _, e := range list {
		if e.pattern == nil {
			b.exact[e.topic] = e
		} else {
			b.patterns = append(b.patterns, e)
		}
	}
	return b
}

// forTopic returns the schemas entry of topic, or nil.
func (b *schemaBindings) forTopic(topic string) *schemaBinding {
	if e, ok := b.exact[topic]; ok {
		return e
	}
	if len(b.patterns) == 0 {
		return nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if e, ok := b.cache[topic]; ok {
		return e
	}
	var found *schemaBinding
	for _, e := range b.patterns {
		if e.pattern.MatchString(topic) {
			found = e
			break
		}
	}
	if len(b.cache) >= maxPatternCache {
		clear(b.cache)
	}
	b.cache[topic] = found
	return found
}

// refFor returns the schema reference the producers of topic are bound to.
func (b *schemaBindings) refFor(topic string) *danube.SchemaRef {
	if topic == b.dlTopic {
		return nil
	}
	if e := b.forTopic(topic); e != nil {
		ref := e.ref
		return &ref
	}
	return b.fallback
}

// ensureSubjects runs once per output lifetime, at Connect: for every entry
// it looks the subject up, registers it when it is missing and
// auto_register is set (an existing subject is never registered again, even
// when its file changed), and checks the version strategy against the latest
// version. A broker that cannot be reached gives a connection error (Benthos
// reconnects with back-off); a subject that must exist and does not, or a
// version that does not exist, gives one line saying what to do, and
// Connect is retried the same way, so messages are held, not lost.
func (o *output) ensureSubjects(ctx context.Context, c *danube.Client) error {
	b := o.schemas
	b.readyMu.Lock()
	defer b.readyMu.Unlock()
	if b.ready {
		return nil
	}
	seen := map[string]bool{}
	for _, e := range b.list {
		if seen[e.subject] {
			continue // entries sharing a subject share its type and file (checked)
		}
		if err := o.ensureSubject(ctx, c, e); err != nil {
			return err
		}
		seen[e.subject] = true
	}
	b.ready = true
	return nil
}

func (o *output) ensureSubject(ctx context.Context, c *danube.Client, e *schemaBinding) error {
	id, latest, err := c.LatestSchema(ctx, e.subject)
	switch {
	case err == nil:
		o.log.Infof("danube output: %s: subject exists (schema id %d, latest version %d); not registered again (a changed file is not registered: register a new version in the registry)", e.name(), id, latest)
	case danube.IsSchemaNotFound(err) && !e.autoRegister:
		return fmt.Errorf("danube output: %s: the subject is not registered and auto_register is false: register it in the schema registry (type %s) or set auto_register: true", e.name(), e.typ)
	case danube.IsSchemaNotFound(err):
		if id, latest, err = c.RegisterSchema(ctx, e.subject, e.typ, e.definition); err != nil {
			if danube.IsConnectionError(err) {
				return o.connectError(err)
			}
			return fmt.Errorf("danube output: %s: registering the subject failed: %w", e.name(), err)
		}
		o.log.Infof("danube output: %s: registered the subject (type %s, schema id %d, version %d)", e.name(), e.typ, id, latest)
	case danube.IsConnectionError(err):
		return o.connectError(err)
	default:
		return fmt.Errorf("danube output: %s: looking the subject up: %w", e.name(), o.explain(err))
	}
	switch {
	case e.ref.PinnedVersion > latest:
		return fmt.Errorf("danube output: %s: pinned version %d does not exist (latest is %d): register it or change %s", e.name(), e.ref.PinnedVersion, latest, fieldSchemasVersion)
	case e.ref.MinVersion > latest:
		return fmt.Errorf("danube output: %s: the latest version %d is below the minimum %d: register a newer version or lower %s", e.name(), latest, e.ref.MinVersion, fieldSchemasVersion)
	}
	return nil
}

// placeholder is a `{name}` in a schemas topic.
var placeholder = regexp.MustCompile(`\{[A-Za-z_][A-Za-z0-9_]*\}`)

// topicPattern returns the regexp of a topic with placeholders (nil when it
// has none). A placeholder matches one or more characters a topic name can
// hold, never '/'.
func topicPattern(topic string) *regexp.Regexp {
	locs := placeholder.FindAllStringIndex(topic, -1)
	if len(locs) == 0 {
		return nil
	}
	var sb strings.Builder
	sb.WriteString("^")
	last := 0
	for _, l := range locs {
		sb.WriteString(regexp.QuoteMeta(topic[last:l[0]]))
		sb.WriteString(`[A-Za-z0-9_-]+`)
		last = l[1]
	}
	sb.WriteString(regexp.QuoteMeta(topic[last:]))
	sb.WriteString("$")
	return regexp.MustCompile(sb.String())
}

// compileJSONSchema reads and compiles a JSON Schema file once. Relative
// $refs resolve against the file's directory.
func compileJSONSchema(path string) ([]byte, *jsonschema.Schema, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, err
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		return nil, nil, fmt.Errorf("%s is not JSON: %v", path, err)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, nil, err
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource(abs, doc); err != nil {
		return nil, nil, fmt.Errorf("%s: %s", path, oneLine(err.Error()))
	}
	sch, err := c.Compile(abs)
	if err != nil {
		var se *jsonschema.SchemaValidationError
		if errors.As(err, &se) {
			return nil, nil, fmt.Errorf("%s is not a valid JSON Schema: %s", path, validationText(se.Err))
		}
		return nil, nil, fmt.Errorf("%s does not compile as a JSON Schema: %s", path, oneLine(err.Error()))
	}
	return raw, sch, nil
}

// validationText is a jsonschema validation error on one line, without its
// first line ("jsonschema validation failed with '<schema URL>'"): the
// caller names the schema.
func validationText(err error) string {
	msg := strings.TrimSpace(err.Error())
	if first, rest, ok := strings.Cut(msg, "\n"); ok && strings.HasPrefix(first, "jsonschema validation failed") {
		msg = rest
	}
	return oneLine(msg)
}

// oneLine joins a multi-line message (jsonschema's) into one line.
func oneLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	for i, l := range lines {
		lines[i] = strings.TrimSpace(l)
	}
	return strings.Join(lines, "; ")
}
