package danubeout

import (
	"fmt"
	"strings"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/benthos-danube/benthos-danube/internal/danube"
)

// One set of checks serves both `lint` and start-up: readSettings copies the
// fields that need checking out of a *service.ParsedConfig into plain values,
// settings.check validates them, one line per error naming the field. The
// constructor (newOutput) runs them on the config Benthos hands it; the
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
	schemaVersion int
	sendTimeout   time.Duration
	maxProducers  int
	producerIdle  time.Duration
	maxInFlight   int
	dlEnabled     bool
	dlTopic       string
	dlSpoolDir    string
	dlMaxPayload  int
	dlOutput      bool // dead_letter.output is set
}

func readSettings(conf *service.ParsedConfig) (settings, error) {
	var s settings
	var err error
	wrap := func(field string, err error) error { return fmt.Errorf("danube output: field %s: %w", field, err) }
	if s.url, err = conf.FieldString(fieldURL); err != nil {
		return s, wrap(fieldURL, err)
	}
	topic, err := conf.FieldInterpolatedString(fieldTopic)
	if err != nil {
		return s, wrap(fieldTopic, err)
	}
	if static, ok := topic.Static(); ok {
		s.topic, s.topicStatic = static, true
	}
	if s.partitions, err = conf.FieldInt(fieldPartitions); err != nil {
		return s, wrap(fieldPartitions, err)
	}
	if s.producerName, err = conf.FieldString(fieldProducerName); err != nil {
		return s, wrap(fieldProducerName, err)
	}
	if s.schemaVersion, err = conf.FieldInt(fieldSchema, fieldSchemaVersion); err != nil {
		return s, wrap(fieldSchema+"."+fieldSchemaVersion, err)
	}
	if s.sendTimeout, err = conf.FieldDuration(fieldSendTimeout); err != nil {
		return s, wrap(fieldSendTimeout, err)
	}
	if s.maxProducers, err = conf.FieldInt(fieldMaxProducers); err != nil {
		return s, wrap(fieldMaxProducers, err)
	}
	if s.producerIdle, err = conf.FieldDuration(fieldProducerIdle); err != nil {
		return s, wrap(fieldProducerIdle, err)
	}
	if s.maxInFlight, err = conf.FieldMaxInFlight(); err != nil {
		return s, wrap("max_in_flight", err)
	}
	dl := conf.Namespace(fieldDeadLetter)
	if s.dlEnabled, err = dl.FieldBool(fieldDLEnabled); err != nil {
		return s, wrap(fieldDeadLetter+"."+fieldDLEnabled, err)
	}
	if s.dlTopic, err = dl.FieldString(fieldDLTopic); err != nil {
		return s, wrap(fieldDeadLetter+"."+fieldDLTopic, err)
	}
	if s.dlSpoolDir, err = dl.FieldString(fieldDLSpoolDir); err != nil {
		return s, wrap(fieldDeadLetter+"."+fieldDLSpoolDir, err)
	}
	if s.dlMaxPayload, err = dl.FieldInt(fieldDLMaxPayload); err != nil {
		return s, wrap(fieldDeadLetter+"."+fieldDLMaxPayload, err)
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
	if s.dlEnabled && !s.dlOutput && strings.TrimSpace(s.dlSpoolDir) == "" {
		fail(fieldDeadLetter+"."+fieldDLSpoolDir, "must not be empty: a payload too large for Danube is kept whole there (or set %s.%s to send dead letters to another output)", fieldDeadLetter, fieldDLOutput)
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
