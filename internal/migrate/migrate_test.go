package migrate

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"
)

// envMap returns a LookupEnv over m.
func envMap(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := m[k]
		return v, ok
	}
}

// generated is the part of the generated YAML the tests inspect.
type generated struct {
	Input struct {
		MQTT struct {
			URLs           []string                `yaml:"urls"`
			ClientID       string                  `yaml:"client_id"`
			User           *string                 `yaml:"user"`
			Password       *string                 `yaml:"password"`
			TLS            *struct{ Enabled bool } `yaml:"tls"`
			Keepalive      string                  `yaml:"keepalive"`
			ConnectTimeout string                  `yaml:"connect_timeout"`
			CleanSession   bool                    `yaml:"clean_session"`
			TopicMappings  []struct {
				MQTTTopic        string `yaml:"mqtt_topic"`
				DanubeTopic      string `yaml:"danube_topic"`
				QoS              string `yaml:"qos"`
				Partitions       int    `yaml:"partitions"`
				ReliableDispatch *bool  `yaml:"reliable_dispatch"`
			} `yaml:"topic_mappings"`
		} `yaml:"mqtt"`
	} `yaml:"input"`
	Pipeline *struct {
		Processors []map[string]any `yaml:"processors"`
	} `yaml:"pipeline"`
	Output struct {
		Danube struct {
			URL          string `yaml:"url"`
			ProducerName string `yaml:"producer_name"`
			Attributes   struct {
				IncludePrefixes []string `yaml:"include_prefixes"`
				IncludePatterns []string `yaml:"include_patterns"`
			} `yaml:"attributes"`
		} `yaml:"danube"`
	} `yaml:"output"`
	HTTP *struct {
		Address string `yaml:"address"`
	} `yaml:"http"`
	Logger *struct {
		Level string `yaml:"level"`
	} `yaml:"logger"`
	Metrics map[string]any `yaml:"metrics"`
}

func convertString(t *testing.T, doc string, env map[string]string) (*Result, generated) {
	t.Helper()
	res, err := Convert([]byte(doc), Options{LookupEnv: envMap(env), SourceName: "test.toml"})
	require.NoError(t, err)
	var g generated
	require.NoError(t, yaml.Unmarshal(res.YAML, &g), string(res.YAML))
	return res, g
}

func readReference(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "connector.toml"))
	require.NoError(t, err)
	return string(b)
}

func TestConvertReference(t *testing.T) {
	res, g := convertString(t, readReference(t), nil)

	m := g.Input.MQTT
	assert.Equal(t, []string{"tcp://localhost:1883"}, m.URLs)
	assert.Equal(t, "danube-mqtt-connector", m.ClientID)
	assert.Nil(t, m.User)
	assert.Nil(t, m.Password)
	assert.Nil(t, m.TLS)
	assert.Equal(t, "60s", m.Keepalive)
	assert.Equal(t, "30s", m.ConnectTimeout)
	assert.True(t, m.CleanSession)

	require.Len(t, m.TopicMappings, 4)
	want := []struct {
		mqtt, danube, qos string
		partitions        int
		reliable          *bool
	}{
		{"sensors/+/zone1", "/iot/sensors_zone1", "AtLeastOnce", 4, nil},
		{"devices/+/telemetry", "/iot/device_telemetry", "AtLeastOnce", 2, nil},
		{"sensors/temp/#", "/iot/temperature", "AtLeastOnce", 0, nil},
		{"debug/#", "/iot/debug", "AtMostOnce", 0, new(bool)},
	}
	for i, w := range want {
		got := m.TopicMappings[i]
		assert.Equal(t, w.mqtt, got.MQTTTopic, i)
		assert.Equal(t, w.danube, got.DanubeTopic, i)
		assert.Equal(t, w.qos, got.QoS, i)
		assert.Equal(t, w.partitions, got.Partitions, i)
		assert.Equal(t, w.reliable, got.ReliableDispatch, i)
	}

	assert.Nil(t, g.Pipeline, "0.1/0.2: raw payloads, and the output names the attributes: no processor")
	assert.Equal(t, DialectConnect02, res.Dialect)

	d := g.Output.Danube
	assert.Equal(t, "http://localhost:6650", d.URL)
	assert.Equal(t, "mqtt-iot-source", d.ProducerName)
	assert.Equal(t, AttributePrefixes, d.Attributes.IncludePrefixes)
	require.NotNil(t, g.HTTP)
	assert.Equal(t, "0.0.0.0:9090", g.HTTP.Address)
	require.NotNil(t, g.Logger)
	assert.Equal(t, "INFO", g.Logger.Level)
	assert.Contains(t, g.Metrics, "prometheus")

	y := string(res.YAML)
	for _, s := range []string{"[retry]", "batch_size=1000", "poll_interval_ms=100", "max_packet_size=10485760", "tcp_nodelay=true"} {
		assert.Contains(t, y, s, "not-migrated keys are reported as comments")
	}
	joined := strings.Join(res.Warnings, "\n")
	assert.Contains(t, joined, "connection_timeout_secs was never applied")
	assert.Contains(t, joined, "clean_session = true")
	assert.Contains(t, joined, `"sensors/+/zone1" and "sensors/temp/#" overlap`)
	assert.Empty(t, res.EnvApplied)
}

