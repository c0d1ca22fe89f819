package migrate

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/urfave/cli/v2"
	"gopkg.in/yaml.v3"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

func readV03(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "connector-v03.toml"))
	require.NoError(t, err)
	return string(b)
}

// v03Env exercises the connector's environment quirks: an unparsable port
// is ignored, empty credentials count as set, MQTT_USE_TLS other than
// true/false is ignored.
var v03Env = map[string]string{
	"DANUBE_SERVICE_URL": "http://danube:6650",
	"CONNECTOR_NAME":     "edge-7",
	"MQTT_BROKER_HOST":   "mosquitto",
	"MQTT_BROKER_PORT":   "18830x",
	"MQTT_CLIENT_ID":     "edge-7-bridge",
	"MQTT_USERNAME":      "",
	"MQTT_PASSWORD":      "",
	"MQTT_USE_TLS":       "yes",
}

// TestConvertV03Golden: the whole YAML for the 0.3 reference file, byte for
// byte (go test ./internal/migrate -run Golden -update rewrites it).
func TestConvertV03Golden(t *testing.T) {
	res, err := Convert([]byte(readV03(t)), Options{LookupEnv: envMap(v03Env), SourceName: "testdata/connector-v03.toml"})
	require.NoError(t, err)
	golden := filepath.Join("testdata", "connector-v03.golden.yaml")
	if *update {
		require.NoError(t, os.WriteFile(golden, res.YAML, 0o644))
	}
	want, err := os.ReadFile(golden)
	require.NoError(t, err)
	assert.Equal(t, string(want), string(res.YAML))
}

// v03Generated is the part of a 0.3 migration the tests inspect.
type v03Generated struct {
	generated `yaml:"-"`
	Pipeline  *struct {
		Processors []struct {
			Payload *struct {
				SchemaType       string            `yaml:"schema_type"`
				TopicSchemaTypes map[string]string `yaml:"topic_schema_types"`
			} `yaml:"danube_connector_payload"`
		} `yaml:"processors"`
	} `yaml:"pipeline"`
	Output struct {
		Danube struct {
			URL        string `yaml:"url"`
			Attributes struct {
				IncludePrefixes []string `yaml:"include_prefixes"`
				IncludePatterns []string `yaml:"include_patterns"`
			} `yaml:"attributes"`
			Schemas []map[string]any `yaml:"schemas"`
		} `yaml:"danube"`
	} `yaml:"output"`
}

func convertV03(t *testing.T, doc string, env map[string]string, opts Options) (*Result, v03Generated) {
	t.Helper()
	opts.LookupEnv = envMap(env)
	res, err := Convert([]byte(doc), opts)
	require.NoError(t, err)
	var g v03Generated
	require.NoError(t, yaml.Unmarshal(res.YAML, &g), string(res.YAML))
	require.NoError(t, yaml.Unmarshal(res.YAML, &g.generated), string(res.YAML))
	return res, g
}

func TestConvertV03Reference(t *testing.T) {
	res, g := convertV03(t, readV03(t), v03Env, Options{})
	assert.Equal(t, DialectConnectors03, res.Dialect)

	m := g.Input.MQTT
	assert.Equal(t, []string{"tcp://mosquitto:1883"}, m.URLs, "MQTT_BROKER_PORT unparsable: the TOML port stays")
	assert.Equal(t, "edge-7-bridge", m.ClientID)
	require.NotNil(t, m.User)
	assert.Equal(t, "", *m.User, "MQTT_USERNAME empty still counts as set")
	assert.Nil(t, m.TLS, "MQTT_USE_TLS=yes is ignored")
	assert.Equal(t, "30s", m.Keepalive)
	require.Len(t, m.TopicMappings, 4)
	for i, w := range []struct{ from, to, qos string }{
		{"sensors/+/telemetry", "/iot/telemetry", "AtLeastOnce"},
		{"devices/+/status", "/iot/status", "AtLeastOnce"},
		{"firmware/#", "/iot/firmware", "ExactlyOnce"},
		{"debug/#", "/iot/debug", "AtMostOnce"},
	} {
		assert.Equal(t, w.from, m.TopicMappings[i].MQTTTopic)
		assert.Equal(t, w.to, m.TopicMappings[i].DanubeTopic)
		assert.Equal(t, w.qos, m.TopicMappings[i].QoS)
	}
	assert.Equal(t, 2, m.TopicMappings[0].Partitions)

	require.NotNil(t, g.Pipeline)
	require.Len(t, g.Pipeline.Processors, 1)
	p := g.Pipeline.Processors[0].Payload
	require.NotNil(t, p)
	assert.Equal(t, "none", p.SchemaType)
	assert.Equal(t, map[string]string{"/iot/status": "string", "/iot/firmware": "bytes"}, p.TopicSchemaTypes)

	d := g.Output.Danube
	assert.Equal(t, "http://danube:6650", d.URL)
	assert.Equal(t, AttributePrefixes, d.Attributes.IncludePrefixes)
	assert.Equal(t, []map[string]any{
		{"topic": "/iot/telemetry", "subject": "iot-telemetry", "type": "json_schema", "file": "schemas/telemetry.json", "auto_register": true, "version_strategy": "latest"},
		{"topic": "/iot/status", "subject": "iot-status", "type": "string", "file": "", "auto_register": true, "version_strategy": "minimum", "version": 1},
		{"topic": "/iot/firmware", "subject": "iot-firmware", "type": "bytes", "file": "", "auto_register": true, "version_strategy": "pinned", "version": 1},
	}, d.Schemas)

	assert.Equal(t, []string{"DANUBE_SERVICE_URL", "CONNECTOR_NAME", "MQTT_BROKER_HOST", "MQTT_CLIENT_ID", "MQTT_USERNAME", "MQTT_PASSWORD"}, res.EnvApplied)
	joined := strings.Join(res.Warnings, "\n")
	for _, w := range []string{
		`MQTT_BROKER_PORT="18830x" is not a valid port`,
		`MQTT_USE_TLS="yes" is neither`,
		"the MQTT user name is empty",
		"schemas[2]: schema type bytes",
		"connection_timeout_secs was never applied",
	} {
		assert.Contains(t, joined, w)
	}
	y := string(res.YAML)
	for _, s := range []string{"health_check_interval_ms=15000", "mqtt.use_tls=false: parsed but never applied", "[retry] max_retries=5", "batch_timeout_ms=200: unused"} {
		assert.Contains(t, y, s, "parsed-but-unused keys are reported")
	}
}

