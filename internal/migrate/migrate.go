// Package migrate turns the TOML configuration of the Rust Danube MQTT source
// connector into an equivalent benthos-danube pipeline YAML. It reads both
// dialects, told apart by the file itself:
//
//   - danube-connect 0.1/0.2 (danube-source-mqtt 0.1.x):
//     [[mqtt.topic_mappings]] with mqtt_topic / danube_topic; payloads are
//     forwarded raw;
//   - danube-connectors 0.3 (danube-source-mqtt 0.3): [[mqtt.routes]] with
//     from / to, [[schemas]] and processing.health_check_*; payloads are
//     re-serialised (JSON) or base64-wrapped, which the generated pipeline
//     reproduces with the danube_connector_payload processor unless
//     Options.RawPayloads is set.
//
// It reproduces the connector's loading rules: the same required keys, the
// same defaults, the same environment overrides (DANUBE_SERVICE_URL,
// CONNECTOR_NAME, MQTT_BROKER_HOST, MQTT_BROKER_PORT, MQTT_CLIENT_ID,
// MQTT_USERNAME, MQTT_PASSWORD, MQTT_USE_TLS) with their parse behaviour, and
// the same validation. Where the connector silently ignored something (an
// unknown key, an unparsable MQTT_BROKER_PORT, a setting it parsed but never
// applied) the conversion reports a warning instead.
//
// The package is pure: no I/O apart from what the caller passes in, so it can
// be tested and fuzzed directly.
package migrate

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"

	"github.com/pelletier/go-toml/v2"

	"github.com/benthos-danube/benthos-danube/internal/danube"
)

// Options tune a conversion.
type Options struct {
	// LookupEnv reads an environment variable. Nil means os.LookupEnv; use
	// NoEnv to ignore the environment entirely.
	LookupEnv func(key string) (string, bool)
	// SourceName names the TOML file in the generated header comment.
	SourceName string
	// RawPayloads keeps the MQTT payloads as they came for a 0.3 file,
	// instead of the bytes the 0.3 connector writes. 0.1/0.2 files always
	// forward raw payloads, as their connector did.
	RawPayloads bool
}

// Dialect is the connector version family a TOML file is written for.
type Dialect string

const (
	// DialectConnect02 is danube-connect 0.1/0.2: [[mqtt.topic_mappings]].
	DialectConnect02 Dialect = "danube-connect 0.1/0.2"
	// DialectConnectors03 is danube-connectors 0.3: [[mqtt.routes]].
	DialectConnectors03 Dialect = "danube-connectors 0.3"
)

// NoEnv is a LookupEnv that finds nothing, for conversions that must not
// depend on the caller's environment.
func NoEnv(string) (string, bool) { return "", false }

// Result is a successful conversion.
type Result struct {
	// YAML is the generated pipeline configuration.
	YAML []byte
	// Warnings are behaviour differences and ignored settings the user should
	// review. They are also written as comments at the top of YAML.
	Warnings []string
	// EnvApplied lists the environment variables that overrode a TOML value.
	EnvApplied []string
	// Dialect is the dialect the file was read as.
	Dialect Dialect
}

// EnvVars lists every environment variable the Rust connector reads, in the
// order of its documentation.
var EnvVars = []string{
	"CONNECTOR_CONFIG_PATH",
	"DANUBE_SERVICE_URL",
	"CONNECTOR_NAME",
	"MQTT_BROKER_HOST",
	"MQTT_BROKER_PORT",
	"MQTT_CLIENT_ID",
	"MQTT_USERNAME",
	"MQTT_PASSWORD",
	"MQTT_USE_TLS",
	"RUST_LOG",
}

// Raw TOML shapes. Pointers record whether a key was present, so defaults
// and "required in TOML" rules can be applied exactly like the connector.

type rawConfig struct {
	DanubeServiceURL *string        `toml:"danube_service_url"`
	ConnectorName    *string        `toml:"connector_name"`
	Retry            *rawRetry      `toml:"retry"`
	Processing       *rawProcessing `toml:"processing"`
	MQTT             *rawMQTT       `toml:"mqtt"`
	Schemas          *[]rawSchema   `toml:"schemas"` // 0.3
}