func TestConvertEnvOverrides(t *testing.T) {
	base := readReference(t)
	tests := []struct {
		name        string
		env         map[string]string
		check       func(t *testing.T, g generated)
		wantEnv     []string
		wantWarning string
	}{
		{
			name: "all string overrides",
			env: map[string]string{
				"DANUBE_SERVICE_URL": "http://danube:6650", "CONNECTOR_NAME": "mqtt-source-example",
				"MQTT_BROKER_HOST": "mosquitto", "MQTT_BROKER_PORT": "8883", "MQTT_CLIENT_ID": "bridge-7",
			},
			check: func(t *testing.T, g generated) {
				assert.Equal(t, "http://danube:6650", g.Output.Danube.URL)
				assert.Equal(t, "mqtt-source-example", g.Output.Danube.ProducerName)
				assert.Equal(t, []string{"tcp://mosquitto:8883"}, g.Input.MQTT.URLs)
				assert.Equal(t, "bridge-7", g.Input.MQTT.ClientID)
			},
			wantEnv: []string{"DANUBE_SERVICE_URL", "CONNECTOR_NAME", "MQTT_BROKER_HOST", "MQTT_BROKER_PORT", "MQTT_CLIENT_ID"},
		},
		{
			name: "unparsable port is ignored with a warning",
			env:  map[string]string{"MQTT_BROKER_PORT": "70000"},
			check: func(t *testing.T, g generated) {
				assert.Equal(t, []string{"tcp://localhost:1883"}, g.Input.MQTT.URLs)
			},
			wantWarning: `MQTT_BROKER_PORT="70000" is not a valid port`,
		},
		{
			name: "credentials, password by reference only",
			env:  map[string]string{"MQTT_USERNAME": "bridge", "MQTT_PASSWORD": "s3cret-value"},
			check: func(t *testing.T, g generated) {
				require.NotNil(t, g.Input.MQTT.User)
				assert.Equal(t, "bridge", *g.Input.MQTT.User)
				require.NotNil(t, g.Input.MQTT.Password)
				assert.Equal(t, "${MQTT_PASSWORD:}", *g.Input.MQTT.Password)
			},
			wantEnv: []string{"MQTT_USERNAME", "MQTT_PASSWORD"},
		},
		{
			name: "empty credentials still count as set",
			env:  map[string]string{"MQTT_USERNAME": "", "MQTT_PASSWORD": ""},
			check: func(t *testing.T, g generated) {
				require.NotNil(t, g.Input.MQTT.User)
				assert.Equal(t, "", *g.Input.MQTT.User)
				require.NotNil(t, g.Input.MQTT.Password)
			},
			wantEnv: []string{"MQTT_USERNAME", "MQTT_PASSWORD"},
		},
		{
			name: "use_tls true",
			env:  map[string]string{"MQTT_USE_TLS": "true"},
			check: func(t *testing.T, g generated) {
				require.NotNil(t, g.Input.MQTT.TLS)
				assert.True(t, g.Input.MQTT.TLS.Enabled)
				assert.Equal(t, []string{"ssl://localhost:1883"}, g.Input.MQTT.URLs)
			},
			wantEnv:     []string{"MQTT_USE_TLS"},
			wantWarning: "use_tls = true was a no-op",
		},
		{
			name: "use_tls other than true/false is ignored with a warning",
			env:  map[string]string{"MQTT_USE_TLS": "TRUE"},
			check: func(t *testing.T, g generated) {
				assert.Nil(t, g.Input.MQTT.TLS)
			},
			wantWarning: `MQTT_USE_TLS="TRUE" is neither`,
		},
		{
			name:        "RUST_LOG is reported",
			env:         map[string]string{"RUST_LOG": "debug"},
			check:       func(t *testing.T, g generated) {},
			wantWarning: `RUST_LOG="debug" is not migrated`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, g := convertString(t, base, tt.env)
			tt.check(t, g)
			assert.Equal(t, tt.wantEnv, res.EnvApplied)
			if tt.wantWarning != "" {
				assert.Contains(t, strings.Join(res.Warnings, "\n"), tt.wantWarning)
			}
			for _, v := range tt.env {
				if strings.Contains(v, "s3cret") {
					assert.NotContains(t, string(res.YAML), v, "password must not be copied")
					assert.NotContains(t, strings.Join(res.Warnings, "\n"), v)
				}
			}
		})
	}
}

