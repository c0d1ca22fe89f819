package mqtt

import (
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"math/big"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/benthos-danube/benthos-danube/input/mqtt/topicmatch"
)

// mapping is one parsed entry of topic_mappings (or one filter of the plain
// topics form, with tmpl == nil).
type mapping struct {
	index      int
	filter     *topicmatch.Filter
	tmpl       *topicmatch.Template // nil in the plain topics form
	qos        byte
	partitions int
	reliable   bool
	nCaps      int
}

type willConfig struct {
	topic    string
	payload  string
	qos      byte
	retained bool
}

// config is the validated configuration of the input.
type config struct {
	urls           []string
	clientID       string
	user, password string
	tls            *tls.Config
	keepalive      time.Duration
	connectTimeout time.Duration
	cleanSession   bool
	will           *willConfig
	maxUnacked     int
	orderedAcks    bool
	mappings       []*mapping
	plain          bool // topics form: no Danube routing
	warnings       []string

	retainedOnResume string // retained_on_resume: skip or forward (retained.go)
}

var validSchemes = map[string]bool{
	"tcp": true, "mqtt": true, "ssl": true, "tls": true, "mqtts": true, "mqtt+ssl": true, "tcps": true,
	"ws": true, "wss": true, "unix": true,
}

func parseConfig(conf *service.ParsedConfig) (*config, error) {
	c := &config{}
	var err error
	if c.urls, err = conf.FieldStringList(fieldURLs); err != nil {
		return nil, fmt.Errorf("%s: %w", fieldURLs, err)
	}
	var urls []string
	for _, u := range c.urls {
		for _, part := range strings.Split(u, ",") {
			if part = strings.TrimSpace(part); part != "" {
				urls = append(urls, part)
			}
		}
	}
	if len(urls) == 0 {
		return nil, fmt.Errorf("%s: at least one broker URL is required", fieldURLs)
	}
	for i, u := range urls {
		pu, err := url.Parse(u)
		if err != nil {
			return nil, fmt.Errorf("%s[%d]: %w", fieldURLs, i, err)
		}
		if !validSchemes[pu.Scheme] {
			return nil, fmt.Errorf("%s[%d]: unsupported scheme in %q: use tcp://, ssl://, ws:// or wss://", fieldURLs, i, u)
		}
	}
	c.urls = urls

	if c.clientID, err = conf.FieldString(fieldClientID); err != nil {
		return nil, err
	}
	if c.cleanSession, err = conf.FieldBool(fieldCleanSession); err != nil {
		return nil, err
	}
	if !c.cleanSession && c.clientID == "" {
		return nil, fmt.Errorf("%s: a persistent session (clean_session: false) needs a non-empty, stable client_id", fieldClientID)
	}
	if conf.Contains(fieldDynamicSuffix) {
		suffix, err := conf.FieldString(fieldDynamicSuffix)
		if err != nil {
			return nil, err
		}
		switch suffix {
		case "nanoid":
			c.clientID += nanoid()
			if !c.cleanSession {
				c.warnings = append(c.warnings, "dynamic_client_id_suffix with clean_session: false: the session cannot be resumed after a restart because the client id changes")
			}
		case "":
		default:
			return nil, fmt.Errorf("%s: unknown value %q (supported: nanoid)", fieldDynamicSuffix, suffix)
		}
	}
	if c.user, err = conf.FieldString(fieldUser); err != nil {
		return nil, err
	}
	if c.password, err = conf.FieldString(fieldPassword); err != nil {
		return nil, err
	}
	tlsConf, tlsOn, err := conf.FieldTLSToggled(fieldTLS)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", fieldTLS, err)
	}
	if tlsOn {
		c.tls = tlsConf
	}
	if c.keepalive, err = conf.FieldDuration(fieldKeepalive); err != nil {
		return nil, fmt.Errorf("%s: %w", fieldKeepalive, err)
	}
	if c.keepalive < 0 || (c.keepalive > 0 && c.keepalive < time.Second) || c.keepalive > 65535*time.Second {
		return nil, fmt.Errorf("%s: must be 0 (disabled) or between 1s and 18h12m15s, got %v", fieldKeepalive, c.keepalive)
	}
	if c.connectTimeout, err = conf.FieldDuration(fieldConnectTimeout); err != nil {
		return nil, fmt.Errorf("%s: %w", fieldConnectTimeout, err)
	}
	if c.connectTimeout <= 0 {
		return nil, fmt.Errorf("%s: must be positive, got %v", fieldConnectTimeout, c.connectTimeout)
	}
	if c.will, err = parseWill(conf.Namespace(fieldWill)); err != nil {
		return nil, err
	}
	if c.orderedAcks, err = conf.FieldBool(fieldOrderedAcks); err != nil {
		return nil, fmt.Errorf("%s: %w", fieldOrderedAcks, err)
	}
	if c.retainedOnResume, err = parseRetainedOnResume(conf); err != nil {
		return nil, err
	}
	if c.maxUnacked, err = conf.FieldInt(fieldMaxUnacked); err != nil {
		return nil, err
	}
	if c.maxUnacked < 1 {
		return nil, fmt.Errorf("%s: must be at least 1, got %d", fieldMaxUnacked, c.maxUnacked)
	}

	mconfs, err := conf.FieldObjectList(fieldMappings)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", fieldMappings, err)
	}
	topics, err := conf.FieldStringList(fieldTopics)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", fieldTopics, err)
	}
	switch {
	case len(mconfs) == 0 && len(topics) == 0:
		return nil, fmt.Errorf("%s: no filters to subscribe to: list at least one mapping (or use the plain %s form)", fieldMappings, fieldTopics)
	case len(mconfs) > 0 && len(topics) > 0:
		return nil, fmt.Errorf("%s and %s are mutually exclusive: set one of them", fieldMappings, fieldTopics)
	case len(mconfs) > 0:
		if c.mappings, err = parseMappings(mconfs); err != nil {
			return nil, err
		}
	default:
		c.plain = true
		qos, err := conf.FieldInt(fieldQoS)
		if err != nil {
			return nil, err
		}
		if qos < 0 || qos > 2 {
			return nil, fmt.Errorf("%s: must be 0, 1 or 2, got %d", fieldQoS, qos)
		}
		if c.mappings, err = parsePlainTopics(topics, byte(qos)); err != nil {
			return nil, err
		}
	}

	if c.cleanSession {
		var qos1 []string
		for _, m := range c.mappings {
			if m.qos > 0 {
				qos1 = append(qos1, m.filter.Subscription())
			}
		}
		if len(qos1) > 0 {
			c.warnings = append(c.warnings, fmt.Sprintf("QoS >= 1 subscriptions %q run with clean_session: true: messages published while the bridge is disconnected are lost; set clean_session: false and a stable client_id for at-least-once across restarts", qos1))
		}
	}
	return c, nil
}

