package mqtt

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/benthos-danube/benthos-danube/internal/componenttest"
	"github.com/benthos-danube/benthos-danube/internal/configlint"
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

// lintInput lints an mqtt input config with an environment that has only
// this input registered, as `benthos-danube lint` does with the global one.
func lintInput(t *testing.T, yaml string) []string {
	t.Helper()
	env := service.NewEnvironment()
	if err := Register(env); err != nil {
		t.Fatal(err)
	}
	lints, err := env.NewComponentConfigLinter().LintInputYAML([]byte("mqtt:\n" + indent(yaml, "  ")))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range lints {
		out = append(out, l.What)
	}
	return out
}

// startUp runs the start-up validation of the input on yaml.
func startUp(t *testing.T, yaml string) (*config, error) {
	t.Helper()
	conf, err := Spec().ParseYAML(yaml, nil)
	if err != nil {
		t.Fatalf("ParseYAML: %v", err)
	}
	return parseConfig(conf)
}

// TestConfigLintAndStartUp runs every config through the linter and through
// start-up: both must report the same single line. Warnings (a mapping that
// an earlier one shadows) do not fail lint: the lint rule writes them to
// stderr, because a Benthos lint rule has no other level; start-up logs them.
func TestConfigLintAndStartUp(t *testing.T) {
	const u = "urls: [tcp://x:1883]\n"
	cases := []struct {
		name, yaml, want string
		warning          bool
		benthosLint      string // a lint Benthos reports as well, if any
	}{
		// urls
		{"urls missing", "topics: [a]\n", "urls: at least one broker URL is required", false, ""},
		{"urls empty", "urls: []\ntopics: [a]\n", "urls: at least one broker URL is required", false, ""},
		{"urls blank", "urls: [\" , \"]\ntopics: [a]\n", "urls: at least one broker URL is required", false, ""},
		{"url scheme", "urls: [http://x:1883]\ntopics: [a]\n",
			`urls[0]: unsupported scheme "http" in "http://x:1883": use tcp:// (or mqtt://), ssl:// (or tls://, mqtts://), ws://, wss:// or unix://`, false, ""},
		{"url without scheme", "urls: [\"x:1883\"]\ntopics: [a]\n",
			`urls[0]: unsupported scheme "x" in "x:1883": use tcp:// (or mqtt://), ssl:// (or tls://, mqtts://), ws://, wss:// or unix://`, false, ""},
		{"url port out of range", "urls: [tcp://x:1883, tcp://x:99999]\ntopics: [a]\n",
			`urls[1]: port 99999 in "tcp://x:99999" is out of range: use 1 to 65535`, false, ""},
		{"url port 0", "urls: [ssl://x:0]\ntopics: [a]\n",
			`urls[0]: port 0 in "ssl://x:0" is out of range: use 1 to 65535`, false, ""},
		{"url without port", "urls: [tcp://x]\ntopics: [a]\n",
			`urls[0]: "tcp://x" has no port: the MQTT client has no default port for tcp://, add one (1883 is the usual plain port, 8883 the TLS one)`, false, ""},
		{"url without host", "urls: [\"tcp://:1883\"]\ntopics: [a]\n",
			`urls[0]: "tcp://:1883" has no host`, false, ""},
		{"url bad host", "urls: [\"tcp://bro!ker:1883\"]\ntopics: [a]\n",
			`urls[0]: invalid host "bro!ker" in "tcp://bro!ker:1883": use a host name (letters, digits, '.', '-', '_') or an IP address`, false, ""},
		{"url unparsable", "urls: [\"tcp://x y:1883\"]\ntopics: [a]\n",
			`urls[0]: parse "tcp://x y:1883": invalid character " " in host name`, false, ""},
		{"unix without path", "urls: [\"unix://\"]\ntopics: [a]\n",
			`urls[0]: "unix://" has no socket path: use unix:///path/to/socket`, false, ""},
		// session, will, flow control
		{"persistent without client_id", u + "clean_session: false\ntopics: [a]\n",
			"client_id: a persistent session (clean_session: false) needs a non-empty, stable client_id", false, ""},
		{"will without topic", u + "topics: [a]\nwill: {enabled: true}\n", "will.topic: must be set when will.enabled is true", false, ""},
		{"will qos", u + "topics: [a]\nwill: {enabled: true, topic: w, qos: 3}\n", "will.qos: must be 0, 1 or 2, got 3", false, ""},
		{"keepalive", u + "topics: [a]\nkeepalive: 500ms\n", "keepalive: must be 0 (disabled) or between 1s and 18h12m15s, got 500ms", false, ""},
		{"connect_timeout", u + "topics: [a]\nconnect_timeout: 0s\n", "connect_timeout: must be positive, got 0s", false, ""},
		{"max_unacked 0", u + "topics: [a]\nmax_unacked: 0\n", "max_unacked: must be at least 1, got 0", false, ""},
		{"dynamic suffix", u + "topics: [a]\ndynamic_client_id_suffix: uuid\n", `dynamic_client_id_suffix: unknown value "uuid" (supported: nanoid)`, false,
			"value uuid is not a valid option for this field"},
		// forms
		{"no filters", u, "topic_mappings: no filters to subscribe to: list at least one mapping (or use the plain topics form)", false, ""},
		{"both forms", u + "topics: [a]\ntopic_mappings: [{mqtt_topic: a, danube_topic: /a/b}]\n",
			"topic_mappings and topics are mutually exclusive: set one of them", false, ""},
		{"plain qos", u + "topics: [a]\nqos: 3\n", "qos: must be 0, 1 or 2, got 3", false, ""},
		{"plain placeholder", u + "topics: [\"a/{x}\"]\n", "topics[0]: placeholders are only meaningful in topic_mappings; use '+'", false, ""},
		{"plain bad filter", u + "topics: [a, \"a/#/b\"]\n", `topics[1]: invalid filter "a/#/b": '#' must be the last level`, false, ""},
		// topic_mappings
		{"filter # not last", u + "topic_mappings:\n  - {mqtt_topic: a/b, danube_topic: /a/b}\n  - {mqtt_topic: c, danube_topic: /a/c}\n  - {mqtt_topic: \"a/#/b\", danube_topic: /a/d}\n",
			`topic_mappings[2].mqtt_topic: invalid filter "a/#/b": '#' must be the last level`, false, ""},
		{"filter a+", u + "topic_mappings: [{mqtt_topic: \"a+\", danube_topic: /a/b}]\n",
			`topic_mappings[0].mqtt_topic: invalid filter "a+": '+' must occupy a whole level`, false, ""},
		{"filter empty", u + "topic_mappings: [{mqtt_topic: \"\", danube_topic: /a/b}]\n",
			`topic_mappings[0].mqtt_topic: invalid filter "": must not be empty`, false, ""},
		{"filter NUL", u + "topic_mappings: [{mqtt_topic: \"a/\\0\", danube_topic: /a/b}]\n",
			`topic_mappings[0].mqtt_topic: invalid filter "a/\x00": must not contain the null character U+0000`, false, ""},
		{"share without filter", u + "topic_mappings: [{mqtt_topic: $share/g, danube_topic: /a/b}]\n",
			`topic_mappings[0].mqtt_topic: invalid filter "$share/g": a shared subscription must have the form $share/<group>/<filter>`, false, ""},
		{"share empty group", u + "topic_mappings: [{mqtt_topic: $share//a, danube_topic: /a/b}]\n",
			`topic_mappings[0].mqtt_topic: invalid filter "$share//a": the share group of $share/<group>/<filter> must not be empty`, false, ""},
		{"share wildcard group", u + "topic_mappings: [{mqtt_topic: \"$share/g+/a\", danube_topic: /a/b}]\n",
			`topic_mappings[0].mqtt_topic: invalid filter "$share/g+/a": the share group "g+" must not contain '+', '#' or placeholders`, false, ""},
		{"invalid danube_topic", u + "topic_mappings: [{mqtt_topic: a, danube_topic: /a/b}, {mqtt_topic: b, danube_topic: iot.x}]\n",
			`topic_mappings[1].danube_topic: invalid danube_topic "iot.x": invalid topic name "iot.x": must have the form "/namespace/topic" (letters, digits, '_' and '-' only)`, false, ""},
		{"unbound placeholder", u + "topic_mappings: [{mqtt_topic: \"s/{kind}/z\", danube_topic: \"/iot/{site}\"}]\n",
			`topic_mappings[0].danube_topic: invalid danube_topic "/iot/{site}": placeholder {site} is not bound by mqtt_topic (the filter binds {kind})`, false, ""},
		{"placeholder makes invalid", u + "topic_mappings: [{mqtt_topic: \"s/{kind}\", danube_topic: \"/iot/{kind}/x\"}]\n",
			`topic_mappings[0].danube_topic: invalid danube_topic "/iot/{kind}/x": with placeholders replaced by a value it gives "/iot/x/x": invalid topic name "/iot/x/x": must have the form "/namespace/topic" (letters, digits, '_' and '-' only)`, false, ""},
		{"qos 3", u + "topic_mappings: [{mqtt_topic: a, danube_topic: /a/b}, {mqtt_topic: b, danube_topic: /a/c, qos: 3}]\n",
			"topic_mappings[1].qos: must be 0, 1, 2, AtMostOnce, AtLeastOnce or ExactlyOnce, got 3", false, ""},
		{"qos name", u + "topic_mappings: [{mqtt_topic: a, danube_topic: /a/b, qos: Sometimes}]\n",
			`topic_mappings[0].qos: must be 0, 1, 2, AtMostOnce, AtLeastOnce or ExactlyOnce, got "Sometimes"`, false, ""},
		{"negative partitions", u + "topic_mappings: [{mqtt_topic: a, danube_topic: /a/b, partitions: -1}]\n",
			"topic_mappings[0].partitions: must be 0 (not partitioned) or positive, got -1", false, ""},
		{"duplicate filter", u + "topic_mappings: [{mqtt_topic: \"a/+\", danube_topic: /a/b}, {mqtt_topic: \"a/{x}\", danube_topic: /a/c}]\n",
			`topic_mappings[1].mqtt_topic: filter "a/{x}" is the same subscription as topic_mappings[0] ("a/+"); the later mapping could never match`, false, ""},
		{"conflicting topic shape", u + "topic_mappings: [{mqtt_topic: a, danube_topic: /a/b, partitions: 2}, {mqtt_topic: b, danube_topic: /a/b}]\n",
			`topic_mappings[1].danube_topic: "/a/b" is also the target of topic_mappings[0] with partitions 2 and reliable_dispatch true, here partitions 0 and reliable_dispatch true; one Danube topic has one shape`, false, ""},
		// shadowed mappings: legal, but the later mapping never routes anything
		{"shadowed by #", u + "topic_mappings: [{mqtt_topic: a/#, danube_topic: /a/all}, {mqtt_topic: a/b, danube_topic: /a/b}]\n",
			`topic_mappings[1].mqtt_topic: filter "a/b" is shadowed by topic_mappings[0] ("a/#"): every topic it matches goes to the earlier mapping (the first match wins), so this mapping never routes a message; move it above topic_mappings[0] or remove it`, true, ""},
		{"shadowed by +", u + "topic_mappings:\n  - {mqtt_topic: x, danube_topic: /a/x}\n  - {mqtt_topic: sensors/+/zone1, danube_topic: /a/z}\n  - {mqtt_topic: sensors/temp/zone1, danube_topic: /a/t}\n",
			`topic_mappings[2].mqtt_topic: filter "sensors/temp/zone1" is shadowed by topic_mappings[1] ("sensors/+/zone1"): every topic it matches goes to the earlier mapping (the first match wins), so this mapping never routes a message; move it above topic_mappings[1] or remove it`, true, ""},
		{"shadowed by placeholder", u + "topic_mappings: [{mqtt_topic: \"s/{kind}\", danube_topic: \"/a/{kind}\"}, {mqtt_topic: s/t, danube_topic: /a/t}]\n",
			`topic_mappings[1].mqtt_topic: filter "s/t" is shadowed by topic_mappings[0] ("s/{kind}"): every topic it matches goes to the earlier mapping (the first match wins), so this mapping never routes a message; move it above topic_mappings[0] or remove it`, true, ""},
		{"shadowed across $share", u + "topic_mappings: [{mqtt_topic: $share/g/a/#, danube_topic: /a/all}, {mqtt_topic: a/b, danube_topic: /a/b}]\n",
			`topic_mappings[1].mqtt_topic: filter "a/b" is shadowed by topic_mappings[0] ("$share/g/a/#"): every topic it matches goes to the earlier mapping (the first match wins), so this mapping never routes a message; move it above topic_mappings[0] or remove it`, true, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			lints := lintInput(t, c.yaml)
			want := []string{c.want}
			if c.benthosLint != "" {
				want = append(want, c.benthosLint)
			}
			if c.warning {
				// A warning does not fail lint; the rule writes it to
				// stderr instead.
				want = nil
				conf, err := Spec().ParseYAML(c.yaml, nil)
				if err != nil {
					t.Fatal(err)
				}
				if got := lintChecks(conf); !slices.Contains(got, configlint.WarningPrefix+c.want) {
					t.Errorf("lint warnings:\n got %q\nwant %q among them", got, c.want)
				}
			}
			if !slices.Equal(lints, want) {
				t.Errorf("lint:\n got %q\nwant %q", lints, want)
			}
			cfg, err := startUp(t, c.yaml)
			if c.warning {
				if err != nil {
					t.Fatalf("start-up: %v, want only a warning", err)
				}
				if !slices.Contains(cfg.warnings, c.want) {
					t.Errorf("start-up warnings:\n got %q\nwant %q among them", cfg.warnings, c.want)
				}
				return
			}
			if err == nil || err.Error() != c.want {
				t.Errorf("start-up:\n got %v\nwant %s", err, c.want)
			}
		})
	}
}