type rawRetry struct {
	MaxRetries     *int64 `toml:"max_retries"`
	RetryBackoffMS *int64 `toml:"retry_backoff_ms"`
	MaxBackoffMS   *int64 `toml:"max_backoff_ms"`
}

type rawProcessing struct {
	BatchSize      *int64  `toml:"batch_size"`
	BatchTimeoutMS *int64  `toml:"batch_timeout_ms"`
	PollIntervalMS *int64  `toml:"poll_interval_ms"`
	MetricsPort    *int64  `toml:"metrics_port"`
	LogLevel       *string `toml:"log_level"`
	// 0.3 (danube-connect-core 0.5)
	HealthCheckIntervalMS       *int64 `toml:"health_check_interval_ms"`
	HealthCheckFailureThreshold *int64 `toml:"health_check_failure_threshold"`
}

type rawMQTT struct {
	BrokerHost            *string       `toml:"broker_host"`
	BrokerPort            *int64        `toml:"broker_port"`
	ClientID              *string       `toml:"client_id"`
	Username              *string       `toml:"username"`
	Password              *string       `toml:"password"`
	UseTLS                *bool         `toml:"use_tls"`
	KeepAliveSecs         *int64        `toml:"keep_alive_secs"`
	ConnectionTimeoutSecs *int64        `toml:"connection_timeout_secs"`
	MaxPacketSize         *int64        `toml:"max_packet_size"`
	CleanSession          *bool         `toml:"clean_session"`
	IncludeMetadata       *bool         `toml:"include_metadata"`
	TCPNoDelay            *bool         `toml:"tcp_nodelay"`
	TopicMappings         *[]rawMapping `toml:"topic_mappings"` // 0.1/0.2
	Routes                *[]rawMapping `toml:"routes"`         // 0.3
}

// rawMapping is a [[mqtt.topic_mappings]] (mqtt_topic, danube_topic) or a
// [[mqtt.routes]] (from, to) entry; the keys of the other dialect are
// reported as unknown.
type rawMapping struct {
	MQTTTopic        *string `toml:"mqtt_topic"`
	DanubeTopic      *string `toml:"danube_topic"`
	From             *string `toml:"from"`
	To               *string `toml:"to"`
	QoS              any     `toml:"qos"`
	Partitions       *int64  `toml:"partitions"`
	ReliableDispatch *bool   `toml:"reliable_dispatch"`
}

// connector is the effective configuration after defaults and env overrides.
type connector struct {
	dialect       Dialect
	danubeURL     string
	connectorName string

	maxRetries, retryBackoffMS, maxBackoffMS int64
	retrySet                                 bool

	batchSize, batchTimeoutMS, pollIntervalMS int64
	metricsPort                               int64
	metricsPortSet                            bool
	logLevel                                  string
	logLevelSet                               bool
	processingSet                             bool
	healthInterval, healthThreshold           int64
	healthSet                                 bool

	brokerHost     string
	brokerPort     int64
	clientID       string
	username       *string
	password       *string
	passwordInTOML bool
	useTLS         bool
	useTLSSet      bool
	keepAliveSecs  int64
	connTimeout    int64
	connTimeoutSet bool
	maxPacketSize  int64
	maxPacketSet   bool
	cleanSession   bool
	includeMeta    bool
	tcpNoDelay     bool
	tcpNoDelaySet  bool
	mappings       []mapping
	schemas        []schema // 0.3 [[schemas]], one per topic (the last wins)
}

type mapping struct {
	mqttTopic   string
	danubeTopic string
	qos         int // 0, 1 or 2
	qosName     string
	partitions  int64
	reliable    *bool
}

