package mqtt

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/benthos-danube/benthos-danube/input/mqtt/topicmatch"
)

// retainedBroker is a broker the retained-message tests run against.
type retainedBroker struct {
	name    string
	url     string
	restart func() // nil: the broker cannot be restarted by the test
}

// retainedBrokers returns mochi (sessions and retained messages kept across
// restarts by its bolt storage hook), a private Mosquitto with persistence
// when a mosquitto binary is on PATH, and MQTT_TEST_URL when set (never
// restarted: it is shared).
func retainedBrokers(t *testing.T) []retainedBroker {
	t.Helper()
	mo := newTestBroker(t, true)
	out := []retainedBroker{{name: "mochi", url: mo.url(), restart: func() {
		mo.stop()
		time.Sleep(200 * time.Millisecond)
		mo.start()
	}}}
	if mq := newMosquittoIfAvailable(t); mq != nil {
		out = append(out, retainedBroker{name: "mosquitto", url: mq.url(), restart: func() {
			mq.stop()
			mq.start()
		}})
	}
	if u := externalBrokerURL(t); u != "" {
		out = append(out, retainedBroker{name: "external", url: u})
	}
	return out
}

// newMosquittoIfAvailable is newMosquitto, or nil (instead of skipping the
// test) when there is no mosquitto binary outside CI.
func newMosquittoIfAvailable(t *testing.T) *mosquittoBroker {
	t.Helper()
	if _, err := exec.LookPath("mosquitto"); err != nil && os.Getenv("MQTT_TEST_URL") == "" {
		t.Logf("no mosquitto binary on PATH, testing without a private Mosquitto: %v", err)
		return nil
	}
	return newMosquitto(t)
}

// retainedPub publishes retained messages and clears them again when the
// test ends, so a shared broker keeps no retained state of ours.
type retainedPub struct {
	*publisher
	topics map[string]bool
}

func newRetainedPub(t *testing.T, url, clientID string) *retainedPub {
	t.Helper()
	p := &retainedPub{publisher: newPublisher(t, url, clientID, true), topics: map[string]bool{}}
	t.Cleanup(func() {
		for topic := range p.topics {
			p.c.Publish(topic, 1, true, "").WaitTimeout(5 * time.Second)
		}
	})
	return p
}

func (p *retainedPub) retain(t *testing.T, topic, payload string) {
	t.Helper()
	p.topics[topic] = true
	tok := p.c.Publish(topic, 1, true, payload)
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("publishing retained %s: %v", topic, tok.Error())
	}
}

// recordingConsumer records every delivery by payload.
func recordingConsumer(rec *received) func(context.Context, *service.Message) error {
	return func(_ context.Context, m *service.Message) error {
		rec.add(m)
		return nil
	}
}

// retainedConf is a bridge on filter <prefix>/# at qos.
func retainedConf(url, clientID, prefix string, qos int, clean bool, policy string) string {
	conf := fmt.Sprintf(`
urls: [ %s ]
client_id: %s
clean_session: %v
topic_mappings:
  - mqtt_topic: %s/#
    danube_topic: /t/r
    qos: %d
`, url, clientID, clean, prefix, qos)
	if policy != "" {
		conf += "retained_on_resume: " + policy + "\n"
	}
	return conf
}

// syncMarker publishes a plain message after everything else and waits until
// the bridge delivered it: the broker sends a client's messages in order, so
// every replay of the SUBSCRIBE has been handled (skipped or delivered) by
// then.
func syncMarker(t *testing.T, pub *publisher, topic string, qos byte, rec *received) {
	t.Helper()
	marker := fmt.Sprintf("marker-%d", time.Now().UnixNano())
	pub.publishWait(t, topic, qos, marker)
	waitFor(t, 20*time.Second, "the marker "+marker, func() bool { return len(rec.get(marker)) > 0 })
}

func wantCopies(t *testing.T, rec *received, want map[string]int) {
	t.Helper()
	for payload, n := range want {
		if got := len(rec.get(payload)); got != n {
			t.Errorf("%q delivered %d times, want %d", payload, got, n)
		}
	}
}

func wantRetainedFlag(t *testing.T, rec *received, payload string, want bool) {
	t.Helper()
	for _, m := range rec.get(payload) {
		if got := metaAny(t, m, "mqtt_retained"); got != want {
			t.Errorf("%q: mqtt_retained %v, want %v", payload, got, want)
		}
	}
}