const minimal = `
danube_service_url = "http://localhost:6650"
connector_name = "c"
[mqtt]
broker_host = "h"
client_id = "id"
[[mqtt.topic_mappings]]
mqtt_topic = "a/#"
danube_topic = "/default/a"
`

func TestConvertMinimalDefaults(t *testing.T) {
	res, g := convertString(t, minimal, nil)
	m := g.Input.MQTT
	assert.Equal(t, []string{"tcp://h:1883"}, m.URLs)
	assert.Equal(t, "60s", m.Keepalive)
	assert.Equal(t, "30s", m.ConnectTimeout)
	require.Len(t, m.TopicMappings, 1)
	assert.Equal(t, "AtLeastOnce", m.TopicMappings[0].QoS, "qos defaults to AtLeastOnce")
	assert.Nil(t, g.HTTP, "no metrics_port, no http section")
	assert.Nil(t, g.Logger)
	assert.NotContains(t, string(res.YAML), "[retry]")
}

func TestConvertPasswordInTOMLNotCopied(t *testing.T) {
	doc := strings.Replace(minimal, `client_id = "id"`, "client_id = \"id\"\nusername = \"u\"\npassword = \"topsecret\"", 1)
	res, g := convertString(t, doc, nil)
	require.NotNil(t, g.Input.MQTT.Password)
	assert.Equal(t, "${MQTT_PASSWORD:}", *g.Input.MQTT.Password)
	assert.NotContains(t, string(res.YAML), "topsecret")
	assert.Contains(t, string(res.YAML), "literal password is not copied")
}

func TestConvertIncludeMetadataFalse(t *testing.T) {
	doc := strings.Replace(minimal, `client_id = "id"`, "client_id = \"id\"\ninclude_metadata = false", 1)
	_, g := convertString(t, doc, nil)
	assert.Nil(t, g.Pipeline, "no attribute processor")
	assert.Empty(t, g.Output.Danube.Attributes.IncludePrefixes)
	assert.Equal(t, []string{"^$"}, g.Output.Danube.Attributes.IncludePatterns, "a filter that matches no key")
}

