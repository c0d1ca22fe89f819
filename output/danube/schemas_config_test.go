package danubeout

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

const telemetrySchema = `{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "type": "object",
  "properties": {"device": {"type": "string"}, "temp": {"type": "number"}},
  "required": ["device", "temp"]
}`

func writeFile(t testing.TB, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestSchemasConfigChecks: every mistake in schemas (and in how it combines
// with schema and dead_letter) is one line, the same at lint and start-up.
func TestSchemasConfigChecks(t *testing.T) {
	dir := t.TempDir()
	good := writeFile(t, dir, "good.json", telemetrySchema)
	notJSON := writeFile(t, dir, "bad.json", `{"type": "object",`)
	notSchema := writeFile(t, dir, "notschema.json", `{"type": 12}`)
	missing := filepath.Join(dir, "missing.json")
	const u = "  url: http://127.0.0.1:6650\n"
	entry := func(fields string) string { return u + "  schemas:\n    - " + fields + "\n" }
	cases := []struct{ name, yaml, want string }{
		{"type unknown", entry("{topic: /default/t, subject: s, type: xml}"),
			`danube output: field schemas[0].type: must be one of json_schema, json, string, number, bytes, avro, protobuf, got "xml"`},
		{"json_schema without file", entry("{topic: /default/t, subject: s, type: json_schema}"),
			`danube output: field schemas[0].file: must name the JSON Schema file: a json_schema entry validates every payload with it`},
		{"file missing", entry("{topic: /default/t, subject: s, type: JSON, file: '" + missing + "'}"),
			`danube output: field schemas[0].file: open ` + missing + `: no such file or directory`},
		{"avro file missing", entry("{topic: /default/t, subject: s, type: avro, file: '" + missing + "'}"),
			`danube output: field schemas[0].file: open ` + missing + `: no such file or directory`},
		{"avro without file to register", entry("{topic: /default/t, subject: s, type: avro}"),
			`danube output: field schemas[0].file: must name the avro schema file that auto_register registers (or set auto_register: false for a registered subject)`},
		{"file not JSON", entry("{topic: /default/t, subject: s, type: json_schema, file: '" + notJSON + "'}"),
			`danube output: field schemas[0].file: ` + notJSON + ` is not JSON: unexpected EOF`},
		{"file not a JSON Schema", entry("{topic: /default/t, subject: s, type: json_schema, file: '" + notSchema + "'}"),
			"danube output: field schemas[0].file: " + notSchema + " is not a valid JSON Schema: - at '': 'allOf' failed; - at '/type': 'anyOf' failed; - at '/type': value must be one of 'array', 'boolean', 'integer', 'null', 'number', 'object', 'string'; - at '/type': got number, want array"},
		{"topic empty", entry("{topic: '', subject: s, type: string}"),
			`danube output: field schemas[0].topic: must not be empty: name the Danube topic whose producers use the subject`},
		{"topic invalid", entry("{topic: default/t, subject: s, type: string}"),
			`danube output: field schemas[0].topic: "default/t" is not a Danube topic of the form /namespace/topic (placeholders are written {name})`},
		{"topic with a broken placeholder", entry("{topic: '/default/{dev', subject: s, type: string}"),
			`danube output: field schemas[0].topic: "/default/{dev" is not a Danube topic of the form /namespace/topic (placeholders are written {name})`},
		{"subject empty", entry("{topic: /default/t, subject: '', type: string}"),
			`danube output: field schemas[0].subject: must not be empty`},
		{"version with latest", entry("{topic: /default/t, subject: s, type: string, version: 2}"),
			`danube output: field schemas[0].version: is 2 but version_strategy is latest: set version_strategy: pinned or minimum, or remove version`},
		{"pinned without version", entry("{topic: /default/t, subject: s, type: string, version_strategy: pinned}"),
			`danube output: field schemas[0].version: must be a version number of 1 or more with version_strategy: pinned, got 0`},
		{"strategy unknown", entry("{topic: /default/t, subject: s, type: string, version_strategy: newest}"),
			`danube output: field schemas[0].version_strategy: must be latest, pinned or minimum, got "newest"`},
		{"topic twice", u + "  schemas:\n    - {topic: /default/t, subject: a, type: string}\n    - {topic: /default/t, subject: b, type: string}\n",
			`danube output: field schemas[1].topic: /default/t is already bound by schemas[0]: a topic has one subject`},
		{"subject shared with another file", u + "  schemas:\n    - {topic: /default/a, subject: s, type: json_schema, file: '" + good + "'}\n    - {topic: /default/b, subject: s, type: string}\n",
			`danube output: field schemas[1].subject: s is also used by schemas[0] with another type or file: entries sharing a subject must register the same schema`},
		{"dead-letter topic bound", entry("{topic: '/default/{x}', subject: s, type: string}"),
			`danube output: field schemas[0].topic: /default/{x} binds the dead-letter topic /default/dead_letter: dead-letter records keep the original payload and are never bound to a schema`},
		{"schema.subject and schemas on the only topic", u + "  topic: /default/t\n  schema: {subject: other}\n  schemas:\n    - {topic: /default/t, subject: s, type: string}\n",
			`danube output: field schema.subject: conflicts with schemas[0], which binds the output's only topic /default/t: remove one of them`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if lints := lintOutput(t, c.yaml); !slices.Equal(lints, []string{c.want}) {
				t.Errorf("lint:\n got %q\nwant [%q]", lints, c.want)
			}
			if err := startUpOutput(t, c.yaml); err == nil || err.Error() != c.want {
				t.Errorf("start-up:\n got %v\nwant %s", err, c.want)
			}
		})
	}
}

// TestSchemasConfigClean: the shapes the field documents lint and start.
func TestSchemasConfigClean(t *testing.T) {
	dir := t.TempDir()
	good := writeFile(t, dir, "good.json", telemetrySchema)
	avro := writeFile(t, dir, "r.avsc", `{"type":"record","name":"r","fields":[]}`)
	for _, y := range []string{
		fmt.Sprintf(`  schemas:
    - {topic: /iot/telemetry, subject: telemetry-v1, type: json_schema, file: '%s'}
    - {topic: '/iot/{dev}_status', subject: status, type: STRING, file: ignored.txt, version_strategy: minimum, version: 1}
    - {topic: /iot/raw, subject: raw, type: bytes, auto_register: false, version_strategy: pinned, version: 3}
    - {topic: /iot/a, subject: telemetry-v1, type: json, file: '%s'}
    - {topic: /iot/r, subject: r, type: avro, file: '%s'}
    - {topic: /iot/p, subject: p, type: protobuf, auto_register: false}
`, good, good, avro),
		"  topic: /iot/x\n  schema: {subject: fallback}\n  schemas:\n    - {topic: /iot/y, subject: s, type: number}\n",
	} {
		y = "  url: http://127.0.0.1:6650\n" + y
		if got := lintOutput(t, y); len(got) != 0 {
			t.Errorf("lint %q = %q, want nothing", y, got)
		}
		if err := startUpOutput(t, y); err != nil {
			t.Errorf("start-up %q: %v", y, err)
		}
	}
}

// TestSchemaBindingsLookup: exact entries win, placeholders match one
// segment in order, other topics fall back to schema, the dead-letter topic
// has no subject.
func TestSchemaBindingsLookup(t *testing.T) {
	mk := func(i int, topic, subject string) *schemaBinding {
		return &schemaBinding{index: i, topic: topic, pattern: topicPattern(topic), subject: subject}
	}
	b := newSchemaBindings([]*schemaBinding{
		mk(0, "/iot/{dev}_telemetry", "any-telemetry"),
		mk(1, "/iot/d1_telemetry", "d1"),
		mk(2, "/iot/{a}-{b}", "dash"),
	}, nil, "/iot/dead_letter")
	for topic, want := range map[string]string{
		"/iot/d1_telemetry":       "d1",
		"/iot/d2_telemetry":       "any-telemetry",
		"/iot/x-y":                "dash",
		"/iot/_telemetry":         "",
		"/iot/d2_telemetry_extra": "",
		"/other/d2_telemetry":     "",
		"/iot/dead_letter":        "",
	} {
		for range 2 { // the second lookup comes from the cache
			got := ""
			if e := b.forTopic(topic); e != nil {
				got = e.subject
			}
			if got != want {
				t.Errorf("forTopic(%s) = %q, want %q", topic, got, want)
			}
		}
	}
	if !strings.HasPrefix(topicPattern("/iot/{dev}").String(), "^/iot/") || topicPattern("/iot/plain") != nil {
		t.Error("topicPattern")
	}
}