// TestRetainedReplaySkippedOnResume: with a persistent session, a retained
// message reaches the pipeline once across bridge restarts and a broker
// restart, however it was published: before the session existed (the new
// session gets it, RETAIN=1), while the bridge was up (RETAIN=0), or while
// the bridge was down (the session queues it with RETAIN=0, also across a
// broker restart with persistence). The broker re-sends every one of them
// with RETAIN=1 on each re-subscription; those replays are acknowledged and
// counted, not forwarded.
func TestRetainedReplaySkippedOnResume(t *testing.T) {
	for _, bc := range retainedBrokers(t) {
		t.Run(bc.name, func(t *testing.T) {
			id := runID(t)
			pub := newRetainedPub(t, bc.url, id+"-pub")
			rec := newReceived()
			conf := retainedConf(bc.url, id, id, 1, false, "")
			start := func() *testStream {
				ts := startStream(t, conf, recordingConsumer(rec))
				ts.waitConnected(t)
				return ts
			}

			// (d) a new session gets the retained message published before it.
			pub.retain(t, id+"/a", "before-session")
			ts := start()
			waitFor(t, 15*time.Second, "the retained message of the new session", func() bool { return rec.unique() == 1 })
			// (a) published while the bridge is up.
			pub.retain(t, id+"/b", "online")
			waitFor(t, 15*time.Second, "the message published online", func() bool { return rec.unique() == 2 })
			if n := ts.in.skipped.n.Load(); n != 0 {
				t.Errorf("a new session skipped %d retained messages", n)
			}
			ts.stop(t, 10*time.Second)

			// (b) published while the bridge is down.
			pub.retain(t, id+"/c", "offline")
			pub.publishWait(t, id+"/d", 1, "offline-plain")
			ts = start()
			waitFor(t, 15*time.Second, "the messages published while down", func() bool { return rec.unique() == 4 })
			waitFor(t, 15*time.Second, "3 replays skipped", func() bool { return ts.in.skipped.n.Load() == 3 })
			syncMarker(t, pub.publisher, id+"/m", 1, rec)
			wantCopies(t, rec, map[string]int{"before-session": 1, "online": 1, "offline": 1, "offline-plain": 1})
			wantRetainedFlag(t, rec, "before-session", true)
			wantRetainedFlag(t, rec, "online", false)
			wantRetainedFlag(t, rec, "offline", false)
			ts.stop(t, 10*time.Second)
			if bc.restart == nil {
				return
			}

			// (c) published while the bridge is down, then the broker restarts.
			pub.retain(t, id+"/e", "offline-broker-restart")
			bc.restart()
			ts = start()
			waitFor(t, 20*time.Second, "the message published before the broker restart", func() bool {
				return len(rec.get("offline-broker-restart")) > 0
			})
			waitFor(t, 15*time.Second, "4 replays skipped", func() bool { return ts.in.skipped.n.Load() == 4 })
			syncMarker(t, pub.publisher, id+"/m", 1, rec)
			wantCopies(t, rec, map[string]int{"before-session": 1, "online": 1, "offline": 1, "offline-plain": 1, "offline-broker-restart": 1})
			wantRetainedFlag(t, rec, "offline-broker-restart", false)
			if rec.duplicates() != 0 {
				t.Errorf("%d duplicates", rec.duplicates())
			}
		})
	}
}

