package mqtt

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"
)

func construct(t *testing.T, yaml string) error {
	t.Helper()
	conf, err := Spec().ParseYAML(yaml, nil)
	if err != nil {
		return err
	}
	_, err = newInput(conf, service.MockResources())
	return err
}

func TestConfigErrors(t *testing.T) {
	cases := []struct{ name, yaml, want string }{
		{"filter # not last", `
urls: [tcp://x:1883]
topic_mappings:
  - {mqtt_topic: a/b, danube_topic: /a/b}
  - {mqtt_topic: c, danube_topic: /a/c}
  - {mqtt_topic: "a/#/b", danube_topic: /a/d}
`, `topic_mappings[2].mqtt_topic: invalid filter "a/#/b": '#' must be the last level`},
		{"filter a+", `
urls: [tcp://x:1883]
topic_mappings: [{mqtt_topic: "a+", danube_topic: /a/b}]
`, `topic_mappings[0].mqtt_topic: invalid filter "a+": '+' must occupy a whole level`},
		{"invalid danube_topic", `
urls: [tcp://x:1883]
topic_mappings: [{mqtt_topic: a, danube_topic: /a/b}, {mqtt_topic: b, danube_topic: iot.x}]
`, `topic_mappings[1].danube_topic: invalid danube_topic "iot.x"`},
		{"unbound placeholder", `
urls: [tcp://x:1883]
topic_mappings: [{mqtt_topic: "s/{kind}/z", danube_topic: "/iot/{site}"}]
`, `topic_mappings[0].danube_topic: invalid danube_topic "/iot/{site}": placeholder {site} is not bound by mqtt_topic`},
		{"placeholder makes invalid", `
urls: [tcp://x:1883]
topic_mappings: [{mqtt_topic: "s/{kind}", danube_topic: "/iot/{kind}/x"}]
`, `topic_mappings[0].danube_topic`},
		{"empty mappings", `
urls: [tcp://x:1883]
`, `topic_mappings: no filters to subscribe to`},
		{"qos 3", `
urls: [tcp://x:1883]
topic_mappings: [{mqtt_topic: a, danube_topic: /a/b}, {mqtt_topic: b, danube_topic: /a/c, qos: 3}]
`, `topic_mappings[1].qos: must be 0, 1, 2, AtMostOnce, AtLeastOnce or ExactlyOnce, got 3`},
		{"qos name", `
urls: [tcp://x:1883]
topic_mappings: [{mqtt_topic: a, danube_topic: /a/b, qos: Sometimes}]
`, `topic_mappings[0].qos: must be`},
		{"persistent without client_id", `
urls: [tcp://x:1883]
clean_session: false
topic_mappings: [{mqtt_topic: a, danube_topic: /a/b}]
`, `client_id: a persistent session (clean_session: false) needs a non-empty, stable client_id`},
		{"duplicate filter", `
urls: [tcp://x:1883]
topic_mappings: [{mqtt_topic: "a/+", danube_topic: /a/b}, {mqtt_topic: "a/{x}", danube_topic: /a/c}]
`, `topic_mappings[1].mqtt_topic: filter "a/{x}" is the same subscription as topic_mappings[0]`},
		{"conflicting topic shape", `
urls: [tcp://x:1883]
topic_mappings: [{mqtt_topic: a, danube_topic: /a/b, partitions: 2}, {mqtt_topic: b, danube_topic: /a/b}]
`, `topic_mappings[1].danube_topic: "/a/b" is also the target of topic_mappings[0]`},
		{"both forms", `
urls: [tcp://x:1883]
topics: [a]
topic_mappings: [{mqtt_topic: a, danube_topic: /a/b}]
`, `mutually exclusive`},
		{"plain qos 3", `
urls: [tcp://x:1883]
topics: [a]
qos: 3
`, `qos: must be 0, 1 or 2`},
		{"bad scheme", `
urls: [http://x:1883]
topics: [a]
`, `urls[0]: unsupported scheme`},
		{"will without topic", `
urls: [tcp://x:1883]
topics: [a]
will: {enabled: true}
`, `will.topic`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := construct(t, c.yaml)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v\nwant it to contain %q", err, c.want)
			}
		})
	}
}

func TestConfigValid(t *testing.T) {
	for _, y := range []string{`
urls: [tcp://x:1883]
topics: [a/#, b]
qos: 0
`, `
urls: ["tcp://x:1883,ssl://y:8883"]
client_id: c
clean_session: false
dynamic_client_id_suffix: nanoid
topic_mappings:
  - {mqtt_topic: "$share/g/s/{kind}/z", danube_topic: "/iot/{kind}_z", qos: AtLeastOnce, partitions: 4}
  - {mqtt_topic: "d/#", danube_topic: /iot/d, qos: "0", reliable_dispatch: true}
`} {
		if err := construct(t, y); err != nil {
			t.Errorf("%s: %v", y, err)
		}
	}
}