func TestConvertV03RawPayloads(t *testing.T) {
	res, g := convertV03(t, readV03(t), nil, Options{RawPayloads: true})
	assert.Nil(t, g.Pipeline)
	assert.Contains(t, string(res.YAML), "--raw-payloads: MQTT payloads are forwarded unchanged")
	assert.Len(t, g.Output.Danube.Schemas, 3, "schemas are still bound")
}

func TestConvertV03IncludeMetadataFalse(t *testing.T) {
	doc := strings.Replace(readV03(t), "include_metadata = true", "include_metadata = false", 1)
	_, g := convertV03(t, doc, nil, Options{})
	assert.Equal(t, []string{noAttributesPattern}, g.Output.Danube.Attributes.IncludePatterns)
	assert.Empty(t, g.Output.Danube.Attributes.IncludePrefixes)
}

const minimalV03 = `
danube_service_url = "http://localhost:6650"
connector_name = "c"
[mqtt]
broker_host = "h"
client_id = "id"
[[mqtt.routes]]
from = "a/#"
to = "/default/a"
`

func TestConvertV03MinimalNoSchemas(t *testing.T) {
	res, g := convertV03(t, minimalV03, nil, Options{})
	assert.Equal(t, DialectConnectors03, res.Dialect)
	require.NotNil(t, g.Pipeline)
	p := g.Pipeline.Processors[0].Payload
	require.NotNil(t, p)
	assert.Empty(t, p.TopicSchemaTypes)
	assert.Nil(t, g.Output.Danube.Schemas)
	assert.NotContains(t, string(res.YAML), "schemas:")
}

func TestConvertV03Errors(t *testing.T) {
	schema := func(body string) string { return minimalV03 + "\n[[schemas]]\n" + body }
	tests := []struct{ name, doc, want string }{
		{"old keys in a route", strings.Replace(minimalV03, `from = "a/#"`, `mqtt_topic = "a/#"`, 1), "mqtt.routes[0]: missing field `from` (0.3 renamed mqtt_topic to from, without an alias)"},
		{"both lists", minimalV03 + "[[mqtt.topic_mappings]]\nmqtt_topic = \"b\"\ndanube_topic = \"/default/b\"\n", "both [[mqtt.routes]] (danube-connectors 0.3) and [[mqtt.topic_mappings]]"},
		{"no list", strings.Split(minimalV03, "[[mqtt.routes]]")[0], "mqtt.routes (danube-connectors 0.3) or mqtt.topic_mappings (danube-connect 0.1/0.2)"},
		{"empty routes", strings.Split(minimalV03, "[[mqtt.routes]]")[0] + "routes = []\n", "At least one route is required"},
		{"bad route filter", strings.Replace(minimalV03, `from = "a/#"`, `from = "a/#/b"`, 1), `mqtt.routes[0]: invalid MQTT filter "a/#/b"`},
		{"schema type", schema("topic = \"/default/a\"\nsubject = \"s\"\nschema_type = \"xml\"\nschema_file = \"\"\n"), `schemas[0]: unknown schema_type "xml"`},
		{"schema_file required", schema("topic = \"/default/a\"\nsubject = \"s\"\nschema_type = \"string\"\n"), "schemas[0]: missing field `schema_file` (schema_file is required even for types that read no file"},
		{"schema file needed", schema("topic = \"/default/a\"\nsubject = \"s\"\nschema_type = \"json_schema\"\nschema_file = \"\"\n"), "needs a schema_file"},
		{"strategy case", schema("topic = \"/default/a\"\nsubject = \"s\"\nschema_type = \"string\"\nschema_file = \"\"\nversion_strategy = \"Latest\"\n"), `unknown variant "Latest"`},
		{"strategy variant", schema("topic = \"/default/a\"\nsubject = \"s\"\nschema_type = \"string\"\nschema_file = \"\"\nversion_strategy = { exact = 2 }\n"), `unknown variant "exact"`},
		{"strategy range", schema("topic = \"/default/a\"\nsubject = \"s\"\nschema_type = \"string\"\nschema_file = \"\"\nversion_strategy = { pinned = -1 }\n"), "from 0 to 4294967295"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Convert([]byte(tt.doc), Options{LookupEnv: NoEnv})
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.want)
		})
	}
}