// TestRetainedQueuedReplayForwardedAfterRestart: a new session gets 50
// retained messages while the output is stalled, and the bridge stops before
// acknowledging any. Mosquitto sends 20 of them (its in-flight window) and
// keeps 30 queued; on the next start it resends the 20 with DUP=1, sends the
// 30 with RETAIN=1 and DUP=0, and then replays all 50 for the re-SUBSCRIBE.
// Each retained message must reach the pipeline, exactly once: skipping every
// RETAIN=1 DUP=0 message would lose the 30.
func TestRetainedQueuedReplayForwardedAfterRestart(t *testing.T) {
	for _, bc := range retainedBrokers(t) {
		t.Run(bc.name, func(t *testing.T) {
			id := runID(t)
			const n = 50
			pub := newRetainedPub(t, bc.url, id+"-pub")
			all := ids("state", n)
			for i, p := range all {
				pub.retain(t, fmt.Sprintf("%s/dev%02d", id, i), p)
			}
			conf := retainedConf(bc.url, id, id, 1, false, "")
			release := make(chan struct{})
			stalled := startStream(t, conf, func(ctx context.Context, _ *service.Message) error {
				select {
				case <-release:
				case <-ctx.Done():
				}
				return errors.New("output stalled")
			})
			stalled.waitConnected(t)
			waitFor(t, 15*time.Second, "20 replays held by the stalled pipeline", func() bool {
				return stalled.in.unacked.Load()+int64(stalled.in.q.len()) >= 20
			})
			time.Sleep(200 * time.Millisecond)
			stalled.stop(t, time.Millisecond)
			close(release)

			rec := newReceived()
			ts := startStream(t, conf, recordingConsumer(rec))
			ts.waitConnected(t)
			waitFor(t, 20*time.Second, "every retained message", func() bool { return rec.unique() == n })
			syncMarker(t, pub.publisher, id+"/marker", 1, rec)
			if missing, s := rec.missing(all); missing > 0 {
				t.Fatalf("%d retained messages never delivered: %v", missing, s)
			}
			var dups []string
			for _, p := range all {
				if c := len(rec.get(p)); c != 1 {
					dups = append(dups, fmt.Sprintf("%s×%d", p, c))
				}
			}
			if len(dups) > 0 {
				t.Errorf("delivered more than once: %s", strings.Join(dups, " "))
			}
			t.Logf("%d delivered, %d replays skipped", rec.total-1, ts.in.skipped.n.Load())
		})
	}
}

// TestRetainedOnRestartCases covers what is forwarded on the next start in
// the other configurations: a new session (another client id) gets the
// retained messages again, a clean session on every start, and
// retained_on_resume: forward forwards the replays of a resumed session. A
// QoS 0 mapping forwards its replays: the broker does not queue QoS 0
// messages for an offline session, so the replay is the only copy of a
// retained message published while the bridge was down.
func TestRetainedOnRestartCases(t *testing.T) {
	cases := []struct {
		name      string
		qos       int
		clean     bool
		policy    string
		newID     bool // restart with another client id: a new session
		wantAgain int  // copies of the retained message published before the first start, after the restart
		// copies of the one published while the bridge was down: a resumed
		// QoS 1 session has it queued (RETAIN=0) and replayed (RETAIN=1)
		wantOffline int
		wantSkipped int64
	}{
		{name: "resumed session skips", qos: 1, policy: "skip", wantAgain: 1, wantOffline: 1, wantSkipped: 2},
		{name: "new session forwards", qos: 1, newID: true, wantAgain: 2, wantOffline: 1},
		{name: "clean session forwards", qos: 1, clean: true, wantAgain: 2, wantOffline: 1},
		{name: "forward policy", qos: 1, policy: "forward", wantAgain: 2, wantOffline: 2},
		{name: "QoS 0 mapping forwards", qos: 0, wantAgain: 2, wantOffline: 1},
	}
	for _, bc := range retainedBrokers(t) {
		t.Run(bc.name, func(t *testing.T) {
			for _, c := range cases {
				t.Run(c.name, func(t *testing.T) {
					id := runID(t)
					pub := newRetainedPub(t, bc.url, id+"-pub")
					rec := newReceived()
					pub.retain(t, id+"/a", "before")
					ts := startStream(t, retainedConf(bc.url, id, id, c.qos, c.clean, c.policy), recordingConsumer(rec))
					ts.waitConnected(t)
					waitFor(t, 15*time.Second, "the retained message", func() bool { return rec.unique() == 1 })
					ts.stop(t, 10*time.Second)

					pub.retain(t, id+"/b", "offline")
					clientID := id
					if c.newID {
						clientID = id + "-2"
					}
					ts = startStream(t, retainedConf(bc.url, clientID, id, c.qos, c.clean, c.policy), recordingConsumer(rec))
					ts.waitConnected(t)
					waitFor(t, 15*time.Second, "the deliveries and skips expected after the restart", func() bool {
						return len(rec.get("before")) >= c.wantAgain && len(rec.get("offline")) >= c.wantOffline && ts.in.skipped.n.Load() >= c.wantSkipped
					})
					syncMarker(t, pub.publisher, id+"/m", byte(c.qos), rec) // then nothing more arrives
					wantCopies(t, rec, map[string]int{"before": c.wantAgain, "offline": c.wantOffline})
					if got := ts.in.skipped.n.Load(); got != c.wantSkipped {
						t.Errorf("skipped %d replays, want %d", got, c.wantSkipped)
					}
				})
			}
		})
	}
}