func TestLintRules(t *testing.T) {
	env := service.NewEnvironment()
	if err := Register(env); err != nil {
		t.Fatal(err)
	}
	lint := func(y string) string {
		lints, err := env.NewComponentConfigLinter().LintInputYAML([]byte("mqtt:\n" + indent(y, "  ")))
		if err != nil {
			t.Fatal(err)
		}
		var s []string
		for _, l := range lints {
			s = append(s, l.Error())
		}
		return strings.Join(s, "; ")
	}
	cases := map[string]string{
		"urls: [tcp://x:1883]\n":                                                                            "one of topics or topic_mappings",
		"urls: [tcp://x:1883]\ntopics: [a]\nclean_session: false\n":                                         "needs a non-empty client_id",
		"urls: [tcp://x:1883]\ntopic_mappings: [{mqtt_topic: a, danube_topic: /a/b, qos: 3}]\n":             "qos must be 0, 1, 2",
		"urls: [tcp://x:1883]\ntopics: [a]\nqos: 7\n":                                                       "qos must be 0, 1 or 2",
		"urls: [tcp://x:1883]\ntopics: [a]\ntopic_mappings: [{mqtt_topic: a, danube_topic: /a/b}]\n":        "not both",
		"urls: [tcp://x:1883]\ntopic_mappings: [{mqtt_topic: a, danube_topic: /a/b, topik: 1}]\n":           "topik",
		"urls: [tcp://x:1883]\ntopic_mappings: [{mqtt_topic: a, danube_topic: /a/b, qos: AtMostOnce}]\n":    "",
		"urls: [tcp://x:1883]\ntopic_mappings: [{mqtt_topic: a/#/b, danube_topic: /a/b}]\n":                 `invalid filter "a/#/b"`,
		"urls: [tcp://x:1883]\ntopic_mappings: [{mqtt_topic: a+, danube_topic: /a/b}]\n":                    `invalid filter "a+"`,
		"urls: [tcp://x:1883]\ntopic_mappings: [{mqtt_topic: \"\", danube_topic: /a/b}]\n":                  "must not be empty",
		"urls: [tcp://x:1883]\ntopic_mappings: [{mqtt_topic: \"$share/g/a/#\", danube_topic: /a/b}]\n":      "",
		"urls: [tcp://x:1883]\ntopic_mappings: [{mqtt_topic: \"s/{k}/z\", danube_topic: \"/iot/{k}_z\"}]\n": "",
		"urls: [tcp://x:1883]\ntopic_mappings: [{mqtt_topic: a, danube_topic: iot/x}]\n":                    `invalid danube_topic "iot/x"`,
		"urls: [tcp://x:1883]\ntopic_mappings: [{mqtt_topic: a, danube_topic: /a.b/c}]\n":                   `invalid danube_topic "/a.b/c"`,
	}
	for y, want := range cases {
		got := lint(y)
		if want == "" && got != "" || want != "" && !strings.Contains(got, want) {
			t.Errorf("lint %q = %q, want %q", y, got, want)
		}
	}
}

// TestConnectErrors: unreachable broker, bad credentials and a refused
// subscription give clear errors with a growing backoff.
func TestConnectErrors(t *testing.T) {
	b := newTestBroker(t, false)
	b.obs.mu.Lock()
	b.obs.badUser = "mallory"
	b.obs.denySub["secret/#"] = true
	b.obs.mu.Unlock()

	connectErr := func(yaml string) (*input, error) {
		conf, err := Spec().ParseYAML(yaml, nil)
		if err != nil {
			t.Fatal(err)
		}
		in, err := newInput(conf, service.MockResources())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = in.Close(context.Background()) })
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return in, in.Connect(ctx)
	}
	check := func(err error, want string) time.Duration {
		t.Helper()
		var bo *service.ErrBackOff
		if !errors.As(err, &bo) {
			t.Fatalf("want *service.ErrBackOff, got %T %v", err, err)
		}
		if !strings.Contains(err.Error(), want) {
			t.Fatalf("error %q does not contain %q", err, want)
		}
		return bo.Wait
	}

	in, err := connectErr("urls: [tcp://127.0.0.1:1]\nconnect_timeout: 2s\ntopics: [a]\n")
	w1 := check(err, "connecting to MQTT broker [tcp://127.0.0.1:1]")
	w2 := check(in.Connect(context.Background()), "connection refused")
	if !(w1 >= 400*time.Millisecond && w2 > w1) {
		t.Errorf("backoff does not grow: %v then %v", w1, w2)
	}
	if _, _, err := in.Read(context.Background()); !errors.Is(err, service.ErrNotConnected) {
		t.Errorf("Read while down: %v, want ErrNotConnected", err)
	}

	_, err = connectErr("urls: [" + b.url() + "]\nuser: mallory\npassword: x\ntopics: [a]\n")
	check(err, "not Authorized")

	_, err = connectErr("urls: [" + b.url() + "]\ntopic_mappings: [{mqtt_topic: a/#, danube_topic: /a/b}, {mqtt_topic: secret/#, danube_topic: /a/s}]\n")
	check(err, `refused the subscription (SUBACK 0x80) to filter ["secret/#"]`)
}