func TestConvertWarnings(t *testing.T) {
	tests := []struct {
		name, replace, with, want string
	}{
		{"unknown root key", `connector_name = "c"`, "connector_name = \"c\"\nmetrics_port = 9100", `unknown key "metrics_port"`},
		{"unknown mqtt key", `client_id = "id"`, "client_id = \"id\"\nca_cert_path = \"/ca.pem\"", `unknown key "mqtt.ca_cert_path"`},
		{"unknown mapping key", `danube_topic = "/default/a"`, "danube_topic = \"/default/a\"\nschema = \"json\"", `"mqtt.topic_mappings.schema"`},
		{"integer qos", `danube_topic = "/default/a"`, "danube_topic = \"/default/a\"\nqos = 2", `integer qos 2 accepted as "ExactlyOnce"`},
		{"qos case", `danube_topic = "/default/a"`, "danube_topic = \"/default/a\"\nqos = \"atmostonce\"", `accepted as "AtMostOnce"`},
		{"username without password", `client_id = "id"`, "client_id = \"id\"\nusername = \"u\"", "username is set without a password"},
		{"port zero", `client_id = "id"`, "client_id = \"id\"\nbroker_port = 0", "broker_port = 0"},
		{"parent level", "", "", `"a/#" now also matches the parent topic "a"`},
		{"bad log level", `connector_name = "c"`, "connector_name = \"c\"\n[processing]\nlog_level = \"loud\"", `log_level "loud" is not a known level`},
		{"duplicate mqtt topic", "", "\n[[mqtt.topic_mappings]]\nmqtt_topic = \"a/#\"\ndanube_topic = \"/default/b\"", "repeats mqtt_topic"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc := minimal
			if tt.replace != "" {
				doc = strings.Replace(doc, tt.replace, tt.with, 1)
			} else {
				doc += tt.with
			}
			res, _ := convertString(t, doc, nil)
			assert.Contains(t, strings.Join(res.Warnings, "\n"), tt.want)
			assert.Contains(t, string(res.YAML), "# Review before use:")
		})
	}
}

func TestConvertErrors(t *testing.T) {
	tests := []struct {
		name, replace, with, want string
	}{
		{"not toml", `connector_name = "c"`, "connector_name = ", "failed to parse config: line"},
		{"missing url", `danube_service_url = "http://localhost:6650"`, "", "missing required key(s): danube_service_url"},
		{"missing mappings", "[[mqtt.topic_mappings]]\nmqtt_topic = \"a/#\"\ndanube_topic = \"/default/a\"", "", "mqtt.topic_mappings"},
		{"empty mappings", "[[mqtt.topic_mappings]]\nmqtt_topic = \"a/#\"\ndanube_topic = \"/default/a\"", "topic_mappings = []", "At least one topic mapping is required"},
		{"empty url", `danube_service_url = "http://localhost:6650"`, `danube_service_url = ""`, "danube_service_url cannot be empty"},
		{"empty host", `broker_host = "h"`, `broker_host = ""`, "broker_host cannot be empty"},
		{"empty client id", `client_id = "id"`, `client_id = ""`, "client_id cannot be empty"},
		{"bad qos", `danube_topic = "/default/a"`, "danube_topic = \"/default/a\"\nqos = \"Sometimes\"", `unknown qos "Sometimes"`},
		{"bad filter", `mqtt_topic = "a/#"`, `mqtt_topic = "a/#/b"`, `invalid MQTT filter "a/#/b"`},
		{"placeholder braces", `mqtt_topic = "a/#"`, `mqtt_topic = "a/{x}"`, "named placeholder"},
		{"bad danube topic", `danube_topic = "/default/a"`, `danube_topic = "iot.a"`, "should be: /namespace/topic"},
		{"negative partitions", `danube_topic = "/default/a"`, "danube_topic = \"/default/a\"\npartitions = -1", "must not be negative"},
		{"port out of range", `client_id = "id"`, "client_id = \"id\"\nbroker_port = 70000", "out of range"},
		{"max retries", `connector_name = "c"`, "connector_name = \"c\"\n[retry]\nmax_retries = 101", "max_retries too high"},
		{"batch size zero", `connector_name = "c"`, "connector_name = \"c\"\n[processing]\nbatch_size = 0", "batch_size must be > 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc := strings.Replace(minimal, tt.replace, tt.with, 1)
			_, err := Convert([]byte(doc), Options{LookupEnv: NoEnv})
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.want)
		})
	}
}