// Rust connector defaults.
const (
	defaultMaxRetries     = 3
	defaultRetryBackoffMS = 1000
	defaultMaxBackoffMS   = 30000
	defaultBatchSize      = 1000
	defaultBatchTimeoutMS = 1000
	defaultPollIntervalMS = 100
	defaultMetricsPort    = 9090
	defaultLogLevel       = "info"
	defaultBrokerPort     = 1883
	defaultKeepAliveSecs  = 60
	defaultConnTimeout    = 30
	defaultMaxPacketSize  = 10485760
	// 0.3 (danube-connect-core 0.5)
	defaultHealthIntervalMS = 30000
	defaultHealthFailThresh = 3
)

var qosNames = []string{"AtMostOnce", "AtLeastOnce", "ExactlyOnce"}

// ConvertFile reads the TOML file at path and converts it.
func ConvertFile(path string, opts Options) (*Result, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("failed to read config file %s: %w", path, err)
	}
	if opts.SourceName == "" {
		opts.SourceName = path
	}
	return Convert(data, opts)
}

// Convert parses a Rust connector TOML document, applies the environment
// overrides and validation of the connector and returns the equivalent
// pipeline YAML. Errors are the ones that would have stopped the Rust
// connector (parse errors, missing or empty required keys, bad QoS strings)
// plus the startup failures it only found at run time (invalid MQTT filters,
// invalid Danube topic names).
func Convert(data []byte, opts Options) (*Result, error) {
	lookup := opts.LookupEnv
	if lookup == nil {
		lookup = os.LookupEnv
	}
	w := &collector{}

	var raw rawConfig
	dec := toml.NewDecoder(bytes.NewReader(data)).DisallowUnknownFields()
	if err := dec.Decode(&raw); err != nil {
		var strict *toml.StrictMissingError
		if !errors.As(err, &strict) {
			return nil, fmt.Errorf("failed to parse config: %s", describeTOMLError(err))
		}
		for _, e := range strict.Errors {
			row, col := e.Position()
			w.warnf("unknown key %q (line %d, column %d) ignored: the Rust connector silently ignored it too%s",
				strings.Join(e.Key(), "."), row, col, unknownKeyHint(e.Key()))
		}
	}

	c, err := resolve(&raw, lookup, w)
	if err != nil {
		return nil, err
	}
	out := render(c, opts, w)
	return &Result{YAML: out, Warnings: w.warnings, EnvApplied: w.env, Dialect: c.dialect}, nil
}

// describeTOMLError adds the position to go-toml decode errors.
func describeTOMLError(err error) string {
	var de *toml.DecodeError
	if errors.As(err, &de) {
		row, col := de.Position()
		return fmt.Sprintf("line %d, column %d: %v", row, col, de)
	}
	return err.Error()
}

// unknownKeyHint explains the unknown keys the connector's own docs used.
func unknownKeyHint(key []string) string {
	if len(key) == 1 {
		switch key[0] {
		case "metrics_port", "log_level":
			return " (it belongs under [processing]; set it there if you meant it)"
		}
	}
	if len(key) == 2 && key[0] == "mqtt" {
		switch key[1] {
		case "ca_cert_path", "client_cert_path", "client_key_path":
			return " (never implemented by the connector; use the input's tls.root_cas_file / tls.client_certs fields)"
		}
	}
	if len(key) == 3 && key[0] == "mqtt" && key[2] == "reliable" {
		return " (did you mean reliable_dispatch?)"
	}
	return ""
}

type collector struct {
	warnings []string
	env      []string
}

func (c *collector) warnf(format string, args ...any) {
	c.warnings = append(c.warnings, fmt.Sprintf(format, args...))
}

