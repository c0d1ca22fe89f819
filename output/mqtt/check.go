package mqttout

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/benthos-danube/benthos-danube/input/mqtt/topicmatch"
	"github.com/benthos-danube/benthos-danube/internal/mqttconn"
)

// One set of checks serves both `lint` and start-up: readSettings copies the
// fields that need checking out of a *service.ParsedConfig into plain values,
// settings.check validates them, one line per error naming the field. The
// constructor (newOutput, config.go) runs them on the config Benthos hands it; the
// spec's lint rule runs them through the Bloblang function lintFuncName on
// the output's config object parsed with the same spec (see
// internal/configlint). tls, batching and dead_letter.output are checked at
// start-up only: they load files or build components.

// lintFuncName is the Bloblang function behind the output's lint rule.
const lintFuncName = "mqtt_output_config_lints"

// settings is the part of the configuration that check validates.
type settings struct {
	urls           []string // as configured; items may hold several, comma-separated
	keepalive      time.Duration
	connectTimeout time.Duration
	writeTimeout   time.Duration
	maxInFlight    int
	topic          string // the static topic, when topicStatic
	topicStatic    bool
	qos            string // the static qos, when qosStatic
	qosStatic      bool
	retained       string // the static retained, when retainedStatic
	retainedStatic bool
	protocol       string
	userProps      bool // user_properties is set
}

func readSettings(conf *service.ParsedConfig) (settings, error) {
	var s settings
	var err error
	wrap := func(field string, err error) error { return fmt.Errorf("mqtt output: field %s: %w", field, err) }
	if s.urls, err = conf.FieldStringList(fieldURLs); err != nil {
		return s, wrap(fieldURLs, err)
	}
	if s.keepalive, err = conf.FieldDuration(fieldKeepalive); err != nil {
		return s, wrap(fieldKeepalive, err)
	}
	if s.connectTimeout, err = conf.FieldDuration(fieldConnectTimeout); err != nil {
		return s, wrap(fieldConnectTimeout, err)
	}
	if s.writeTimeout, err = conf.FieldDuration(fieldWriteTimeout); err != nil {
		return s, wrap(fieldWriteTimeout, err)
	}
	if s.maxInFlight, err = conf.FieldMaxInFlight(); err != nil {
		return s, wrap(fieldMaxInFlight, err)
	}
	static := func(field string) (string, bool, error) {
		is, err := conf.FieldInterpolatedString(field)
		if err != nil {
			return "", false, wrap(field, err)
		}
		v, ok := is.Static()
		return v, ok, nil
	}
	if s.topic, s.topicStatic, err = static(fieldTopic); err != nil {
		return s, err
	}
	if s.qos, s.qosStatic, err = static(fieldQoS); err != nil {
		return s, err
	}
	if s.retained, s.retainedStatic, err = static(fieldRetained); err != nil {
		return s, err
	}
	if s.protocol, err = conf.FieldString(fieldProtocol); err != nil {
		return s, wrap(fieldProtocol, err)
	}
	if conf.Contains(fieldUserProps) {
		f, err := conf.FieldMetadataFilter(fieldUserProps)
		if err != nil {
			return s, wrap(fieldUserProps, err)
		}
		s.userProps = !f.IsEmpty()
	}
	return s, nil
}

// checked is what check derives from valid settings.
type checked struct {
	urls []string // split on commas, trimmed
}

// check returns every error of s, each one line naming the field.
func (s *settings) check() (c checked, errs []error) {
	fail := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("mqtt output: field %s: %s", field, fmt.Sprintf(format, args...)))
	}
	for _, u := range s.urls {
		for _, part := range strings.Split(u, ",") {
			if part = strings.TrimSpace(part); part != "" {
				c.urls = append(c.urls, part)
			}
		}
	}
	if len(c.urls) == 0 {
		fail(fieldURLs, "at least one broker URL is required")
	}
	for i, u := range c.urls {
		if err := mqttconn.CheckBrokerURL(u); err != nil {
			fail(fmt.Sprintf("%s[%d]", fieldURLs, i), "%v", err)
		}
	}
	if k := s.keepalive; k < 0 || (k > 0 && k < time.Second) || k > 65535*time.Second {
		fail(fieldKeepalive, "must be 0 (disabled) or between 1s and 18h12m15s, got %v", k)
	}
	if s.connectTimeout <= 0 {
		fail(fieldConnectTimeout, "must be positive, got %v", s.connectTimeout)
	}
	if s.writeTimeout <= 0 {
		fail(fieldWriteTimeout, "must be positive, got %v", s.writeTimeout)
	}
	if s.maxInFlight < 1 {
		fail(fieldMaxInFlight, "must be at least 1, got %d", s.maxInFlight)
	}
	if s.topicStatic {
		if err := topicmatch.ValidateTopicName(s.topic); err != nil {
			fail(fieldTopic, "%v", err)
		}
	}
	if s.qosStatic {
		if _, err := parseQoS(s.qos); err != nil {
			fail(fieldQoS, "%v", err)
		}
	}
	if s.retainedStatic {
		if _, err := parseRetained(s.retained); err != nil {
			fail(fieldRetained, "%v", err)
		}
	}
	if err := mqttconn.CheckProtocol(s.protocol); err != nil {
		errs = append(errs, fmt.Errorf("mqtt output: field %w", err))
	} else if s.userProps && s.protocol != mqttconn.Protocol5 {
		fail(fieldUserProps, "MQTT %s has no user properties: set %s: %s or remove %s", s.protocol, fieldProtocol, mqttconn.Protocol5, fieldUserProps)
	}
	return c, errs
}

// parseQoS reads a qos value: 0, 1 or 2.
func parseQoS(v string) (byte, error) {
	switch strings.TrimSpace(v) {
	case "0":
		return 0, nil
	case "1":
		return 1, nil
	case "2":
		return 2, nil
	}
	return 0, fmt.Errorf("must be 0, 1 or 2, got %q", v)
}

// parseRetained reads a retained value: true or false (as strconv.ParseBool).
func parseRetained(v string) (bool, error) {
	b, err := strconv.ParseBool(strings.TrimSpace(v))
	if err != nil {
		return false, fmt.Errorf("must be true or false, got %q", v)
	}
	return b, nil
}

// lintChecks is what lint reports for the output.
func lintChecks(conf *service.ParsedConfig) []string {
	s, err := readSettings(conf)
	if err != nil {
		return []string{err.Error()}
	}
	_, errs := s.check()
	out := make([]string, 0, len(errs))
	for _, e := range errs {
		out = append(out, e.Error())
	}
	if len(out) == 0 {
		return nil
	}
	return out
}
