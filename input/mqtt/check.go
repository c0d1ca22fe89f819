package mqtt

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/benthos-danube/benthos-danube/input/mqtt/topicmatch"
	"github.com/benthos-danube/benthos-danube/internal/configlint"
	"github.com/benthos-danube/benthos-danube/internal/mqttconn"
)

// One set of checks serves both `lint` and start-up:
//
//   - readSettings copies the fields that need checking out of a
//     *service.ParsedConfig into plain values (settings);
//   - settings.check validates them and returns the errors, each one line
//     naming the field, and the warnings;
//   - start-up (parseConfig) reads the ParsedConfig Benthos hands the
//     constructor; lint (lintChecks) gets the input's config object parsed
//     with the same spec by the Bloblang function lintFuncName, which the
//     spec's LintRule calls (see internal/configlint), so Benthos applies the
//     same defaults and conversions in both paths.
//
// Nothing here loads files or touches the network: tls is checked at
// start-up only.

// lintFuncName is the Bloblang function behind the input's lint rule.
const lintFuncName = "mqtt_input_config_lints"

// settings is the part of the configuration that check validates, as plain
// values.
type settings struct {
	urls           []string // as configured; items may hold several, comma-separated
	clientID       string
	dynamicSuffix  string // "" when unset
	cleanSession   bool
	keepalive      time.Duration
	connectTimeout time.Duration
	will           willSettings
	maxUnacked     int
	mappings       []mappingSettings
	topics         []string
	qos            int
	// retainedOnResume is retained_on_resume: skip or forward (retained.go).
	retainedOnResume string
	protocol         string
	sessionExpiry    string
}

type willSettings struct {
	enabled  bool
	topic    string
	payload  string
	qos      int
	retained bool
}

type mappingSettings struct {
	mqttTopic   string
	danubeTopic string
	qos         any
	partitions  int
	reliable    *bool             // nil: unset
	attributes  map[string]string // attribute name -> "{placeholder}"
}

// checked is what check derives from valid settings.
type checked struct {
	sessionExpiry uint32   // seconds, MQTT 5 with clean_session: false
	urls          []string // split on commas, trimmed
	will          *willConfig
	mappings      []*mapping
	plain         bool
}

func readSettings(conf *service.ParsedConfig) (settings, error) {
	var s settings
	var err error
	if s.urls, err = conf.FieldStringList(fieldURLs); err != nil {
		return s, fmt.Errorf("%s: %w", fieldURLs, err)
	}
	if s.clientID, err = conf.FieldString(fieldClientID); err != nil {
		return s, fmt.Errorf("%s: %w", fieldClientID, err)
	}
	if conf.Contains(fieldDynamicSuffix) {
		if s.dynamicSuffix, err = conf.FieldString(fieldDynamicSuffix); err != nil {
			return s, fmt.Errorf("%s: %w", fieldDynamicSuffix, err)
		}
	}
	if s.cleanSession, err = conf.FieldBool(fieldCleanSession); err != nil {
		return s, fmt.Errorf("%s: %w", fieldCleanSession, err)
	}
	if s.keepalive, err = conf.FieldDuration(fieldKeepalive); err != nil {
		return s, fmt.Errorf("%s: %w", fieldKeepalive, err)
	}
	if s.connectTimeout, err = conf.FieldDuration(fieldConnectTimeout); err != nil {
		return s, fmt.Errorf("%s: %w", fieldConnectTimeout, err)
	}
	if s.will, err = readWill(conf.Namespace(fieldWill)); err != nil {
		return s, err
	}
	if s.maxUnacked, err = conf.FieldInt(fieldMaxUnacked); err != nil {
		return s, fmt.Errorf("%s: %w", fieldMaxUnacked, err)
	}
	if s.retainedOnResume, err = conf.FieldString(fieldRetainedOnResume); err != nil {
		return s, fmt.Errorf("%s: %w", fieldRetainedOnResume, err)
	}
	if s.protocol, err = conf.FieldString(fieldProtocol); err != nil {
		return s, fmt.Errorf("%s: %w", fieldProtocol, err)
	}
	if s.sessionExpiry, err = conf.FieldString(fieldSessionExpiry); err != nil {
		return s, fmt.Errorf("%s: %w", fieldSessionExpiry, err)
	}
	mconfs, err := conf.FieldObjectList(fieldMappings)
	if err != nil {
		return s, fmt.Errorf("%s: %w", fieldMappings, err)
	}
	for i, mc := range mconfs {
		m, err := readMapping(mc)
		if err != nil {
			return s, fmt.Errorf("%s[%d].%w", fieldMappings, i, err)
		}
		s.mappings = append(s.mappings, m)
	}
	if s.topics, err = conf.FieldStringList(fieldTopics); err != nil {
		return s, fmt.Errorf("%s: %w", fieldTopics, err)
	}
	if s.qos, err = conf.FieldInt(fieldQoS); err != nil {
		return s, fmt.Errorf("%s: %w", fieldQoS, err)
	}
	return s, nil
}

