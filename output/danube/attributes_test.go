package danubeout

import (
	"testing"

	"github.com/redpanda-data/benthos/v4/public/bloblang"
	"github.com/redpanda-data/benthos/v4/public/service"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func attrOutput(t testing.TB, yaml string) *output {
	t.Helper()
	conf, err := Spec().ParseYAML("url: 127.0.0.1:6650\n"+yaml, nil)
	require.NoError(t, err)
	o, err := newOutput(conf, service.MockResources())
	require.NoError(t, err)
	return o
}

// mqttMessage carries the metadata the mqtt input sets on a routed message.
func mqttMessage() *service.Message {
	m := service.NewMessage([]byte("x"))
	m.MetaSetMut("mqtt_topic", "sensors/t1/zone1")
	m.MetaSetMut("mqtt_qos", 1)
	m.MetaSetMut("mqtt_retained", false)
	m.MetaSetMut("mqtt_duplicate", true)
	m.MetaSetMut("mqtt_message_id", 7)
	m.MetaSetMut("danube_topic", "/iot/sensors_zone1")
	m.MetaSetMut("danube_partitions", 4)
	m.MetaSetMut("danube_reliable_dispatch", true)
	return m
}

func TestAttributeNames(t *testing.T) {
	connector := map[string]string{
		"mqtt.topic": "sensors/t1/zone1", "mqtt.qos": "1", "mqtt.retain": "false", "mqtt.dup": "true",
		"source": "mqtt", "mqtt_message_id": "7",
	}
	metadata := map[string]string{
		"mqtt_topic": "sensors/t1/zone1", "mqtt_qos": "1", "mqtt_retained": "false", "mqtt_duplicate": "true",
		"mqtt_message_id": "7",
	}
	both := map[string]string{}
	for k, v := range connector {
		both[k] = v
	}
	for k, v := range metadata {
		both[k] = v
	}
	cases := []struct {
		name, yaml string
		want       map[string]string
	}{
		{"default is connector", "", connector},
		{"connector", "attribute_names: connector", connector},
		{"metadata", "attribute_names: metadata", metadata},
		{"both", "attribute_names: both", both},
		// The filter matches either name.
		{"filter by metadata name", "attributes: {include_prefixes: [mqtt_, source]}", connector},
		{"filter by attribute name", "attributes: {include_prefixes: [mqtt., source]}", map[string]string{
			"mqtt.topic": "sensors/t1/zone1", "mqtt.qos": "1", "mqtt.retain": "false", "mqtt.dup": "true", "source": "mqtt",
		}},
		{"exactly the connector's five", `attributes: {include_patterns: ['^mqtt\.(topic|qos|retain|dup)$', '^source$']}`, map[string]string{
			"mqtt.topic": "sensors/t1/zone1", "mqtt.qos": "1", "mqtt.retain": "false", "mqtt.dup": "true", "source": "mqtt",
		}},
		{"filter without source", "attributes: {include_patterns: ['^mqtt_qos$']}", map[string]string{"mqtt.qos": "1"}},
		{"metadata mode filter", "attribute_names: metadata\nattributes: {include_prefixes: [mqtt.]}", nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			o := attrOutput(t, c.yaml)
			assert.Equal(t, c.want, o.attributes(mqttMessage()))
		})
	}
}

// TestAttributeNamesPipelineWins: keys the pipeline set under a connector
// name (the mutation the shipped configs used to have, or a pipeline's own
// value) win over the translated metadata, whatever the walk order.
func TestAttributeNamesPipelineWins(t *testing.T) {
	o := attrOutput(t, "")
	for i := 0; i < 20; i++ { // map iteration order varies
		m := mqttMessage()
		m.MetaSetMut("mqtt.topic", "rewritten/topic")
		m.MetaSetMut("source", "gateway-7")
		got := o.attributes(m)
		assert.Equal(t, "rewritten/topic", got["mqtt.topic"])
		assert.Equal(t, "gateway-7", got["source"])
		assert.Equal(t, "1", got["mqtt.qos"])
	}
}

// TestAttributeNamesNotFromMQTT: no source=mqtt on a message that did not
// come from the mqtt input.
func TestAttributeNamesNotFromMQTT(t *testing.T) {
	o := attrOutput(t, "")
	m := service.NewMessage([]byte("x"))
	m.MetaSetMut("device", "d1")
	assert.Equal(t, map[string]string{"device": "d1"}, o.attributes(m))
	assert.Nil(t, o.attributes(service.NewMessage([]byte("x"))))
}

func TestAttributeNamesLint(t *testing.T) {
	_, err := Spec().ParseYAML("url: 127.0.0.1:6650\nattribute_names: rust", nil)
	if err == nil {
		conf, _ := Spec().ParseYAML("url: 127.0.0.1:6650\nattribute_names: rust", nil)
		_, err = newOutput(conf, service.MockResources())
	}
	require.Error(t, err)
	assert.Contains(t, err.Error(), "rust")
}

// BenchmarkAttributes is the per-message cost of building the attributes of
// a message with the mqtt input's eight metadata keys, by naming.
func BenchmarkAttributes(b *testing.B) {
	for _, c := range []struct{ name, yaml string }{
		{"metadata", "attribute_names: metadata"},
		{"connector", "attribute_names: connector"},
		{"both", "attribute_names: both"},
		{"connector_prefixes", `attributes: {include_prefixes: [mqtt., source]}`},
		{"connector_patterns", `attributes: {include_patterns: ['^mqtt\.(topic|qos|retain|dup)$', '^source$']}`},
	} {
		b.Run(c.name, func(b *testing.B) {
			o := attrOutput(b, c.yaml)
			m := mqttMessage()
			b.ReportAllocs()
			for b.Loop() {
				_ = o.attributes(m)
			}
		})
	}
	// What the shipped configs did before attribute_names: a Bloblang
	// mutation setting the connector's names, then a prefix filter.
	b.Run("mutation_then_filter", func(b *testing.B) {
		exec, err := bloblang.Parse(`meta "mqtt.topic" = @mqtt_topic
meta "mqtt.qos" = @mqtt_qos.string()
meta "mqtt.retain" = @mqtt_retained.string()
meta "mqtt.dup" = @mqtt_duplicate.string()
meta source = "mqtt"`)
		require.NoError(b, err)
		o := attrOutput(b, "attribute_names: metadata\nattributes: {include_prefixes: [mqtt., source]}")
		b.ReportAllocs()
		for b.Loop() {
			m := mqttMessage()
			if _, err := m.BloblangMutate(exec); err != nil {
				b.Fatal(err)
			}
			_ = o.attributes(m)
		}
	})
	b.Run("connector_fresh_message", func(b *testing.B) {
		o := attrOutput(b, "")
		b.ReportAllocs()
		for b.Loop() {
			m := mqttMessage()
			_ = o.attributes(m)
		}
	})
}