func parseWill(conf *service.ParsedConfig) (*willConfig, error) {
	enabled, err := conf.FieldBool("enabled")
	if err != nil || !enabled {
		return nil, err
	}
	w := &willConfig{}
	if w.topic, err = conf.FieldString("topic"); err != nil {
		return nil, err
	}
	if w.topic == "" {
		return nil, errors.New("will.topic: must be set when will.enabled is true")
	}
	if err := topicmatch.ValidateTopicName(w.topic); err != nil {
		return nil, fmt.Errorf("will.topic: %w", err)
	}
	if w.payload, err = conf.FieldString("payload"); err != nil {
		return nil, err
	}
	if w.retained, err = conf.FieldBool("retained"); err != nil {
		return nil, err
	}
	q, err := conf.FieldInt("qos")
	if err != nil {
		return nil, err
	}
	if q < 0 || q > 2 {
		return nil, fmt.Errorf("will.qos: must be 0, 1 or 2, got %d", q)
	}
	w.qos = byte(q)
	return w, nil
}

func parseMappings(mconfs []*service.ParsedConfig) ([]*mapping, error) {
	var out []*mapping
	seen := map[string]int{}
	byTopic := map[string]*mapping{}
	for i, mc := range mconfs {
		field := func(name string) string { return fmt.Sprintf("%s[%d].%s", fieldMappings, i, name) }
		m := &mapping{index: i}
		raw, err := mc.FieldString(fieldMapMQTTTopic)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", field(fieldMapMQTTTopic), err)
		}
		if m.filter, err = topicmatch.Parse(raw); err != nil {
			return nil, fmt.Errorf("%s: %w", field(fieldMapMQTTTopic), err)
		}
		if j, dup := seen[m.filter.Subscription()]; dup {
			return nil, fmt.Errorf("%s: filter %q is the same subscription as %s[%d] (%q); the later mapping could never match", field(fieldMapMQTTTopic), raw, fieldMappings, j, m.filter.Subscription())
		}
		seen[m.filter.Subscription()] = i
		names := m.filter.Placeholders()
		m.nCaps = len(names)

		dt, err := mc.FieldString(fieldMapDanubeTopic)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", field(fieldMapDanubeTopic), err)
		}
		if m.tmpl, err = topicmatch.ParseTemplate(dt, names); err != nil {
			return nil, fmt.Errorf("%s: %w", field(fieldMapDanubeTopic), err)
		}

		anyQoS, err := mc.FieldAny(fieldMapQoS)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", field(fieldMapQoS), err)
		}
		if m.qos, err = parseQoS(anyQoS); err != nil {
			return nil, fmt.Errorf("%s: %w", field(fieldMapQoS), err)
		}
		if m.partitions, err = mc.FieldInt(fieldMapPartitions); err != nil {
			return nil, fmt.Errorf("%s: %w", field(fieldMapPartitions), err)
		}
		if m.partitions < 0 {
			return nil, fmt.Errorf("%s: must be 0 (not partitioned) or positive, got %d", field(fieldMapPartitions), m.partitions)
		}
		m.reliable = m.qos > 0
		if mc.Contains(fieldMapReliable) {
			if m.reliable, err = mc.FieldBool(fieldMapReliable); err != nil {
				return nil, fmt.Errorf("%s: %w", field(fieldMapReliable), err)
			}
		}
		// One Danube topic has one shape: mappings sharing a static topic
		// must agree on partitions and dispatch.
		if m.tmpl.Static() {
			if o, ok := byTopic[dt]; ok && (o.partitions != m.partitions || o.reliable != m.reliable) {
				return nil, fmt.Errorf("%s: %q is also the target of %s[%d] with partitions %d and reliable_dispatch %v, here partitions %d and reliable_dispatch %v; one Danube topic has one shape",
					field(fieldMapDanubeTopic), dt, fieldMappings, o.index, o.partitions, o.reliable, m.partitions, m.reliable)
			}
			byTopic[dt] = m
		}
		out = append(out, m)
	}
	return out, nil
}