func TestConvertV03Warnings(t *testing.T) {
	s := func(topic, typ, extra string) string {
		return "\n[[schemas]]\ntopic = \"" + topic + "\"\nsubject = \"s-" + typ + "\"\nschema_type = \"" + typ + "\"\nschema_file = \"\"\n" + extra
	}
	tests := []struct{ name, doc, want string }{
		{"schema for an unrouted topic", minimalV03 + s("/default/zzz", "string", ""), `topic "/default/zzz" is the ` + "`to`" + ` of no route`},
		{"duplicate schema topic", minimalV03 + s("/default/a", "string", "") + s("/default/a", "bytes", ""), "schemas[1]: topic \"/default/a\" already has schemas[0]: the last entry wins"},
		{"number", minimalV03 + s("/default/a", "number", ""), "number validator accepts only 4- or 8-byte payloads"},
		{"protobuf", minimalV03 + "\n[[schemas]]\ntopic = \"/default/a\"\nsubject = \"p\"\nschema_type = \"protobuf\"\nschema_file = \"a.proto\"\n", "failed on every message of /default/a"},
		{"unused file", minimalV03 + s("/default/a", "string", "") + "", ""},
		{"old key beside from", strings.Replace(minimalV03, `from = "a/#"`, "from = \"a/#\"\nmqtt_topic = \"a/#\"", 1), `mqtt.routes[0]: unknown key "mqtt_topic" ignored`},
		{"reliable typo", strings.Replace(minimalV03, `to = "/default/a"`, "to = \"/default/a\"\nreliable = true", 1), "did you mean reliable_dispatch?"},
		{"schemas in a 0.2 file", minimal + s("/default/a", "string", ""), "[[schemas]] ignored and not migrated"},
		{"health checks in a 0.2 file", strings.Replace(minimal, `connector_name = "c"`, "connector_name = \"c\"\n[processing]\nhealth_check_interval_ms = 1", 1), "processing.health_check_* ignored"},
		{"0.3 keys in a 0.2 mapping", strings.Replace(minimal, `danube_topic = "/default/a"`, "danube_topic = \"/default/a\"\nto = \"/default/b\"", 1), `unknown key "to" ignored`},
	}
	for _, tt := range tests {
		if tt.want == "" {
			continue
		}
		t.Run(tt.name, func(t *testing.T) {
			res, err := Convert([]byte(tt.doc), Options{LookupEnv: NoEnv})
			require.NoError(t, err)
			assert.Contains(t, strings.Join(res.Warnings, "\n"), tt.want)
			assert.Contains(t, string(res.YAML), "# Review before use:")
		})
	}
	// A 0.2 file with [[schemas]] binds no schema.
	res, err := Convert([]byte(minimal+s("/default/a", "string", "")), Options{LookupEnv: NoEnv})
	require.NoError(t, err)
	assert.NotContains(t, string(res.YAML), "schemas:")
	assert.NotContains(t, string(res.YAML), "danube_connector_payload:")
}

// TestCommandRawPayloadsFlag: the CLI flag reaches the conversion.
func TestCommandRawPayloadsFlag(t *testing.T) {
	path := filepath.Join("testdata", "connector-v03.toml")
	for _, c := range []struct {
		args []string
		want bool // the processor is in the YAML
	}{
		{[]string{"migrate", "--ignore-env", "-q", path}, true},
		{[]string{"migrate", "--ignore-env", "-q", "--raw-payloads", path}, false},
	} {
		var stdout, stderr strings.Builder
		app := &cli.App{Commands: []*cli.Command{Command()}, Writer: &stdout, ErrWriter: &stderr}
		require.NoError(t, app.Run(append([]string{"benthos-danube"}, c.args...)))
		assert.Equal(t, c.want, strings.Contains(stdout.String(), "- danube_connector_payload:"), "%v", c.args)
		assert.Empty(t, stderr.String(), "-q")
	}
}