// TestConfigLintClean: valid configs, including filters that overlap
// without one covering the other, lint without findings.
func TestConfigLintClean(t *testing.T) {
	for _, y := range []string{
		"urls: [tcp://x:1883]\ntopic_mappings: [{mqtt_topic: a, danube_topic: /a/b, qos: AtMostOnce}]\n",
		"urls: [tcp://x:1883]\ntopic_mappings: [{mqtt_topic: \"$share/g/a/#\", danube_topic: /a/b}]\n",
		"urls: [tcp://x:1883]\ntopic_mappings: [{mqtt_topic: \"s/{k}/z\", danube_topic: \"/iot/{k}_z\"}]\n",
		"urls: [tcp://x:1883]\ntopic_mappings: [{mqtt_topic: a/b, danube_topic: /a/b}, {mqtt_topic: a/#, danube_topic: /a/all}]\n",
		"urls: [tcp://x:1883]\ntopic_mappings: [{mqtt_topic: sensors/+/zone1, danube_topic: /a/z}, {mqtt_topic: sensors/temp/#, danube_topic: /a/t}]\n",
		"urls: [tcp://x:1883]\ntopic_mappings: [{mqtt_topic: \"#\", danube_topic: /a/all}, {mqtt_topic: $SYS/#, danube_topic: /a/sys}]\n",
		"urls: [\"tcp://x:1883,ssl://y:8883\", \"mqtt://[::1]:1883\", ws://x, wss://x:443/mqtt, \"unix:///run/mosquitto.sock\"]\ntopics: [a/#, b]\n",
	} {
		if got := lintInput(t, y); len(got) != 0 {
			t.Errorf("lint %q = %q, want nothing", y, got)
		}
		if _, err := startUp(t, y); err != nil {
			t.Errorf("start-up %q: %v", y, err)
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
		in := componenttest.New(t, Spec(), yaml, nil, newInput)
		return in, componenttest.Connect(in)
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
	if _, _, err := in.ReadBatch(context.Background()); !errors.Is(err, service.ErrNotConnected) {
		t.Errorf("Read while down: %v, want ErrNotConnected", err)
	}

	_, err = connectErr("urls: [" + b.url() + "]\nuser: mallory\npassword: x\ntopics: [a]\n")
	check(err, "not Authorized")

	_, err = connectErr("urls: [" + b.url() + "]\ntopic_mappings: [{mqtt_topic: a/#, danube_topic: /a/b}, {mqtt_topic: secret/#, danube_topic: /a/s}]\n")
	check(err, `refused the subscription to filter ["secret/#" (SUBACK 0x80 unspecified error)]`)
}