// resolve applies defaults, env overrides and validation.
func resolve(raw *rawConfig, lookup func(string) (string, bool), w *collector) (*connector, error) {
	var errs []error
	errf := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	// Missing required keys are parse errors in the Rust connector, even when
	// an environment variable would override them afterwards.
	c := &connector{}
	var missing []string
	if raw.DanubeServiceURL == nil {
		missing = append(missing, "danube_service_url")
	} else {
		c.danubeURL = *raw.DanubeServiceURL
	}
	if raw.ConnectorName == nil {
		missing = append(missing, "connector_name")
	} else {
		c.connectorName = *raw.ConnectorName
	}
	m := raw.MQTT
	if m == nil {
		missing = append(missing, "mqtt")
		m = &rawMQTT{}
	}
	if raw.MQTT != nil {
		if m.BrokerHost == nil {
			missing = append(missing, "mqtt.broker_host")
		}
		if m.ClientID == nil {
			missing = append(missing, "mqtt.client_id")
		}
		if m.TopicMappings == nil && m.Routes == nil {
			missing = append(missing, "mqtt.routes (danube-connectors 0.3) or mqtt.topic_mappings (danube-connect 0.1/0.2)")
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("failed to parse config: missing required key(s): %s", strings.Join(missing, ", "))
	}
	if m.TopicMappings != nil && m.Routes != nil {
		return nil, errors.New("failed to parse config: both [[mqtt.routes]] (danube-connectors 0.3) and [[mqtt.topic_mappings]] (danube-connect 0.1/0.2) are present: each connector version ignores the other's list, keep the one of the version you run")
	}
	c.dialect = DialectConnect02
	rawMappings := deref(m.TopicMappings)
	if m.Routes != nil {
		c.dialect = DialectConnectors03
		rawMappings = *m.Routes
	}
	crossDialectKeys(raw, c.dialect, w)

	c.maxRetries, c.retryBackoffMS, c.maxBackoffMS = defaultMaxRetries, defaultRetryBackoffMS, defaultMaxBackoffMS
	if r := raw.Retry; r != nil {
		c.retrySet = true
		setInt(&c.maxRetries, r.MaxRetries)
		setInt(&c.retryBackoffMS, r.RetryBackoffMS)
		setInt(&c.maxBackoffMS, r.MaxBackoffMS)
	}
	c.batchSize, c.batchTimeoutMS, c.pollIntervalMS = defaultBatchSize, defaultBatchTimeoutMS, defaultPollIntervalMS
	c.metricsPort, c.logLevel = defaultMetricsPort, defaultLogLevel
	if p := raw.Processing; p != nil {
		c.processingSet = true
		setInt(&c.batchSize, p.BatchSize)
		setInt(&c.batchTimeoutMS, p.BatchTimeoutMS)
		setInt(&c.pollIntervalMS, p.PollIntervalMS)
		if p.MetricsPort != nil {
			c.metricsPort, c.metricsPortSet = *p.MetricsPort, true
		}
		if p.LogLevel != nil {
			c.logLevel, c.logLevelSet = *p.LogLevel, true
		}
		if c.dialect == DialectConnectors03 {
			c.healthInterval, c.healthThreshold = defaultHealthIntervalMS, defaultHealthFailThresh
			c.healthSet = p.HealthCheckIntervalMS != nil || p.HealthCheckFailureThreshold != nil
			setInt(&c.healthInterval, p.HealthCheckIntervalMS)
			setInt(&c.healthThreshold, p.HealthCheckFailureThreshold)
		}
	}

	c.brokerHost = deref(m.BrokerHost)
	c.brokerPort = defaultBrokerPort
	setInt(&c.brokerPort, m.BrokerPort)
	c.clientID = deref(m.ClientID)
	c.username, c.password = m.Username, m.Password
	c.passwordInTOML = m.Password != nil
	if m.UseTLS != nil {
		c.useTLS, c.useTLSSet = *m.UseTLS, true
	}
	c.keepAliveSecs = defaultKeepAliveSecs
	setInt(&c.keepAliveSecs, m.KeepAliveSecs)
	c.connTimeout = defaultConnTimeout
	if m.ConnectionTimeoutSecs != nil {
		c.connTimeout, c.connTimeoutSet = *m.ConnectionTimeoutSecs, true
	}
	c.maxPacketSize = defaultMaxPacketSize
	if m.MaxPacketSize != nil {
		c.maxPacketSize, c.maxPacketSet = *m.MaxPacketSize, true
	}
	c.cleanSession = boolOr(m.CleanSession, true)
	c.includeMeta = boolOr(m.IncludeMetadata, true)
	c.tcpNoDelay = boolOr(m.TCPNoDelay, true)
	c.tcpNoDelaySet = m.TCPNoDelay != nil

	// Type ranges the Rust parser enforces (u16, u32, u64, usize).
	checkRange := func(key string, v, lo, hi int64) {
		if v < lo || v > hi {
			errf("failed to parse config: %s = %d is out of range [%d, %d]", key, v, lo, hi)
		}
	}
	checkRange("mqtt.broker_port", c.brokerPort, 0, math.MaxUint16)
	checkRange("processing.metrics_port", c.metricsPort, 0, math.MaxUint16)
	checkRange("retry.max_retries", c.maxRetries, 0, math.MaxUint32)
	for _, kv := range []struct {
		key string
		v   int64
	}{
		{"retry.retry_backoff_ms", c.retryBackoffMS}, {"retry.max_backoff_ms", c.maxBackoffMS},
		{"processing.batch_size", c.batchSize}, {"processing.batch_timeout_ms", c.batchTimeoutMS},
		{"processing.poll_interval_ms", c.pollIntervalMS}, {"mqtt.keep_alive_secs", c.keepAliveSecs},
		{"mqtt.connection_timeout_secs", c.connTimeout}, {"mqtt.max_packet_size", c.maxPacketSize},
		{"processing.health_check_interval_ms", c.healthInterval}, {"processing.health_check_failure_threshold", c.healthThreshold},
	} {
		checkRange(kv.key, kv.v, 0, math.MaxInt64)
	}

	for i, rm := range rawMappings {
		mp, err := resolveMapping(c.dialect, i, rm, w)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		c.mappings = append(c.mappings, mp)
	}

	applyEnv(c, lookup, w)

	// The connector's own validation (core, then MQTT).
	if c.danubeURL == "" {
		errf("danube_service_url cannot be empty")
	}
	if c.connectorName == "" {
		errf("connector_name cannot be empty")
	}
	if c.maxRetries > 100 {
		errf("max_retries too high (max 100)")
	}
	if c.batchSize == 0 {
		errf("batch_size must be > 0")
	}
	if c.brokerHost == "" {
		errf("broker_host cannot be empty")
	}
	if c.clientID == "" {
		errf("client_id cannot be empty")
	}
	if len(rawMappings) == 0 {
		if c.dialect == DialectConnectors03 {
			errf("At least one route is required")
		} else {
			errf("At least one topic mapping is required")
		}
	}
	if c.dialect == DialectConnectors03 {
		var err error
		if c.schemas, err = resolveSchemas(deref(raw.Schemas), c.mappings, w); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("invalid connector config: %w", errors.Join(errs...))
	}
	checkSemantics(c, w)
	return c, nil
}

func resolveMapping(d Dialect, i int, rm rawMapping, w *collector) (mapping, error) {
	var errs []error
	mp := mapping{mqttTopic: deref(rm.MQTTTopic), danubeTopic: deref(rm.DanubeTopic)}
	where := fmt.Sprintf("mqtt.topic_mappings[%d]", i)
	fromKey, toKey := "mqtt_topic", "danube_topic"
	fromPtr, toPtr := rm.MQTTTopic, rm.DanubeTopic
	hintFrom, hintTo := "", ""
	if d == DialectConnectors03 {
		where = fmt.Sprintf("mqtt.routes[%d]", i)
		fromKey, toKey = "from", "to"
		fromPtr, toPtr = rm.From, rm.To
		mp = mapping{mqttTopic: deref(rm.From), danubeTopic: deref(rm.To)}
		if rm.MQTTTopic != nil {
			hintFrom = " (0.3 renamed mqtt_topic to from, without an alias)"
			w.warnf("%s: unknown key %q ignored: the 0.3 connector ignores it too; the key is now `from`", where, "mqtt_topic")
		}
		if rm.DanubeTopic != nil {
			hintTo = " (0.3 renamed danube_topic to to, without an alias)"
			w.warnf("%s: unknown key %q ignored: the 0.3 connector ignores it too; the key is now `to`", where, "danube_topic")
		}
	} else {
		if rm.From != nil {
			hintFrom = " (from is the danube-connectors 0.3 name; this file uses [[mqtt.topic_mappings]], the 0.1/0.2 list)"
			w.warnf("%s: unknown key %q ignored: the 0.1/0.2 connector ignores it too (it is 0.3's name for mqtt_topic, in [[mqtt.routes]])", where, "from")
		}
		if rm.To != nil {
			hintTo = " (to is the danube-connectors 0.3 name; this file uses [[mqtt.topic_mappings]], the 0.1/0.2 list)"
			w.warnf("%s: unknown key %q ignored: the 0.1/0.2 connector ignores it too (it is 0.3's name for danube_topic, in [[mqtt.routes]])", where, "to")
		}
	}
	if fromPtr == nil {
		errs = append(errs, fmt.Errorf("%s: missing field `%s`%s", where, fromKey, hintFrom))
	} else if mp.mqttTopic == "" {
		errs = append(errs, fmt.Errorf("%s: MQTT topic cannot be empty", where))
	} else if err := ValidateFilter(mp.mqttTopic); err != nil {
		// The Rust connector failed at subscribe time: "Failed to subscribe to topic".
		errs = append(errs, fmt.Errorf("%s: invalid MQTT filter %q: %w", where, mp.mqttTopic, err))
	} else if strings.ContainsAny(mp.mqttTopic, "{}") {
		errs = append(errs, fmt.Errorf("%s: MQTT filter %q contains '{' or '}', which benthos-danube reads as a named placeholder; rename the topic", where, mp.mqttTopic))
	}
	if toPtr == nil {
		errs = append(errs, fmt.Errorf("%s: missing field `%s`%s", where, toKey, hintTo))
	} else if mp.danubeTopic == "" {
		errs = append(errs, fmt.Errorf("%s: Danube topic cannot be empty", where))
	} else if danube.ValidateTopic(mp.danubeTopic) != nil {
		// The Rust connector failed at producer creation with InvalidArgument.
		errs = append(errs, fmt.Errorf("%s: Danube topic %q has an invalid format, should be: /namespace/topic (letters, digits, '_' and '-' only)", where, mp.danubeTopic))
	}

	switch q := rm.QoS.(type) {
	case nil:
		mp.qos = 1
	case string:
		found := false
		for n, name := range qosNames {
			if q == name {
				mp.qos, found = n, true
			} else if strings.EqualFold(q, name) {
				mp.qos, found = n, true
				w.warnf("%s: qos %q accepted as %q; the Rust connector only accepted the exact case", where, q, name)
			}
		}
		if !found {
			errs = append(errs, fmt.Errorf("%s: unknown qos %q, expected one of AtMostOnce, AtLeastOnce, ExactlyOnce", where, q))
		}
	case int64:
		if q < 0 || q > 2 {
			errs = append(errs, fmt.Errorf("%s: qos %d out of range, expected 0, 1 or 2", where, q))
		} else {
			mp.qos = int(q)
			w.warnf("%s: integer qos %d accepted as %q; the Rust connector rejected integers (parse error)", where, q, qosNames[q])
		}
	default:
		errs = append(errs, fmt.Errorf("%s: qos must be a string (AtMostOnce, AtLeastOnce, ExactlyOnce), got %T", where, q))
	}
	mp.qosName = qosNames[mp.qos]

	if rm.Partitions != nil {
		if *rm.Partitions < 0 {
			errs = append(errs, fmt.Errorf("%s: partitions = %d must not be negative", where, *rm.Partitions))
		}
		mp.partitions = *rm.Partitions
	}
	mp.reliable = rm.ReliableDispatch
	if len(errs) > 0 {
		return mp, errors.Join(errs...)
	}
	return mp, nil
}

// applyEnv applies the connector's environment overrides with its parse
// behaviour, warning where the connector silently ignored a value.
func applyEnv(c *connector, lookup func(string) (string, bool), w *collector) {
	str := func(name string, dst *string) {
		if v, ok := lookup(name); ok {
			*dst = v
			w.env = append(w.env, name)
		}
	}
	str("DANUBE_SERVICE_URL", &c.danubeURL)
	str("CONNECTOR_NAME", &c.connectorName)
	str("MQTT_BROKER_HOST", &c.brokerHost)
	if v, ok := lookup("MQTT_BROKER_PORT"); ok {
		if p, err := strconv.ParseUint(v, 10, 16); err != nil {
			w.warnf("MQTT_BROKER_PORT=%q is not a valid port (0-65535) and was ignored, as the Rust connector silently did; using %d", v, c.brokerPort)
		} else {
			c.brokerPort = int64(p)
			w.env = append(w.env, "MQTT_BROKER_PORT")
		}
	}
	str("MQTT_CLIENT_ID", &c.clientID)
	if v, ok := lookup("MQTT_USERNAME"); ok {
		c.username = &v
		w.env = append(w.env, "MQTT_USERNAME")
	}
	if v, ok := lookup("MQTT_PASSWORD"); ok {
		c.password = &v
		w.env = append(w.env, "MQTT_PASSWORD")
	}
	if v, ok := lookup("MQTT_USE_TLS"); ok {
		switch v {
		case "true", "false":
			c.useTLS, c.useTLSSet = v == "true", true
			w.env = append(w.env, "MQTT_USE_TLS")
		default:
			w.warnf("MQTT_USE_TLS=%q is neither \"true\" nor \"false\" and was ignored, as the Rust connector silently did", v)
		}
	}
	if v, ok := lookup("RUST_LOG"); ok && v != "" {
		w.warnf("RUST_LOG=%q is not migrated: set logger.level (or run with --log.level) instead", v)
	}
}

// checkSemantics warns about behaviour that differs from the Rust connector
// or was probably unintended there.
func checkSemantics(c *connector, w *collector) {
	list, fromKey := c.listName()
	if _, ok := logLevels[strings.ToLower(c.logLevel)]; c.logLevelSet && !ok {
		w.warnf("processing.log_level %q is not a known level and was not migrated", c.logLevel)
	}
	if c.brokerPort == 0 {
		w.warnf("mqtt.broker_port = 0: the Rust connector accepted it and then failed to connect forever; fix the port")
	}
	if c.username != nil && *c.username == "" && c.password != nil {
		w.warnf("the MQTT user name is empty (MQTT_USERNAME set to \"\" counts as set): the Rust connector sent an empty user name and password in CONNECT; the generated config sends no credentials (a broker that requires the empty user name refuses it)")
	}
	if c.username != nil && c.password == nil {
		w.warnf("mqtt.username is set without a password: the Rust connector silently dropped it and connected anonymously; the generated config sends it")
	}
	if c.password != nil && c.username == nil {
		w.warnf("mqtt.password is set without a username: the Rust connector sent no credentials; the generated config sends none either (add user: to send them)")
	}
	if c.useTLS {
		w.warnf("use_tls = true was a no-op in the Rust connector (always plain TCP); the generated config really uses TLS (ssl:// URL, tls.enabled), so point it at the broker's TLS port")
	}
	if c.connTimeoutSet {
		w.warnf("connection_timeout_secs was never applied by the Rust connector (it used 5 s); the generated connect_timeout is %ds", c.connTimeout)
	}
	if c.cleanSession {
		w.warnf("clean_session = true: messages published while the bridge is down are lost; consider clean_session: false with a stable client_id (the broker then queues QoS 1/2 messages)")
	}
	if len(c.mappings) > 100 {
		w.warnf("%d %s entries: the Rust connector hung at startup with more than 100; benthos-danube has no such limit", len(c.mappings), list)
	}
	seenMQTT := map[string]int{}
	seenDanube := map[string]int{}
	for i, mp := range c.mappings {
		if j, ok := seenMQTT[mp.mqttTopic]; ok {
			w.warnf("%s[%d] repeats %s %q of entry %d: first match wins, so it never receives anything", list, i, fromKey, mp.mqttTopic, j)
		} else {
			seenMQTT[mp.mqttTopic] = i
		}
		if j, ok := seenDanube[mp.danubeTopic]; ok {
			prev := c.mappings[j]
			if prev.partitions != mp.partitions || effReliable(prev) != effReliable(mp) {
				w.warnf("%s[%d] and [%d] send to %q with different partitions or reliable_dispatch; the topic's shape is decided by whichever creates it first", list, j, i, mp.danubeTopic)
			}
		} else {
			seenDanube[mp.danubeTopic] = i
		}
		if strings.HasSuffix(mp.mqttTopic, "/#") {
			w.warnf("%s[%d]: %q now also matches the parent topic %q, as MQTT specifies (the Rust connector dropped it)", list, i, mp.mqttTopic, strings.TrimSuffix(mp.mqttTopic, "/#"))
		}
		if strings.HasPrefix(mp.mqttTopic, "$share/") {
			w.warnf("%s[%d]: %q is a shared subscription; the Rust connector passed it as a plain filter", list, i, mp.mqttTopic)
		}
		if strings.Contains(mp.mqttTopic, "${") || strings.Contains(mp.danubeTopic, "${") {
			w.warnf("%s[%d] contains \"${\", which Benthos reads as an environment variable reference", list, i)
		}
	}
	for _, s := range []string{c.danubeURL, c.connectorName, c.brokerHost, c.clientID, deref(c.username)} {
		if strings.Contains(s, "${") {
			w.warnf("the value %q contains \"${\", which Benthos reads as an environment variable reference", s)
		}
	}
	// Overlaps: a later mapping whose filter is shadowed for some topics.
	for i := range c.mappings {
		for j := i + 1; j < len(c.mappings); j++ {
			if FiltersOverlap(c.mappings[i].mqttTopic, c.mappings[j].mqttTopic) &&
				c.mappings[i].danubeTopic != c.mappings[j].danubeTopic {
				w.warnf("mappings %q and %q overlap: a topic matching both goes to %s (first match wins, as in the Rust connector)",
					c.mappings[i].mqttTopic, c.mappings[j].mqttTopic, c.mappings[i].danubeTopic)
			}
		}
	}
}

// listName is the TOML name of the mapping list and of its filter key.
func (c *connector) listName() (list, fromKey string) {
	if c.dialect == DialectConnectors03 {
		return "mqtt.routes", "from"
	}
	return "mqtt.topic_mappings", "mqtt_topic"
}

// crossDialectKeys warns about keys of the other dialect, which the
// connector of this file's dialect silently ignores.
func crossDialectKeys(raw *rawConfig, d Dialect, w *collector) {
	if d == DialectConnectors03 {
		return // 0.1/0.2 mapping keys in routes are reported by resolveMapping
	}
	if raw.Schemas != nil {
		w.warnf("[[schemas]] ignored and not migrated: it is a danube-connectors 0.3 section, and this file uses [[mqtt.topic_mappings]] (0.1/0.2), whose connector ignores it; rename the list to [[mqtt.routes]] with from/to to migrate it as 0.3")
	}
	if p := raw.Processing; p != nil && (p.HealthCheckIntervalMS != nil || p.HealthCheckFailureThreshold != nil) {
		w.warnf("processing.health_check_* ignored: 0.3 keys, which the 0.1/0.2 connector ignores (Benthos serves /ready on its HTTP server)")
	}
}

func effReliable(m mapping) bool {
	if m.reliable != nil {
		return *m.reliable
	}
	return m.qos > 0
}

func setInt(dst *int64, v *int64) {
	if v != nil {
		*dst = *v
	}
}

func boolOr(v *bool, def bool) bool {
	if v == nil {
		return def
	}
	return *v
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}
