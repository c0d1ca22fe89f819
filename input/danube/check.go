package danubein

import (
	"fmt"
	"strings"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/benthos-danube/benthos-danube/internal/danube"
)

// One set of checks serves both `lint` and start-up, as in the danube
// output: readSettings copies the fields out of a *service.ParsedConfig,
// settings.check validates them, one line per error naming the field. The
// constructor runs them on the config Benthos hands it; the spec's lint rule
// runs them through the Bloblang function lintFuncName (internal/configlint).
// tls, token and token_file are read at start-up only (danubeconn.Read):
// tls and token_file load files.

// lintFuncName is the Bloblang function behind the input's lint rule.
const lintFuncName = "danube_input_config_lints"

// settings is the configuration of the input, as plain values.
type settings struct {
	url          string
	topics       []string
	subscription string
	subType      string
	consumerName string
	keyFilters   []string
	maxUnacked   int
	nackDelay    time.Duration
}

func readSettings(conf *service.ParsedConfig) (settings, error) {
	var s settings
	var err error
	// Benthos' field errors name the field (and its path); they are returned
	// as they come.
	if s.url, err = conf.FieldString(fieldURL); err != nil {
		return s, err
	}
	if s.topics, err = conf.FieldStringList(fieldTopics); err != nil {
		return s, err
	}
	if s.subscription, err = conf.FieldString(fieldSubscription); err != nil {
		return s, err
	}
	if s.subType, err = conf.FieldString(fieldSubType); err != nil {
		return s, err
	}
	if s.consumerName, err = conf.FieldString(fieldConsumerName); err != nil {
		return s, err
	}
	if s.keyFilters, err = conf.FieldStringList(fieldKeyFilters); err != nil {
		return s, err
	}
	if s.maxUnacked, err = conf.FieldInt(fieldMaxUnacked); err != nil {
		return s, err
	}
	if s.nackDelay, err = conf.FieldDuration(fieldNackDelay); err != nil {
		return s, err
	}
	return s, nil
}

// subscriptionType maps subscription_type to the client's type.
func subscriptionType(v string) (danube.SubscriptionType, bool) {
	switch v {
	case subExclusive:
		return danube.SubExclusive, true
	case subShared:
		return danube.SubShared, true
	case subFailover:
		return danube.SubFailover, true
	case subKeyShared:
		return danube.SubKeyShared, true
	}
	return 0, false
}

// check returns every error of s, each one line naming the field.
func (s *settings) check() []error {
	var errs []error
	fail := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("danube input: field %s: %s", field, fmt.Sprintf(format, args...)))
	}
	if strings.TrimSpace(s.url) == "" {
		fail(fieldURL, "must not be empty")
	} else if _, err := danube.ParseServiceURL(s.url); err != nil {
		fail(fieldURL, "%v", err)
	}
	if len(s.topics) == 0 {
		fail(fieldTopics, "must list at least one topic, e.g. [ /default/commands ]")
	}
	seen := map[string]bool{}
	for i, t := range s.topics {
		if err := danube.ValidateTopic(t); err != nil {
			fail(fmt.Sprintf("%s[%d]", fieldTopics, i), "%v", strings.TrimPrefix(err.Error(), "danube: "))
		} else if seen[t] {
			fail(fmt.Sprintf("%s[%d]", fieldTopics, i), "%s is listed twice", t)
		}
		seen[t] = true
	}
	if strings.TrimSpace(s.subscription) == "" {
		fail(fieldSubscription, "must not be empty")
	}
	typ, ok := subscriptionType(s.subType)
	if !ok {
		fail(fieldSubType, "must be one of %s, %s, %s or %s, got %q", subExclusive, subShared, subFailover, subKeyShared, s.subType)
	}
	if strings.TrimSpace(s.consumerName) == "" {
		fail(fieldConsumerName, "must not be empty")
	}
	if len(s.keyFilters) > 0 && (!ok || typ != danube.SubKeyShared) {
		fail(fieldKeyFilters, "applies to %s: %s only; remove it or set %s: %s", fieldSubType, subKeyShared, fieldSubType, subKeyShared)
	}
	if s.maxUnacked < 1 {
		fail(fieldMaxUnacked, "must be at least 1, got %d", s.maxUnacked)
	}
	if s.nackDelay < 0 {
		fail(fieldNackDelay, "must not be negative, got %v", s.nackDelay)
	} else if s.nackDelay > danubeMaxNackDelay {
		fail(fieldNackDelay, "must be at most %v (Danube caps redelivery delays there), got %v", danubeMaxNackDelay, s.nackDelay)
	}
	return errs
}

// danubeMaxNackDelay is Danube's cap on a nack's redelivery delay.
const danubeMaxNackDelay = time.Minute

// lintChecks is what lint reports for the input.
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
