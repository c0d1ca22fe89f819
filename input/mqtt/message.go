package mqtt

import (
	"fmt"

	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/benthos-danube/benthos-danube/internal/deadletter"
)

// routing says how toMessage routed a message.
type routing int

const (
	routed           routing = iota // matched a mapping (or a plain filter)
	routePlaceholder                // matched, but the placeholders gave no valid Danube topic
	routeUnmatched                  // matched no mapping
)

// toMessage converts a paho message, applying the first matching mapping.
// It has no side effects, so a nacked message can be rebuilt from the MQTT
// message for every re-delivery; countArrival counts and logs it once.
func (in *input) toMessage(m message) (*service.Message, routing) {
	topic := m.Topic()
	msg := service.NewMessage(m.Payload())
	msg.MetaSetMut("mqtt_topic", topic)
	msg.MetaSetMut("mqtt_qos", int(m.Qos()))
	msg.MetaSetMut("mqtt_retained", m.Retained())
	msg.MetaSetMut("mqtt_duplicate", m.Duplicate())
	msg.MetaSetMut("mqtt_message_id", int(m.MessageID()))

	var caps []string
	for _, mp := range in.cfg.mappings {
		if mp.nCaps > 0 && len(caps) < mp.nCaps {
			caps = make([]string, mp.nCaps)
		}
		if !mp.filter.MatchCapture(topic, caps) {
			continue
		}
		if in.cfg.plain {
			msg.MetaSetMut("mqtt_filter", mp.filter.Subscription())
			return msg, routed
		}
		// No mqtt_filter here: danube_topic tells the mappings apart, and a
		// ninth metadata key would make Benthos grow the metadata map on
		// every message (BenchmarkMetadataKeys: about 0.6 µs for eight keys,
		// 1.5 µs for nine).
		msg.MetaSetMut("danube_partitions", mp.partitions)
		msg.MetaSetMut("danube_reliable_dispatch", mp.reliable)
		for _, a := range mp.attrs { // only when configured: each key costs
			msg.MetaSetMut(a.key, caps[a.cap])
		}
		dt, err := mp.tmpl.Expand(caps)
		if err != nil {
			err = fmt.Errorf("mqtt input: topic %q matched topic_mappings[%d] (%q) but gives no valid Danube topic: %w", topic, mp.index, mp.filter.String(), err)
			msg.SetError(err)
			markDeadLetter(msg, deadletter.ReasonInvalidTopic, err, mp.tmpl.Preview(caps), mp.filter.String())
			return msg, routePlaceholder
		}
		msg.MetaSetMut("danube_topic", dt)
		return msg, routed
	}
	if !in.cfg.plain {
		err := fmt.Errorf("mqtt input: topic %q matches no topic_mappings entry (a subscription kept by a persistent session from an earlier configuration?)", topic)
		msg.SetError(err)
		markDeadLetter(msg, deadletter.ReasonNoMapping, err, "", deadletter.MappingNone)
	}
	return msg, routeUnmatched
}

// markDeadLetter marks a message that cannot be routed for the dead-letter
// destination of the danube output. Only such messages carry these keys, so
// routed messages pay nothing for them.
func markDeadLetter(msg *service.Message, reason string, err error, topic, mapping string) {
	msg.MetaSetMut(deadletter.Reason, reason)
	msg.MetaSetMut(deadletter.Error, err.Error())
	msg.MetaSetMut(deadletter.Topic, topic)
	msg.MetaSetMut(deadletter.Mapping, mapping)
}

// countArrival updates the metrics and rate-limited warnings for a message
// delivered for the first time.
func (in *input) countArrival(m message, msg *service.Message, r routing) {
	if m.Duplicate() {
		in.mDup.Incr(1)
	}
	switch r {
	case routePlaceholder:
		in.mPlaceholder.Incr(1)
		in.warnPlaceholder.warn(in.log, "%v; marked for the dead-letter destination (dead_letter_reason: invalid_topic)", msg.GetError())
	case routeUnmatched:
		in.mUnmatched.Incr(1)
		if in.cfg.plain {
			in.warnUnmatched.warn(in.log, "received topic %q that matches none of the subscribed topics (a subscription kept by a persistent session?)", m.Topic())
		} else {
			in.warnUnmatched.warn(in.log, "%v; marked for the dead-letter destination (dead_letter_reason: no_mapping)", msg.GetError())
		}
	}
}