func readWill(conf *service.ParsedConfig) (willSettings, error) {
	var w willSettings
	var err error
	if w.enabled, err = conf.FieldBool("enabled"); err != nil {
		return w, fmt.Errorf("will.enabled: %w", err)
	}
	if w.topic, err = conf.FieldString("topic"); err != nil {
		return w, fmt.Errorf("will.topic: %w", err)
	}
	if w.payload, err = conf.FieldString("payload"); err != nil {
		return w, fmt.Errorf("will.payload: %w", err)
	}
	if w.qos, err = conf.FieldInt("qos"); err != nil {
		return w, fmt.Errorf("will.qos: %w", err)
	}
	if w.retained, err = conf.FieldBool("retained"); err != nil {
		return w, fmt.Errorf("will.retained: %w", err)
	}
	return w, nil
}

// readMapping reads one entry of topic_mappings. Its errors start with the
// field name, for the caller to prefix with topic_mappings[i].
func readMapping(mc *service.ParsedConfig) (mappingSettings, error) {
	var m mappingSettings
	var err error
	if m.mqttTopic, err = mc.FieldString(fieldMapMQTTTopic); err != nil {
		return m, fmt.Errorf("%s: %w", fieldMapMQTTTopic, err)
	}
	if m.danubeTopic, err = mc.FieldString(fieldMapDanubeTopic); err != nil {
		return m, fmt.Errorf("%s: %w", fieldMapDanubeTopic, err)
	}
	if m.qos, err = mc.FieldAny(fieldMapQoS); err != nil {
		return m, fmt.Errorf("%s: %w", fieldMapQoS, err)
	}
	if m.partitions, err = mc.FieldInt(fieldMapPartitions); err != nil {
		return m, fmt.Errorf("%s: %w", fieldMapPartitions, err)
	}
	if mc.Contains(fieldMapReliable) {
		r, err := mc.FieldBool(fieldMapReliable)
		if err != nil {
			return m, fmt.Errorf("%s: %w", fieldMapReliable, err)
		}
		m.reliable = &r
	}
	if m.attributes, err = mc.FieldStringMap(fieldMapAttributes); err != nil {
		return m, fmt.Errorf("%s: %w", fieldMapAttributes, err)
	}
	return m, nil
}

// check validates s. It returns every error found, each one line that names
// the field, and warnings about settings that are legal but almost certainly
// a mistake (a mapping that an earlier one shadows).
func (s *settings) check() (c checked, errs []error, warnings []string) {
	fail := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	for _, u := range s.urls {
		for _, part := range strings.Split(u, ",") {
			if part = strings.TrimSpace(part); part != "" {
				c.urls = append(c.urls, part)
			}
		}
	}
	if len(c.urls) == 0 {
		fail("%s: at least one broker URL is required", fieldURLs)
	}
	for i, u := range c.urls {
		if err := mqttconn.CheckBrokerURL(u); err != nil {
			fail("%s[%d]: %w", fieldURLs, i, err)
		}
	}

	if !s.cleanSession && s.clientID == "" {
		fail("%s: a persistent session (clean_session: false) needs a non-empty, stable client_id", fieldClientID)
	}
	switch s.dynamicSuffix {
	case "", "nanoid":
	default:
		fail("%s: unknown value %q (supported: nanoid)", fieldDynamicSuffix, s.dynamicSuffix)
	}
	if k := s.keepalive; k < 0 || (k > 0 && k < time.Second) || k > 65535*time.Second {
		fail("%s: must be 0 (disabled) or between 1s and 18h12m15s, got %v", fieldKeepalive, k)
	}
	if s.connectTimeout <= 0 {
		fail("%s: must be positive, got %v", fieldConnectTimeout, s.connectTimeout)
	}
	if s.will.enabled {
		w, err := s.will.check()
		if err != nil {
			errs = append(errs, err)
		}
		c.will = w
	}
	if s.maxUnacked < 1 {
		fail("%s: must be at least 1, got %d", fieldMaxUnacked, s.maxUnacked)
	}
	if err := checkRetainedOnResume(s.retainedOnResume); err != nil {
		errs = append(errs, err)
	}
	if err := checkProtocol(s.protocol); err != nil {
		errs = append(errs, err)
	}
	if exp, err := parseSessionExpiry(s.sessionExpiry); err != nil {
		errs = append(errs, err)
	} else {
		c.sessionExpiry = exp
	}

	switch {
	case len(s.mappings) == 0 && len(s.topics) == 0:
		fail("%s: no filters to subscribe to: list at least one mapping (or use the plain %s form)", fieldMappings, fieldTopics)
	case len(s.mappings) > 0 && len(s.topics) > 0:
		fail("%s and %s are mutually exclusive: set one of them", fieldMappings, fieldTopics)
	case len(s.mappings) > 0:
		var merrs []error
		c.mappings, merrs, warnings = checkMappings(s.mappings)
		errs = append(errs, merrs...)
	default:
		c.plain = true
		if s.qos < 0 || s.qos > 2 {
			fail("%s: must be 0, 1 or 2, got %d", fieldQoS, s.qos)
		}
		var perrs []error
		c.mappings, perrs = checkPlainTopics(s.topics, byte(max(0, min(s.qos, 2))))
		errs = append(errs, perrs...)
	}
	return c, errs, warnings
}

