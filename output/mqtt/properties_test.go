package mqttout

import (
	"strings"
	"testing"

	"github.com/redpanda-data/benthos/v4/public/service"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestBuildProperties(t *testing.T) {
	env := service.NewEnvironment()
	filter := func(yaml string) *service.MetadataFilter {
		t.Helper()
		if yaml == "" {
			return nil
		}
		conf, err := service.NewConfigSpec().Field(service.NewMetadataFilterField("f")).ParseYAML("f: "+yaml, env)
		require.NoError(t, err)
		f, err := conf.FieldMetadataFilter("f")
		require.NoError(t, err)
		return f
	}
	for _, tc := range []struct {
		name    string
		meta    []string
		filter  string
		want    []userProperty
		ct, rt  string
		corr    []byte
		wantErr string
	}{
		{name: "excluded keys", meta: []string{"a", "1", "danube_topic", "/t", "danube_offset", "3", "dead_letter_mqtt_topic", "x", metaSeq, "9", "mqtt.qos", "1", "mqtt_retained", "false", "source", "mqtt"},
			want: []userProperty{{"a", "1"}, {"source", "mqtt"}}},
		{name: "user keys map back", meta: []string{"mqtt.user.k", "edge", "mqtt_user_k", "input", "k", "plain", "mqtt_user_j", "j1", "j", "plain j"},
			want: []userProperty{{"j", "j1"}, {"k", "edge"}}},
		{name: "properties", meta: []string{"mqtt.content_type", "text/plain", "mqtt_response_topic", "r/1", "mqtt.correlation_data", "AAH/"},
			ct: "text/plain", rt: "r/1", corr: []byte{0, 1, 0xff}},
		{name: "attribute wins", meta: []string{"mqtt.content_type", "a", "mqtt_content_type", "b"}, ct: "a"},
		{name: "filter", meta: []string{"mqtt.user.k", "v", "device", "d"}, filter: "{ include_prefixes: [ mqtt.user. ] }", want: []userProperty{{"k", "v"}}},
		{name: "bad correlation", meta: []string{"mqtt.correlation_data", "!!"}, wantErr: "not standard base64"},
		{name: "bad response topic", meta: []string{"mqtt.response_topic", "a/#"}, wantErr: "response topic"},
		{name: "U+0000 value", meta: []string{"k", "a\x00b"}, wantErr: `user property "k": the value contains U+0000`},
		{name: "long value", meta: []string{"k", strings.Repeat("x", 65536)}, wantErr: "over 65535"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := service.NewMessage(nil)
			for i := 0; i+1 < len(tc.meta); i += 2 {
				m.MetaSetMut(tc.meta[i], tc.meta[i+1])
			}
			p, err := buildProperties(m, filter(tc.filter))
			if tc.wantErr != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tc.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, p.user)
			assert.Equal(t, tc.ct, p.contentType)
			assert.Equal(t, tc.rt, p.responseTopic)
			assert.Equal(t, tc.corr, p.correlationData)
		})
	}
}
