package tests

import (
	"bytes"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/benthos-danube/benthos-danube/internal/danube"
	"github.com/benthos-danube/benthos-danube/internal/danube/danubetest"
)

// schemasBlock is the output's schemas list in migrate's YAML.
var schemasBlock = regexp.MustCompile(`(?m)^    # \[\[schemas\]\].*\n(^    #.*\n)*^    schemas:\n(^      .*\n)*`)

// TestE2EMigrateV03 converts our danube-connectors 0.3 reference file with
// the real binary (`migrate`, with the connector's environment overrides),
// lints the YAML, runs it, and checks that every message lands on its route's
// topic with the bytes and the attributes the 0.3 connector writes (doc
// rust-connector-v03-and-danube-edge.md §2.2 and §2.5).
//
// The danube output's schemas field comes from another branch: where the
// binary does not know it yet, the test runs the YAML without that block
// (the payload processor, which carries the [[schemas]] types, stays).
func TestE2EMigrateV03(t *testing.T) {
	id := uniqueID(t)
	mqttURL := mqttBroker(t)
	dn := danubeBroker(t)
	dir := t.TempDir()

	ref, err := os.ReadFile(filepath.Join(repoRoot, "internal", "migrate", "testdata", "connector-v03.toml"))
	require.NoError(t, err)
	toml := strings.ReplaceAll(string(ref), `from = "`, `from = "`+id+`/`) // a shared broker
	tomlPath := filepath.Join(dir, "connector.toml")
	require.NoError(t, os.WriteFile(tomlPath, []byte(toml), 0o600))
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "schemas"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "schemas", "telemetry.json"), []byte(`{"type":"object"}`), 0o600))

	u, err := url.Parse(mqttURL)
	require.NoError(t, err)
	yamlPath := filepath.Join(dir, "pipeline.yaml")
	mig := startBinIn(t, dir, map[string]string{
		"DANUBE_SERVICE_URL": dn.URL(),
		"CONNECTOR_NAME":     id,
		"MQTT_BROKER_HOST":   u.Hostname(),
		"MQTT_BROKER_PORT":   u.Port(),
		"MQTT_CLIENT_ID":     id + "-bridge",
	}, "migrate", "--output", yamlPath, tomlPath)
	require.Equal(t, 0, mig.wait(t, 30*time.Second), "migrate: %s", mig.stderr)
	assert.Contains(t, mig.stderr.String(), "warning: schemas[2]: schema type bytes")

	y, err := os.ReadFile(yamlPath)
	require.NoError(t, err)
	yaml := strings.Replace(string(y), `"0.0.0.0:9091"`, `"127.0.0.1:0"`, 1) // processing.metrics_port, per test
	require.Contains(t, yaml, "danube_connector_payload:")
	require.Contains(t, yaml, "    schemas:\n")
	yaml, bound := lintOrDropSchemas(t, dir, yaml)

	startBinIn(t, dir, nil, "-c", writeFile(t, dir, "run.yaml", yaml))
	pub := newPublisher(t, mqttURL, id+"-pub")
	waitBridgeReady(t, pub, dn, id+"/debug/probe", 20*time.Second, "/iot/debug")

	cases := []struct {
		name, topic   string
		qos           byte
		payload, want []byte
		danube        string
		parts         int
		wantQoS       int
	}{ // [[schemas]]: /iot/telemetry json_schema, /iot/status string, /iot/firmware bytes; /iot/debug none
		{"json sorted, compact, numbers", "sensors/s1/telemetry", 1, []byte(" { \"temp\": 21.50, \"id\": \"s1\", \"n\": 1e2, \"big\": 18446744073709551616, \"id\": \"s1b\" }\n"),
			[]byte(`{"big":1.8446744073709552e19,"id":"s1b","n":100.0,"temp":21.5}`), "/iot/telemetry", 2, 1},
		{"text wrapped", "sensors/s2/telemetry", 1, []byte("hello"), []byte(`{"data":"aGVsbG8=","encoding":"base64","size":5}`), "/iot/telemetry", 2, 1},
		{"empty wrapped", "sensors/s3/telemetry", 1, []byte{}, []byte(`{"data":"","encoding":"base64","size":0}`), "/iot/telemetry", 2, 1},
		{"non-UTF-8 wrapped", "sensors/s4/telemetry", 2, []byte{0x00, 0xff, 0xfe, 0x80}, []byte(`{"data":"AP/+gA==","encoding":"base64","size":4}`), "/iot/telemetry", 2, 1},
		{"BOM wrapped", "sensors/s5/telemetry", 1, []byte("\xef\xbb\xbf{}"), []byte(`{"data":"77u/e30=","encoding":"base64","size":5}`), "/iot/telemetry", 2, 1},
		{"string type unquotes", "devices/d1/status", 1, []byte(`"online"`), []byte(`online`), "/iot/status", 0, 1},
		{"string type, object", "devices/d2/status", 1, []byte(`{"b":1,"a":2}`), []byte(`{"a":2,"b":1}`), "/iot/status", 0, 1},
		{"bytes type raw", "firmware/v2/chunk1", 2, []byte{0xde, 0xad, 0xbe, 0xef}, []byte{0xde, 0xad, 0xbe, 0xef}, "/iot/firmware", 0, 2},
		{"bytes type, JSON raw too", "firmware/v2/manifest", 1, []byte(`{"b":1,"a":2}`), []byte(`{"b":1,"a":2}`), "/iot/firmware", 0, 1},
		{"no schema, number", "debug/gw/uptime", 0, []byte(`42`), []byte(`42`), "/iot/debug", 0, 0},
		{"no schema, string literal", "debug/gw/name", 0, []byte(` "hi" `), []byte(`"hi"`), "/iot/debug", 0, 0},
	}
	for _, c := range cases {
		require.NoError(t, pub.publish(id+"/"+c.topic, c.qos, false, c.payload), c.name)
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			mqttTopic := id + "/" + c.topic
			name := c.danube
			if c.parts > 0 {
				name += "-part-" + strconv.Itoa(danube.PartitionForKey(mqttTopic, c.parts))
			}
			var got []danubetest.Message
			require.Eventually(t, func() bool {
				got = got[:0]
				for _, m := range dn.Messages(name) {
					if m.Attributes["mqtt.topic"] == mqttTopic {
						got = append(got, m)
					}
				}
				return len(got) > 0
			}, 15*time.Second, 50*time.Millisecond, "nothing from %s on %s; topics %v", mqttTopic, name, dn.Topics())
			require.Len(t, got, 1, "exactly one copy")
			assert.True(t, bytes.Equal(c.want, got[0].Payload), "payload: got %q, want %q", got[0].Payload, c.want)
			assert.Equal(t, map[string]string{
				"mqtt.topic":  mqttTopic,
				"mqtt.qos":    strconv.Itoa(c.wantQoS),
				"mqtt.retain": "false",
				"mqtt.dup":    "false",
				"source":      "mqtt",
			}, got[0].Attributes, "the 0.3 connector's attributes, nothing else")
			// Each [[schemas]] subject was registered once (version 1), and
			// latest, {minimum = 1} and {pinned = 1} all resolve to it.
			if bound && c.danube != "/iot/debug" {
				if assert.NotNil(t, got[0].SchemaID, "schema id") && assert.NotNil(t, got[0].SchemaVersion, "schema version") {
					assert.Equal(t, uint32(1), *got[0].SchemaVersion)
				}
			} else {
				assert.Nil(t, got[0].SchemaID, "no schema bound")
			}
		})
	}
}

