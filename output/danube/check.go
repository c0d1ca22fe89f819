package danubeout

import (
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/benthos-danube/benthos-danube/internal/danube"
)

// One set of checks serves both `lint` and start-up: readSettings copies the
// fields that need checking out of a *service.ParsedConfig into plain values,
// settings.check validates them, one line per error naming the field. The
// constructor (newOutput, config.go) runs them on the config Benthos hands it; the
// spec's lint rule runs them through the Bloblang function lintFuncName on
// the output's config object parsed with the same spec (see
// internal/configlint). tls, token_file and batching are checked at start-up
// only: they load files or build processors.

// lintFuncName is the Bloblang function behind the output's lint rule.
const lintFuncName = "danube_output_config_lints"

// settings is the part of the configuration that check validates.
type settings struct {
	url           string
	topic         string // the static topic, when topicStatic
	topicStatic   bool   // topic has no interpolation
	partitions    int
	producerName  string
	schemaSubject string
	schemaVersion int
	schemas       []schemaSettings
	// bindings are the checked schemas entries, set by check when they
	// have no error.
	bindings     []*schemaBinding
	sendTimeout  time.Duration
	maxProducers int
	producerIdle time.Duration
	maxInFlight  int
	dlEnabled    bool
	dlTopic      string
	dlSpoolDir   string
	dlMaxPayload int
	dlOutput     bool // dead_letter.output is set
}

func readSettings(conf *service.ParsedConfig) (settings, error) {
	var s settings
	var err error
	// Benthos' field errors name the field (and its path); they are returned
	// as they come.
	if s.url, err = conf.FieldString(fieldURL); err != nil {
		return s, err
	}
	topic, err := conf.FieldInterpolatedString(fieldTopic)
	if err != nil {
		return s, err
	}
	if static, ok := topic.Static(); ok {
		s.topic, s.topicStatic = static, true
	}
	if s.partitions, err = conf.FieldInt(fieldPartitions); err != nil {
		return s, err
	}
	if s.producerName, err = conf.FieldString(fieldProducerName); err != nil {
		return s, err
	}
	if s.schemaSubject, err = conf.FieldString(fieldSchema, fieldSchemaSubject); err != nil {
		return s, err
	}
	if s.schemaVersion, err = conf.FieldInt(fieldSchema, fieldSchemaVersion); err != nil {
		return s, err
	}
	if s.schemas, err = readSchemaSettings(conf); err != nil {
		return s, err
	}
	if s.sendTimeout, err = conf.FieldDuration(fieldSendTimeout); err != nil {
		return s, err
	}
	if s.maxProducers, err = conf.FieldInt(fieldMaxProducers); err != nil {
		return s, err
	}
	if s.producerIdle, err = conf.FieldDuration(fieldProducerIdle); err != nil {
		return s, err
	}
	if s.maxInFlight, err = conf.FieldMaxInFlight(); err != nil {
		return s, err
	}
	dl := conf.Namespace(fieldDeadLetter)
	if s.dlEnabled, err = dl.FieldBool(fieldDLEnabled); err != nil {
		return s, err
	}
	if s.dlTopic, err = dl.FieldString(fieldDLTopic); err != nil {
		return s, err
	}
	if s.dlSpoolDir, err = dl.FieldString(fieldDLSpoolDir); err != nil {
		return s, err
	}
	if s.dlMaxPayload, err = dl.FieldInt(fieldDLMaxPayload); err != nil {
		return s, err
	}
	s.dlOutput = dl.Contains(fieldDLOutput)
	return s, nil
}

