package mqtt

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/packets"
	paho5 "github.com/eclipse/paho.golang/paho"
	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/benthos-danube/benthos-danube/internal/componenttest"
	"github.com/benthos-danube/benthos-danube/internal/mqtttest"
	"github.com/benthos-danube/benthos-danube/internal/syncbuf"
)

// TestV5ConnectAndSubscribeOptions: what the input sends over MQTT 5 for
// each session setting: Clean Start, Session Expiry Interval, Receive
// Maximum from max_unacked, Retain Handling.
func TestV5ConnectAndSubscribeOptions(t *testing.T) {
	b := newTestBroker(t, false)
	for _, c := range []struct {
		name       string
		extra      string
		clean      bool
		expiry     uint32
		recvMax    uint16
		retainHand byte
	}{
		{"persistent, defaults", "clean_session: false\n", false, 0xFFFFFFFF, 1024, 1},
		{"persistent, 1h, forward", "clean_session: false\nsession_expiry: 1h\nretained_on_resume: forward\nmax_unacked: 20\n", false, 3600, 20, 0},
		{"clean", "clean_session: true\nmax_unacked: 100000\n", true, 0, 65535, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			id := runID(t)
			in := componenttest.New(t, Spec(), fmt.Sprintf("protocol_version: \"5\"\nurls: [%s]\nclient_id: %s\ntopic_mappings: [{mqtt_topic: \"%s/#\", danube_topic: /a/b}]\n%s", b.url(), id, id, c.extra), nil, newInput)
			componenttest.MustConnect(t, in)
			cp, ok := b.obs.lastConnect(id)
			if !ok {
				t.Fatal("no CONNECT seen")
			}
			if cp.ProtocolVersion != 5 || cp.Connect.Clean != c.clean || cp.Properties.SessionExpiryInterval != c.expiry || cp.Properties.ReceiveMaximum != c.recvMax {
				t.Errorf("CONNECT: version %d, clean start %v, session expiry %d, receive maximum %d; want 5, %v, %d, %d",
					cp.ProtocolVersion, cp.Connect.Clean, cp.Properties.SessionExpiryInterval, cp.Properties.ReceiveMaximum, c.clean, c.expiry, c.recvMax)
			}
			if cp.Properties.TopicAliasMaximum != 0 {
				t.Errorf("topic alias maximum %d, want 0", cp.Properties.TopicAliasMaximum)
			}
			sp, ok := b.obs.lastSubscribe(id)
			if !ok || len(sp.Filters) != 1 {
				t.Fatalf("SUBSCRIBE: %v %+v", ok, sp.Filters)
			}
			if f := sp.Filters[0]; f.RetainHandling != c.retainHand || f.Qos != 1 {
				t.Errorf("subscription %q: retain handling %d QoS %d, want %d, 1", f.Filter, f.RetainHandling, f.Qos, c.retainHand)
			}
		})
	}
}

func TestV5SessionExpiryConfig(t *testing.T) {
	base := "protocol_version: \"5\"\nurls: [tcp://x:1883]\nclient_id: c\nclean_session: false\ntopic_mappings: [{mqtt_topic: a, danube_topic: /a/b}]\n"
	for _, c := range []struct {
		extra   string
		want    uint32
		wantErr string
	}{
		{"", 0xFFFFFFFF, ""},
		{"session_expiry: never\n", 0xFFFFFFFF, ""},
		{"session_expiry: 90m\n", 5400, ""},
		{"session_expiry: 1500ms\n", 1, ""},
		{"session_expiry: 0s\n", 0, "session_expiry: must be never or between 1s and"},
		{"session_expiry: soon\n", 0, `session_expiry: "soon" is neither never nor a duration`},
		{"protocol_version: \"4\"\n", 0, `protocol_version: unknown value "4" (supported: 3.1.1, 5)`},
	} {
		t.Run(c.extra, func(t *testing.T) {
			conf, err := parseConfig(mustParse(t, strings.Replace(base, "protocol_version: \"5\"\n", "", boolInt(strings.HasPrefix(c.extra, "protocol_version")))+c.extra))
			switch {
			case c.wantErr != "":
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("got %v, want %q", err, c.wantErr)
				}
				// lint runs the same check
				lints := lintChecks(mustParse(t, strings.Replace(base, "protocol_version: \"5\"\n", "", boolInt(strings.HasPrefix(c.extra, "protocol_version")))+c.extra))
				if len(lints) == 0 || !strings.Contains(strings.Join(lints, "\n"), c.wantErr) {
					t.Fatalf("lint: %v, want %q", lints, c.wantErr)
				}
			case err != nil:
				t.Fatal(err)
			case conf.sessionExpiry != c.want:
				t.Fatalf("session expiry %d, want %d", conf.sessionExpiry, c.want)
			}
		})
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// TestV5RetainedNotReplayedOnResume: over MQTT 5 a resumed persistent
// session gets no retained replays (Retain Handling 1): the retained message
// reaches the pipeline once across a restart, and nothing needs skipping.
func TestV5RetainedNotReplayedOnResume(t *testing.T) {
	for _, bc := range testBrokers(t, false) {
		t.Run(bc.name, func(t *testing.T) {
			id := runID(t)
			pub := mqtttest.NewPublisher5(t, bc.url, id+"-pub")
			pub.Publish(t, &paho5.Publish{Topic: id + "/state", QoS: 1, Retain: true, Payload: []byte("state")})
			t.Cleanup(func() { pub.Publish(t, &paho5.Publish{Topic: id + "/state", QoS: 1, Retain: true}) })
			rec := newReceived()
			conf := fmt.Sprintf(`
protocol_version: "5"
urls: [ %s ]
client_id: %s
clean_session: false
session_expiry: 5m
topic_mappings:
  - mqtt_topic: %s/#
    danube_topic: /t/x
    qos: 1
`, bc.url, id, id)
			consume := func(_ context.Context, m *service.Message) error { rec.add(m); return nil }
			ts := startStream(t, conf, consume)
			ts.waitConnected(t)
			waitFor(t, 10*time.Second, "the retained message", func() bool { return len(rec.get("state")) == 1 })
			ts.stop(t, 10*time.Second)
			ts2 := startStream(t, conf, consume)
			ts2.waitConnected(t)
			pub.Publish(t, &paho5.Publish{Topic: id + "/probe", QoS: 1, Payload: []byte("probe")})
			waitFor(t, 10*time.Second, "the probe", func() bool { return len(rec.get("probe")) == 1 })
			if n := len(rec.get("state")); n != 1 {
				t.Fatalf("the retained message arrived %d times, want 1", n)
			}
			if n := ts2.in.skipped.n.Load(); n != 0 {
				t.Fatalf("%d replays skipped: the broker should not have sent any", n)
			}
		})
	}
}

// TestV5SubscriptionRefusedNamesFilter: a refused MQTT 5 subscription names
// the filter and the reason code.
func TestV5SubscriptionRefusedNamesFilter(t *testing.T) {
	b := newTestBroker(t, false)
	b.obs.mu.Lock()
	b.obs.denySub["secret/#"] = true
	b.obs.mu.Unlock()
	in, err := newInput(mustParse(t, fmt.Sprintf("protocol_version: \"5\"\nurls: [%s]\ntopic_mappings: [{mqtt_topic: a/#, danube_topic: /a/b}, {mqtt_topic: secret/#, danube_topic: /a/s}]\n", b.url())), service.MockResources())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = in.Close(context.Background()) })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = in.Connect(ctx)
	if err == nil || !strings.Contains(err.Error(), `refused the subscription to filter ["secret/#" (SUBACK 0x87 not authorized`) {
		t.Fatalf("Connect: %v", err)
	}
}