// TestRetainedReplayOverlappingFilters: a topic matching two mappings is
// replayed once per matching subscription (Mosquitto and mochi). A new
// session forwards the first copy; a resumed one skips both.
func TestRetainedReplayOverlappingFilters(t *testing.T) {
	for _, bc := range retainedBrokers(t) {
		t.Run(bc.name, func(t *testing.T) {
			id := runID(t)
			pub := newRetainedPub(t, bc.url, id+"-pub")
			rec := newReceived()
			pub.retain(t, id+"/o/x", "overlap")
			conf := fmt.Sprintf(`
urls: [ %s ]
client_id: %s
clean_session: false
topic_mappings:
  - mqtt_topic: %[3]s/o/#
    danube_topic: /t/o
  - mqtt_topic: %[3]s/+/x
    danube_topic: /t/x
`, bc.url, id, id)
			ts := startStream(t, conf, recordingConsumer(rec))
			ts.waitConnected(t)
			waitFor(t, 15*time.Second, "the retained message", func() bool { return len(rec.get("overlap")) > 0 })
			waitFor(t, 15*time.Second, "the second copy skipped", func() bool { return ts.in.skipped.n.Load() == 1 })
			syncMarker(t, pub.publisher, id+"/o/m", 1, rec)
			pub.retain(t, id+"/o/x", "overlap-online")
			syncMarker(t, pub.publisher, id+"/o/m", 1, rec)
			wantCopies(t, rec, map[string]int{"overlap": 1, "overlap-online": 1})
			ts.stop(t, 10*time.Second)

			ts = startStream(t, conf, recordingConsumer(rec))
			ts.waitConnected(t)
			waitFor(t, 15*time.Second, "both replays skipped", func() bool { return ts.in.skipped.n.Load() == 2 })
			syncMarker(t, pub.publisher, id+"/o/m", 1, rec)
			wantCopies(t, rec, map[string]int{"overlap": 1, "overlap-online": 1})
		})
	}
}

// pubMsg is a received PUBLISH as the replay filter sees it.
type pubMsg struct {
	paho.Message
	topic         string
	qos           byte
	retained, dup bool
}

func (m pubMsg) Topic() string   { return m.topic }
func (m pubMsg) Qos() byte       { return m.qos }
func (m pubMsg) Retained() bool  { return m.retained }
func (m pubMsg) Duplicate() bool { return m.dup }

// TestReplayFilter: which PUBLISH packets are taken for replays the session
// already had, in arrival order, with the QoS 1 mappings a/# and +/x (a/x
// matches both) and the QoS 0 mapping +/y.
func TestReplayFilter(t *testing.T) {
	r := func(topic string) pubMsg { return pubMsg{topic: topic, qos: 1, retained: true} }
	cases := []struct {
		name    string
		resumed bool
		msgs    []pubMsg
		want    []bool
	}{
		{"resumed: a replay per retained topic", true, []pubMsg{r("a/1"), r("a/2"), r("b/x")}, []bool{true, true, true}},
		{"resumed: queued on an earlier connection, then the replay", true, []pubMsg{r("a/1"), r("a/1")}, []bool{true, false}},
		{"resumed: one replay per matching subscription", true, []pubMsg{r("a/x"), r("a/x"), r("a/x")}, []bool{true, true, false}},
		{"resumed: RETAIN=0, published to an established subscription", true, []pubMsg{{topic: "a/1", qos: 1}}, []bool{false}},
		{"resumed: DUP=1, a redelivery maybe never delivered", true, []pubMsg{{topic: "a/1", qos: 1, retained: true, dup: true}, r("a/1")}, []bool{false, true}},
		{"resumed: QoS 0, maybe the only copy", true, []pubMsg{{topic: "a/1", retained: true}}, []bool{false}},
		{"resumed: QoS 2", true, []pubMsg{{topic: "a/1", qos: 2, retained: true}}, []bool{true}},
		{"resumed: no mapping matches, not an answer to our SUBSCRIBE", true, []pubMsg{r("c/1")}, []bool{false}},
		{"resumed: a QoS 0 mapping gives no QoS 1 copy", true, []pubMsg{r("a/y"), r("a/y"), r("c/y")}, []bool{true, false, false}},
		{"new session: the first copy is new", false, []pubMsg{r("a/1"), r("a/2"), r("a/1")}, []bool{false, false, false}},
		{"new session: one copy per matching subscription", false, []pubMsg{r("a/x"), r("a/x"), r("a/x")}, []bool{false, true, false}},
		{"new session: QoS 0", false, []pubMsg{{topic: "a/x", retained: true}, {topic: "a/x", retained: true}}, []bool{false, false}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var maps []*mapping
			for s, qos := range map[string]byte{"a/#": 1, "+/x": 1, "+/y": 0} {
				f, err := topicmatch.Parse(s)
				if err != nil {
					t.Fatal(err)
				}
				maps = append(maps, &mapping{filter: f, qos: qos})
			}
			f := newReplayFilter(maps, c.resumed)
			for i, m := range c.msgs {
				if got := f.replay(m); got != c.want[i] {
					t.Errorf("message %d (%s retain %v dup %v qos %d): replay %v, want %v", i, m.topic, m.retained, m.dup, m.qos, got, c.want[i])
				}
			}
		})
	}
}

