package mqtt

import (
	"fmt"
	"sync/atomic"

	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/benthos-danube/benthos-danube/input/mqtt/topicmatch"
)

// Retained replays.
//
// The input subscribes every mapping on every connect, because the broker may
// have lost the session. MQTT 3.1.1 makes the broker answer each SUBSCRIBE,
// also one that replaces an existing subscription, with the current retained
// message of every matching topic ([MQTT-3.8.4-3]), sent with RETAIN=1
// ([MQTT-3.3.1-8]); a message sent because it matches an established
// subscription carries RETAIN=0 ([MQTT-3.3.1-9]). On a resumed session
// (CONNACK session present) those replays are messages the session already
// had: each was delivered (or queued for delivery) when it was published, or
// replayed when the subscription was first made.
//
// Mosquitto 2.0 and mochi 2.7 behave that way (TestBrokerRetainedFlags):
// a retained message published while the bridge is offline is queued for the
// session with RETAIN=0 and arrives as such before the replay, also after a
// broker restart with persistence; only the replay has RETAIN=1.
//
// The broker replays a retained message once per matching subscription
// (Mosquitto and mochi both do), so a topic matching several mappings gets
// several copies, also on a new session; a message published to it later is
// delivered once.
//
// With retained_on_resume: skip the input acknowledges those replays to the
// broker without forwarding them. A PUBLISH is taken for a replay when all of
// these hold:
//
//   - it arrived after the input sent its SUBSCRIBE (earlier ones cannot
//     answer it);
//   - RETAIN=1 and DUP=0: a redelivery (DUP=1) of a message the session sent
//     on an earlier connection is forwarded, because the pipeline may never
//     have delivered it, and that includes replays a new session got;
//   - QoS ≥ 1: the broker owes a session every QoS ≥ 1 message matching its
//     subscriptions, so the replay is redundant; at QoS 0 it does not (it
//     need not queue QoS 0 messages for an offline session, and Mosquitto
//     does not by default), so the replay may be the only copy of a retained
//     message published while the bridge was down, and is forwarded;
//   - on a resumed session (CONNACK session present): the topic has had no
//     more such copies on this connection than there are QoS ≥ 1 mapping
//     filters matching it. A further copy can only follow a replay the broker had
//     queued on an earlier connection but never sent (Mosquitto keeps those
//     beyond its in-flight window and sends them with DUP=0), which therefore
//     arrives before the replay of this connection's SUBSCRIBE: the first
//     copies are skipped, the later one is forwarded, and the retained message
//     reaches the pipeline once (TestRetainedQueuedReplayForwardedAfterRestart);
//   - on a new session: it is not the first copy of the topic, and no later
//     than the copy for the last matching filter. The first copy is forwarded.
//
// What it cannot tell: a mapping added to the configuration of a resumed
// session subscribes a filter the session never had, and the broker's current
// retained messages for it are skipped as replays too. Start once with
// retained_on_resume: forward after adding a mapping whose retained messages
// matter.
const (
	retainedSkip    = "skip"
	retainedForward = "forward"
)

// checkRetainedOnResume checks the value of retained_on_resume.
func checkRetainedOnResume(v string) error {
	switch v {
	case retainedSkip, retainedForward:
		return nil
	}
	return fmt.Errorf("%s: unknown value %q (supported: %s, %s)", fieldRetainedOnResume, v, retainedSkip, retainedForward)
}

// replayFilter recognises the retained replays of one connection. It is
// created before the SUBSCRIBE is sent and then used only from the
// connection's router goroutine (input.handle), so it needs no lock.
type replayFilter struct {
	resumed bool                 // CONNACK session present
	filters []*topicmatch.Filter // of the QoS ≥ 1 mappings: only they get QoS ≥ 1 copies
	copies  map[string]int       // topic -> RETAIN=1, DUP=0, QoS ≥ 1 PUBLISH packets seen
	skipped int
}

func newReplayFilter(mappings []*mapping, resumed bool) *replayFilter {
	f := &replayFilter{resumed: resumed, copies: map[string]int{}}
	for _, mp := range mappings {
		if mp.qos > 0 {
			f.filters = append(f.filters, mp.filter)
		}
	}
	return f
}

// replay reports whether m is a replay of this connection's SUBSCRIBE that
// the session already had, on an earlier connection or as an earlier copy.
func (f *replayFilter) replay(m message) bool {
	if !m.Retained() || m.Duplicate() || m.Qos() == 0 {
		return false
	}
	topic := m.Topic()
	subs := 0
	for _, flt := range f.filters {
		if flt.Match(topic) {
			subs++
		}
	}
	if subs == 0 {
		return false // not an answer to our SUBSCRIBE
	}
	f.copies[topic]++
	n := f.copies[topic]
	if n > subs || (!f.resumed && n == 1) {
		return false
	}
	f.skipped++
	return true
}

// replayCounter counts skipped replays: the metric, and a mirror for tests.
type replayCounter struct {
	metric *service.MetricCounter
	n      atomic.Int64
}

func newReplayCounter(m *service.Metrics) *replayCounter {
	return &replayCounter{metric: m.NewCounter("mqtt_input_retained_skipped")}
}

// watchReplays makes c skip retained replays from now on, when
// retained_on_resume is skip. It must be called after the CONNACK and before
// the SUBSCRIBE.
//
// Over MQTT 5 a resumed session gets no replays: the input subscribes with
// Retain Handling 1 (send retained messages only for a subscription the
// session did not have), so there is nothing to skip, and a RETAIN=1 copy
// that arrives is one the broker had queued and never sent, to be forwarded.
// A new session still gets one copy per matching subscription, and the
// filter skips the further ones as for MQTT 3.1.1.
func (in *input) watchReplays(c *connection, sessionPresent bool) {
	if in.cfg.protocol == protocol5 && sessionPresent {
		return
	}
	if in.cfg.retainedOnResume == retainedSkip {
		c.replays.Store(newReplayFilter(in.cfg.mappings, sessionPresent))
	}
}

// skipReplay acknowledges m to the broker, without forwarding it, when it is
// a retained replay the resumed session already had. It runs on the router
// goroutine. A QoS 1/2 message tracked for ordered acks is completed at once,
// so its PUBACK/PUBREC goes out as soon as every earlier message of the
// connection was acknowledged, and it never holds the window.
func (in *input) skipReplay(c *connection, m message) bool {
	f := c.replays.Load()
	if f == nil || !f.replay(m) {
		return false
	}
	if r, ok := m.(*tracked); ok {
		r.rel.complete(r) // counted in mqtt_input_acks_sent when sent
	} else {
		m.Ack()
		in.mAcks.Incr(1)
	}
	in.skipped.metric.Incr(1)
	in.skipped.n.Add(1)
	switch {
	case f.skipped > 1:
		in.log.Debugf("Skipping a retained replay on topic %q", m.Topic())
	case f.resumed:
		in.log.Infof("Session resumed: not forwarding the retained messages the broker re-sends for the re-subscription, which the session already had (retained_on_resume: %s; counted in mqtt_input_retained_skipped), first on topic %q", retainedSkip, m.Topic())
	default:
		in.log.Infof("Not forwarding the further copies of a retained message the broker sends once per matching subscription (retained_on_resume: %s; counted in mqtt_input_retained_skipped), first on topic %q", retainedSkip, m.Topic())
	}
	return true
}