// TestV5ServerDisconnectLogged: a DISCONNECT from the broker is logged with
// its reason code and reason string, and the input reconnects.
func TestV5ServerDisconnectLogged(t *testing.T) {
	s := newFakeServer(t, func(n int, conn net.Conn, s *fakeServer) {
		if !acceptAndSubscribe(conn) {
			return
		}
		if n == 1 {
			_, _ = (&packets.Disconnect{ReasonCode: 0x8E, Properties: &packets.Properties{ReasonString: "another bridge took client_id fake"}}).WriteTo(conn)
			return
		}
		s.readAcks(conn)
	})
	logs := &syncbuf.Buffer{}
	ts := startStreamWith(t, fmt.Sprintf(v5Conf, s.url()), func(context.Context, *service.Message) error { return nil }, func(_ *service.Environment, b *service.StreamBuilder) {
		b.SetLogger(slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo})))
	})
	ts.waitConnected(t)
	want := `reason code 0x8e (Session taken over): \"another bridge took client_id fake\"`
	waitFor(t, 10*time.Second, "the DISCONNECT logged and a reconnect", func() bool {
		return strings.Contains(logs.String(), want) && ts.metrics.counter(metricReconnects) >= 1
	})
}

// TestV5SharedSubscriptionAndQoS2: two inputs in one $share group get every
// message once between them; QoS 2 completes (PUBREC after delivery, then
// PUBREL/PUBCOMP) and the broker's in-flight window drains.
func TestV5SharedSubscriptionAndQoS2(t *testing.T) {
	b := newTestBroker(t, false)
	id := runID(t)
	rec := newReceived()
	for i := range 2 {
		ts := startStream(t, fmt.Sprintf(`
protocol_version: "5"
urls: [ %s ]
client_id: %s-%d
topic_mappings:
  - mqtt_topic: $share/g/%s/#
    danube_topic: /t/x
    qos: 2
`, b.url(), id, i, id), func(_ context.Context, m *service.Message) error { rec.add(m); return nil })
		ts.waitConnected(t)
	}
	pub := mqtttest.NewPublisher5(t, b.url(), id+"-pub")
	all := ids("m", 40)
	for _, p := range all {
		pub.Publish(t, &paho5.Publish{Topic: id + "/a", QoS: 2, Payload: []byte(p)})
	}
	waitFor(t, 20*time.Second, "every message", func() bool { return rec.unique() == len(all) })
	waitFor(t, 10*time.Second, "in-flight windows to drain", func() bool {
		return b.clientInflight(id+"-0") == 0 && b.clientInflight(id+"-1") == 0
	})
	if d := rec.duplicates(); d != 0 {
		t.Fatalf("%d duplicates across the share group", d)
	}
	if b.obs.totalAcks(id+"-0")+b.obs.totalAcks(id+"-1") < len(all) {
		t.Fatalf("PUBRECs: %d + %d, want %d", b.obs.totalAcks(id+"-0"), b.obs.totalAcks(id+"-1"), len(all))
	}
	for _, m := range rec.msgs {
		if q, _ := m[0].MetaGetMut("mqtt_qos"); q != 2 {
			t.Fatalf("mqtt_qos %v, want 2", q)
		}
	}
}