func (w willSettings) check() (*willConfig, error) {
	if w.topic == "" {
		return nil, errors.New("will.topic: must be set when will.enabled is true")
	}
	if err := topicmatch.ValidateTopicName(w.topic); err != nil {
		return nil, fmt.Errorf("will.topic: %w", err)
	}
	if w.qos < 0 || w.qos > 2 {
		return nil, fmt.Errorf("will.qos: must be 0, 1 or 2, got %d", w.qos)
	}
	return &willConfig{topic: w.topic, payload: w.payload, qos: byte(w.qos), retained: w.retained}, nil
}

// checkMappings parses topic_mappings. The warnings name each mapping that an
// earlier one shadows.
func checkMappings(list []mappingSettings) (out []*mapping, errs []error, warnings []string) {
	seen := map[string]int{}
	byTopic := map[string]*mapping{}
	for i, ms := range list {
		field := func(name string) string { return fmt.Sprintf("%s[%d].%s", fieldMappings, i, name) }
		fail := func(name string, err error) { errs = append(errs, fmt.Errorf("%s: %w", field(name), err)) }
		m := &mapping{index: i}
		var err error
		if m.filter, err = topicmatch.Parse(ms.mqttTopic); err != nil {
			fail(fieldMapMQTTTopic, err)
		} else if j, dup := seen[m.filter.Subscription()]; dup {
			fail(fieldMapMQTTTopic, fmt.Errorf("filter %q is the same subscription as %s[%d] (%q); the later mapping could never match",
				ms.mqttTopic, fieldMappings, j, m.filter.Subscription()))
		} else {
			seen[m.filter.Subscription()] = i
			for _, o := range out {
				if o.filter != nil && o.filter.Covers(m.filter) {
					warnings = append(warnings, fmt.Sprintf("%s: filter %q is shadowed by %s[%d] (%q): every topic it matches goes to the earlier mapping (the first match wins), so this mapping never routes a message; move it above %s[%d] or remove it",
						field(fieldMapMQTTTopic), ms.mqttTopic, fieldMappings, o.index, o.filter.String(), fieldMappings, o.index))
					break
				}
			}
		}
		if m.filter != nil {
			m.nCaps = len(m.filter.Placeholders())
			if m.tmpl, err = topicmatch.ParseTemplate(ms.danubeTopic, m.filter.Placeholders()); err != nil {
				fail(fieldMapDanubeTopic, err)
			}
			if m.attrs, err = parseCaptureAttrs(ms.attributes, m.filter.Placeholders()); err != nil {
				fail(fieldMapAttributes, err)
			}
		}
		qosOK := true
		if m.qos, err = parseQoS(ms.qos); err != nil {
			fail(fieldMapQoS, err)
			qosOK = false
		}
		m.partitions = ms.partitions
		if m.partitions < 0 {
			fail(fieldMapPartitions, fmt.Errorf("must be 0 (not partitioned) or positive, got %d", m.partitions))
		}
		m.reliable = m.qos > 0
		if ms.reliable != nil {
			m.reliable = *ms.reliable
		}
		// One Danube topic has one shape: mappings sharing a static topic
		// must agree on partitions and dispatch.
		if m.tmpl != nil && m.tmpl.Static() && qosOK {
			if o, ok := byTopic[ms.danubeTopic]; ok && (o.partitions != m.partitions || o.reliable != m.reliable) {
				fail(fieldMapDanubeTopic, fmt.Errorf("%q is also the target of %s[%d] with partitions %d and reliable_dispatch %v, here partitions %d and reliable_dispatch %v; one Danube topic has one shape",
					ms.danubeTopic, fieldMappings, o.index, o.partitions, o.reliable, m.partitions, m.reliable))
			} else if !ok {
				byTopic[ms.danubeTopic] = m
			}
		}
		out = append(out, m)
	}
	return out, errs, warnings
}

func checkPlainTopics(topics []string, qos byte) (out []*mapping, errs []error) {
	seen := map[string]bool{}
	for i, t := range topics {
		f, err := topicmatch.Parse(t)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s[%d]: %w", fieldTopics, i, err))
			continue
		}
		if len(f.Placeholders()) > 0 {
			errs = append(errs, fmt.Errorf("%s[%d]: placeholders are only meaningful in topic_mappings; use '+'", fieldTopics, i))
			continue
		}
		if seen[f.Subscription()] {
			continue
		}
		seen[f.Subscription()] = true
		out = append(out, &mapping{index: i, filter: f, qos: qos})
	}
	return out, errs
}

// lintChecks is what lint reports for the input: the errors and the
// warnings of check.
func lintChecks(conf *service.ParsedConfig) []string {
	s, err := readSettings(conf)
	if err != nil {
		return []string{err.Error()}
	}
	_, errs, warnings := s.check()
	var out []string
	for _, e := range errs {
		out = append(out, e.Error())
	}
	for _, w := range warnings {
		out = append(out, configlint.WarningPrefix+w)
	}
	return out
}
