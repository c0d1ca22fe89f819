package mqtt

import (
	"crypto/rand"
	"crypto/tls"
	"fmt"
	"math/big"
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
	attrs      []captureAttr // placeholder values set as metadata (captureattrs.go)
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

	protocol      string // protocol_version
	sessionExpiry uint32 // MQTT 5 session expiry interval in seconds; 0 with clean_session: true
}

// parseConfig is the start-up validation: the checks of settings.check,
// which lint runs too, then what only start-up does (TLS files, the client id
// suffix). It returns the first error.
func parseConfig(conf *service.ParsedConfig) (*config, error) {
	s, err := readSettings(conf)
	if err != nil {
		return nil, err
	}
	chk, errs, warnings := s.check()
	if len(errs) > 0 {
		return nil, errs[0]
	}
	c := &config{
		urls:           chk.urls,
		clientID:       s.clientID,
		cleanSession:   s.cleanSession,
		keepalive:      s.keepalive,
		connectTimeout: s.connectTimeout,
		will:           chk.will,
		maxUnacked:     s.maxUnacked,
		mappings:       chk.mappings,
		plain:          chk.plain,
		warnings:       warnings,
	}
	if s.dynamicSuffix == "nanoid" {
		c.clientID += nanoid()
		if !c.cleanSession {
			c.warnings = append(c.warnings, "dynamic_client_id_suffix with clean_session: false: the session cannot be resumed after a restart because the client id changes")
		}
	}
	if c.user, err = conf.FieldString(fieldUser); err != nil {
		return nil, fmt.Errorf("%s: %w", fieldUser, err)
	}
	if c.password, err = conf.FieldString(fieldPassword); err != nil {
		return nil, fmt.Errorf("%s: %w", fieldPassword, err)
	}
	tlsConf, tlsOn, err := conf.FieldTLSToggled(fieldTLS)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", fieldTLS, err)
	}
	if tlsOn {
		c.tls = tlsConf
	}
	if c.orderedAcks, err = conf.FieldBool(fieldOrderedAcks); err != nil {
		return nil, fmt.Errorf("%s: %w", fieldOrderedAcks, err)
	}
	c.retainedOnResume = s.retainedOnResume
	c.protocol = s.protocol
	if !c.cleanSession {
		c.sessionExpiry = chk.sessionExpiry
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

// sessionNever is the session_expiry that keeps a session until the broker
// removes it: 0xFFFFFFFF, which MQTT 5 defines as "does not expire".
const sessionNever = "never"

// parseSessionExpiry parses session_expiry into seconds.
func parseSessionExpiry(v string) (uint32, error) {
	if strings.TrimSpace(v) == sessionNever {
		return 0xFFFFFFFF, nil
	}
	d, err := time.ParseDuration(strings.TrimSpace(v))
	if err != nil {
		return 0, fmt.Errorf("%s: %q is neither %s nor a duration such as 24h", fieldSessionExpiry, v, sessionNever)
	}
	if d < time.Second || d/time.Second >= 0xFFFFFFFF {
		return 0, fmt.Errorf("%s: must be %s or between 1s and %v, got %v", fieldSessionExpiry, sessionNever, time.Duration(0xFFFFFFFE)*time.Second, d)
	}
	return uint32(d / time.Second), nil
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