// check returns every error of s, each one line naming the field.
func (s *settings) check() []error {
	var errs []error
	fail := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("danube output: field %s: %s", field, fmt.Sprintf(format, args...)))
	}
	if strings.TrimSpace(s.url) == "" {
		fail(fieldURL, "must not be empty")
	} else if _, err := danube.ParseServiceURL(s.url); err != nil {
		fail(fieldURL, "%v", err)
	}
	if s.topicStatic {
		if err := danube.ValidateTopic(s.topic); err != nil {
			fail(fieldTopic, "%v", strings.TrimPrefix(err.Error(), "danube: "))
		}
	}
	if s.partitions < 0 {
		fail(fieldPartitions, "must be 0 (not partitioned) or positive, got %d", s.partitions)
	}
	if s.producerName == "" {
		fail(fieldProducerName, "must not be empty")
	}
	if s.schemaVersion < 0 {
		fail(fieldSchema+"."+fieldSchemaVersion, "must be 0 (the latest version) or positive, got %d", s.schemaVersion)
	}
	if s.sendTimeout <= 0 {
		fail(fieldSendTimeout, "must be positive, got %v", s.sendTimeout)
	}
	if s.maxProducers < 1 {
		fail(fieldMaxProducers, "must be at least 1, got %d", s.maxProducers)
	}
	if s.producerIdle <= 0 {
		fail(fieldProducerIdle, "must be positive, got %v", s.producerIdle)
	}
	if s.maxInFlight < 1 {
		fail("max_in_flight", "must be at least 1, got %d", s.maxInFlight)
	}
	if err := danube.ValidateTopic(s.dlTopic); err != nil {
		fail(fieldDeadLetter+"."+fieldDLTopic, "%v", strings.TrimPrefix(err.Error(), "danube: "))
	}
	if s.dlMaxPayload < 0 || s.dlMaxPayload > danube.MaxRequestBytes/2 {
		fail(fieldDeadLetter+"."+fieldDLMaxPayload, "must be between 0 and %d, got %d", danube.MaxRequestBytes/2, s.dlMaxPayload)
	}
	errs = append(errs, s.checkSchemas()...)
	if s.dlEnabled && !s.dlOutput && strings.TrimSpace(s.dlSpoolDir) == "" {
		fail(fieldDeadLetter+"."+fieldDLSpoolDir, "must not be empty: a payload too large for Danube is kept whole there (or set %s.%s to send dead letters to another output)", fieldDeadLetter, fieldDLOutput)
	}
	return errs
}

// schemaSettings is one entry of the schemas field as configured.
type schemaSettings struct {
	topic, subject, typ, file, strategy string
	autoRegister                        bool
	version                             int
}

func readSchemaSettings(conf *service.ParsedConfig) ([]schemaSettings, error) {
	list, err := conf.FieldObjectList(fieldSchemas)
	if err != nil {
		return nil, err
	}
	out := make([]schemaSettings, len(list))
	for i, c := range list {
		e := &out[i]
		for _, f := range []struct {
			name string
			dst  *string
		}{{fieldSchemasTopic, &e.topic}, {fieldSchemasSubject, &e.subject}, {fieldSchemasType, &e.typ}, {fieldSchemasFile, &e.file}, {fieldSchemasStrategy, &e.strategy}} {
			if *f.dst, err = c.FieldString(f.name); err != nil {
				return nil, fmt.Errorf("danube output: field %s[%d].%s: %w", fieldSchemas, i, f.name, err)
			}
		}
		if e.autoRegister, err = c.FieldBool(fieldSchemasAutoReg); err != nil {
			return nil, fmt.Errorf("danube output: field %s[%d].%s: %w", fieldSchemas, i, fieldSchemasAutoReg, err)
		}
		if e.version, err = c.FieldInt(fieldSchemasVersion); err != nil {
			return nil, fmt.Errorf("danube output: field %s[%d].%s: %w", fieldSchemas, i, fieldSchemasVersion, err)
		}
	}
	return out, nil
}