// TestSkippedReplayKeepsAckOrder: a skipped replay is completed at arrival
// through the connection's ackReleaser: its PUBACK waits for the earlier
// message, and does not hold back the later one.
func TestSkippedReplayKeepsAckOrder(t *testing.T) {
	in, err := newInput(mustParse(t, `
urls: [tcp://127.0.0.1:1]
client_id: c
clean_session: false
topic_mappings: [{mqtt_topic: "a/#", danube_topic: /a/b}]
`), service.MockResources())
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var acks []uint16
	msg := func(id uint16, retained bool) paho.Message {
		return &fakeMessage{Message: pubMsg{topic: fmt.Sprintf("a/%d", id), qos: 1, retained: retained}, id: id, mu: &mu, acks: &acks}
	}
	c := &connection{lost: make(chan struct{}), acks: newAckReleaser(nil)}
	in.watchReplays(c, true)
	in.handle(c, msg(1, false)) // queued for the pipeline
	in.handle(c, msg(2, true))  // skipped: acked after 1
	in.handle(c, msg(3, false)) // queued
	if got := in.q.len(); got != 2 {
		t.Fatalf("%d messages queued for the pipeline, want 2", got)
	}
	if len(acks) != 0 {
		t.Fatalf("acks %v sent before the first message was acknowledged", acks)
	}
	first, _ := in.q.pop()
	first.m.(*tracked).rel.complete(first.m.(*tracked))
	last, _ := in.q.pop()
	last.m.(*tracked).rel.complete(last.m.(*tracked))
	mu.Lock()
	defer mu.Unlock()
	if fmt.Sprint(acks) != "[1 2 3]" {
		t.Fatalf("acks %v, want [1 2 3]", acks)
	}
	if n := in.skipped.n.Load(); n != 1 {
		t.Fatalf("skipped %d, want 1", n)
	}
}

func mustParse(t *testing.T, yaml string) *service.ParsedConfig {
	t.Helper()
	conf, err := Spec().ParseYAML(yaml, nil)
	if err != nil {
		t.Fatal(err)
	}
	return conf
}

func TestRetainedOnResumeConfig(t *testing.T) {
	base := "urls: [tcp://x:1883]\nclient_id: c\nclean_session: false\ntopic_mappings: [{mqtt_topic: a, danube_topic: /a/b}]\n"
	for _, c := range []struct{ value, wantErr string }{
		{"", ""}, // default: skip
		{"retained_on_resume: skip\n", ""},
		{"retained_on_resume: forward\n", ""},
		{"retained_on_resume: drop\n", `retained_on_resume: unknown value "drop" (supported: skip, forward)`},
	} {
		t.Run(c.value, func(t *testing.T) {
			err := construct(t, base+c.value)
			switch {
			case c.wantErr == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case c.wantErr != "" && (err == nil || !strings.Contains(err.Error(), c.wantErr)):
				t.Fatalf("got %v, want %q", err, c.wantErr)
			}
		})
	}
	conf, err := parseConfig(mustParse(t, base))
	if err != nil {
		t.Fatal(err)
	}
	if conf.retainedOnResume != retainedSkip {
		t.Fatalf("default %q, want %q", conf.retainedOnResume, retainedSkip)
	}
}