func TestConvertEnvFillsEmptyValue(t *testing.T) {
	doc := strings.Replace(minimal, `danube_service_url = "http://localhost:6650"`, `danube_service_url = ""`, 1)
	_, g := convertString(t, doc, map[string]string{"DANUBE_SERVICE_URL": "http://d:6650"})
	assert.Equal(t, "http://d:6650", g.Output.Danube.URL)

	_, err := Convert([]byte(minimal), Options{LookupEnv: envMap(map[string]string{"DANUBE_SERVICE_URL": ""})})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "danube_service_url cannot be empty")
}

func TestCommentsNeverReferenceEnv(t *testing.T) {
	doc := strings.Replace(minimal, `client_id = "id"`, "client_id = \"id\"\nbogus = \"${HOME}\"", 1)
	doc = strings.Replace(doc, `connector_name = "c"`, `connector_name = "c${X}"`, 1)
	res, err := Convert([]byte(doc), Options{LookupEnv: NoEnv})
	require.NoError(t, err)
	for _, l := range strings.Split(string(res.YAML), "\n") {
		if i := strings.Index(l, "#"); i >= 0 {
			assert.NotContains(t, l[i:], "${X", l)
		}
	}
}

func TestValidateFilter(t *testing.T) {
	tests := []struct {
		filter string
		ok     bool
	}{
		{"a", true}, {"a/b/c", true}, {"+", true}, {"#", true}, {"a/+/c", true}, {"a/#", true},
		{"/", true}, {"a//b", true}, {"$SYS/#", true}, {"+/+/#", true},
		{"", false}, {"a/#/b", false}, {"sens+", false}, {"a/b#", false}, {"a/++", false}, {"a\x00b", false},
	}
	for _, tt := range tests {
		t.Run(tt.filter, func(t *testing.T) {
			err := ValidateFilter(tt.filter)
			if tt.ok {
				assert.NoError(t, err)
			} else {
				assert.Error(t, err)
			}
		})
	}
}

func TestFiltersOverlap(t *testing.T) {
	tests := []struct {
		a, b string
		want bool
	}{
		{"sensors/+/zone1", "sensors/temp/#", true},
		{"sensors/+/zone1", "devices/+/telemetry", false},
		{"a/#", "a", true},
		{"a", "a/#", true},
		{"a/+", "a", false},
		{"a/b", "a/b", true},
		{"a/b", "a/c", false},
		{"+/x", "y/+", true},
		{"a/b/c", "a/b", false},
		{"#", "anything/at/all", true},
	}
	for _, tt := range tests {
		t.Run(tt.a+" vs "+tt.b, func(t *testing.T) {
			assert.Equal(t, tt.want, FiltersOverlap(tt.a, tt.b))
			assert.Equal(t, tt.want, FiltersOverlap(tt.b, tt.a), "symmetric")
		})
	}
}

func TestCommandRun(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "out.yaml")
	var stdout, stderr strings.Builder
	require.NoError(t, run(filepath.Join("testdata", "connector.toml"), out, Options{LookupEnv: NoEnv}, false, &stdout, &stderr))
	b, err := os.ReadFile(out)
	require.NoError(t, err)
	assert.Contains(t, string(b), "topic_mappings:")
	assert.Empty(t, stdout.String())
	assert.Contains(t, stderr.String(), "warning: ")

	bad := filepath.Join(dir, "bad.toml")
	require.NoError(t, os.WriteFile(bad, []byte(strings.Replace(minimal, `broker_host = "h"`, `broker_host = ""`, 1)+"\n[[mqtt.topic_mappings]]\nmqtt_topic = \"x/#/y\"\ndanube_topic = \"/d/x\"\n"), 0o600))
	err = run(bad, "", Options{LookupEnv: NoEnv}, false, &stdout, &stderr)
	require.Error(t, err)
	lines := strings.Split(err.Error(), "\n")
	assert.Len(t, lines, 2, "one line per problem: %q", err.Error())
	for _, l := range lines {
		assert.True(t, strings.HasPrefix(l, "migrate: "), l)
	}

	err = run(filepath.Join(dir, "missing.toml"), "", Options{}, false, &stdout, &stderr)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "failed to read config file")
}