// lintOrDropSchemas lints yaml with the binary. Where the only finding is
// the output's unknown schemas field (the branch that adds it is not merged
// yet), it drops that block and lints again; bound says whether the block
// was kept.
func lintOrDropSchemas(t *testing.T, dir, yaml string) (_ string, bound bool) {
	t.Helper()
	lint := startBinIn(t, dir, nil, "lint", writeFile(t, dir, "lint.yaml", yaml))
	if lint.wait(t, 30*time.Second) == 0 {
		return yaml, true
	}
	out := lint.stdout.String() + lint.stderr.String()
	require.Contains(t, out, "field schemas not recognised", "lint: %s", out)
	t.Logf("the danube output has no schemas field yet (%s); running without the schemas block", strings.TrimSpace(out))
	stripped := schemasBlock.ReplaceAllString(yaml, "")
	require.NotEqual(t, yaml, stripped)
	require.NotContains(t, stripped, "subject:")
	lint = startBinIn(t, dir, nil, "lint", writeFile(t, dir, "lint2.yaml", stripped))
	require.Equal(t, 0, lint.wait(t, 30*time.Second), "lint without schemas: %s%s", lint.stdout, lint.stderr)
	return stripped, false
}

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	require.NoError(t, os.WriteFile(p, []byte(content), 0o600))
	return p
}