// checkSchemas checks the schemas entries and how they combine with schema
// and dead_letter.topic, one line per error; with no error it sets
// s.bindings (JSON Schemas compiled, files read).
func (s *settings) checkSchemas() []error {
	var errs []error
	fail := func(i int, field, format string, args ...any) {
		name := fmt.Sprintf("%s[%d]", fieldSchemas, i)
		if field != "" {
			name += "." + field
		}
		errs = append(errs, fmt.Errorf("danube output: field %s: %s", name, fmt.Sprintf(format, args...)))
	}
	var bindings []*schemaBinding
	byTopic := map[string]int{}
	bySubject := map[string]int{}
	for i, e := range s.schemas {
		b := &schemaBinding{index: i, topic: strings.TrimSpace(e.topic), subject: strings.TrimSpace(e.subject), file: e.file, autoRegister: e.autoRegister}
		n := len(errs)
		if b.topic == "" {
			fail(i, fieldSchemasTopic, "must not be empty: name the Danube topic whose producers use the subject")
		} else {
			b.pattern = topicPattern(b.topic)
			if err := danube.ValidateTopic(placeholder.ReplaceAllString(b.topic, "x")); err != nil || strings.ContainsAny(placeholder.ReplaceAllString(b.topic, "x"), "{}") {
				fail(i, fieldSchemasTopic, "%q is not a Danube topic of the form /namespace/topic (placeholders are written {name})", b.topic)
			} else if j, dup := byTopic[b.topic]; dup {
				fail(i, fieldSchemasTopic, "%s is already bound by %s[%d]: a topic has one subject", b.topic, fieldSchemas, j)
			}
			byTopic[b.topic] = i
		}
		if b.subject == "" {
			fail(i, fieldSchemasSubject, "must not be empty")
		}
		typ, ok := danube.NormalizeSchemaType(e.typ)
		if !ok {
			fail(i, fieldSchemasType, "must be one of json_schema, json, string, number, bytes, avro, protobuf, got %q", e.typ)
		}
		b.typ = typ
		switch strategy := strings.ToLower(strings.TrimSpace(e.strategy)); strategy {
		case strategyLatest:
			if e.version != 0 {
				fail(i, fieldSchemasVersion, "is %d but %s is latest: set %s: pinned or minimum, or remove %s", e.version, fieldSchemasStrategy, fieldSchemasStrategy, fieldSchemasVersion)
			}
		case strategyPinned, strategyMinimum:
			if e.version < 1 || e.version > 1<<32-1 {
				fail(i, fieldSchemasVersion, "must be a version number of 1 or more with %s: %s, got %d", fieldSchemasStrategy, strategy, e.version)
			} else if strategy == strategyPinned {
				b.ref.PinnedVersion = uint32(e.version)
			} else {
				b.ref.MinVersion = uint32(e.version)
			}
		default:
			fail(i, fieldSchemasStrategy, "must be latest, pinned or minimum, got %q", e.strategy)
		}
		b.ref.Subject = b.subject
		switch {
		case !ok:
		case typ == danube.SchemaTypeJSONSchema:
			if strings.TrimSpace(e.file) == "" {
				fail(i, fieldSchemasFile, "must name the JSON Schema file: a json_schema entry validates every payload with it")
				break
			}
			def, sch, err := compileJSONSchema(e.file)
			if err != nil {
				fail(i, fieldSchemasFile, "%v", err)
				break
			}
			b.definition, b.validator = def, sch
		case typ == danube.SchemaTypeAvro || typ == danube.SchemaTypeProtobuf:
			if strings.TrimSpace(e.file) == "" {
				if e.autoRegister {
					fail(i, fieldSchemasFile, "must name the %s schema file that auto_register registers (or set auto_register: false for a registered subject)", typ)
				}
				break
			}
			def, err := os.ReadFile(e.file)
			if err != nil {
				fail(i, fieldSchemasFile, "%v", err)
				break
			}
			b.definition = def
		}
		if j, shared := bySubject[b.subject]; shared && b.subject != "" && len(errs) == n {
			if other := bindings[j]; other.typ != b.typ || other.file != b.file {
				fail(i, fieldSchemasSubject, "%s is also used by %s[%d] with another type or file: entries sharing a subject must register the same schema", b.subject, fieldSchemas, j)
			}
		} else if b.subject != "" {
			bySubject[b.subject] = i
		}
		if b.topic != "" && (b.topic == s.dlTopic || (b.pattern != nil && b.pattern.MatchString(s.dlTopic))) {
			fail(i, fieldSchemasTopic, "%s binds the dead-letter topic %s: dead-letter records keep the original payload and are never bound to a schema", b.topic, s.dlTopic)
		}
		if s.schemaSubject != "" && s.topicStatic && b.topic != "" && (b.topic == s.topic || (b.pattern != nil && b.pattern.MatchString(s.topic))) {
			errs = append(errs, fmt.Errorf("danube output: field %s.%s: conflicts with %s[%d], which binds the output's only topic %s: remove one of them", fieldSchema, fieldSchemaSubject, fieldSchemas, i, s.topic))
		}
		bindings = append(bindings, b)
	}
	if len(errs) == 0 {
		s.bindings = bindings
	}
	return errs
}

// lintChecks is what lint reports for the output.
func lintChecks(conf *service.ParsedConfig) []string {
	s, err := readSettings(conf)
	if err != nil {
		return []string{err.Error()}
	}
	var out []string
	for _, e := range s.check() {
		out = append(out, e.Error())
	}
	return out
}