func parsePlainTopics(topics []string, qos byte) ([]*mapping, error) {
	var out []*mapping
	seen := map[string]bool{}
	for i, t := range topics {
		f, err := topicmatch.Parse(t)
		if err != nil {
			return nil, fmt.Errorf("%s[%d]: %w", fieldTopics, i, err)
		}
		if len(f.Placeholders()) > 0 {
			return nil, fmt.Errorf("%s[%d]: placeholders are only meaningful in topic_mappings; use '+'", fieldTopics, i)
		}
		if seen[f.Subscription()] {
			continue
		}
		seen[f.Subscription()] = true
		out = append(out, &mapping{index: i, filter: f, qos: qos})
	}
	return out, nil
}

// parseQoS accepts 0, 1, 2 (as numbers or numeric strings) and the Rust
// connector's AtMostOnce, AtLeastOnce, ExactlyOnce.
func parseQoS(v any) (byte, error) {
	var n int64
	switch t := v.(type) {
	case int:
		n = int64(t)
	case int64:
		n = t
	case uint64:
		n = int64(t)
	case float64:
		if t != float64(int64(t)) {
			return 0, fmt.Errorf("must be 0, 1, 2, AtMostOnce, AtLeastOnce or ExactlyOnce, got %v", t)
		}
		n = int64(t)
	case string:
		switch t {
		case "AtMostOnce":
			return 0, nil
		case "AtLeastOnce":
			return 1, nil
		case "ExactlyOnce":
			return 2, nil
		}
		var err error
		if n, err = strconv.ParseInt(strings.TrimSpace(t), 10, 64); err != nil {
			return 0, fmt.Errorf("must be 0, 1, 2, AtMostOnce, AtLeastOnce or ExactlyOnce, got %q", t)
		}
	default:
		return 0, fmt.Errorf("must be 0, 1, 2, AtMostOnce, AtLeastOnce or ExactlyOnce, got %v", v)
	}
	if n < 0 || n > 2 {
		return 0, fmt.Errorf("must be 0, 1, 2, AtMostOnce, AtLeastOnce or ExactlyOnce, got %d", n)
	}
	return byte(n), nil
}

const nanoidAlphabet = "_-0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"

// nanoid returns a 21 character random id over the nanoid URL-safe alphabet.
func nanoid() string {
	b := make([]byte, 21)
	max := big.NewInt(int64(len(nanoidAlphabet)))
	for i := range b {
		n, err := rand.Int(rand.Reader, max)
		if err != nil {
			panic(fmt.Sprintf("crypto/rand failed: %v", err))
		}
		b[i] = nanoidAlphabet[n.Int64()]
	}
	return string(b)
}
