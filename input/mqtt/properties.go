package mqtt

import (
	"encoding/base64"
	"fmt"
	"strconv"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/benthos-danube/benthos-danube/internal/deadletter"
	"github.com/benthos-danube/benthos-danube/internal/mqttmeta"
)

// setProperties sets the metadata of the MQTT 5 properties p of a message
// that arrived at (unix nanoseconds), for its delivery to the pipeline at
// now (see mqttmeta for the keys and value formats).
//
// Message expiry: the broker sends the interval left when it forwarded the
// message; the input subtracts the time the message waited in the bridge
// (for the pipeline, or in retry after a nack) and sets what is left,
// rounded up to whole seconds. A message whose interval ran out in the
// bridge is not forwarded to its topic: it is marked for the dead-letter
// destination with dead_letter_reason: expired, counted in
// mqtt_input_expired, and acknowledged to the broker once the output wrote
// it there. It reports whether the message expired.
func setProperties(msg *service.Message, p *properties, at, now int64) (expired bool) {
	if p == nil {
		return false
	}
	if p.ContentType != "" {
		msg.MetaSetMut(mqttmeta.ContentType, p.ContentType)
	}
	if p.ResponseTopic != "" {
		msg.MetaSetMut(mqttmeta.ResponseTopic, p.ResponseTopic)
	}
	if p.CorrelationData != nil {
		msg.MetaSetMut(mqttmeta.CorrelationData, base64.StdEncoding.EncodeToString(p.CorrelationData))
	}
	if p.PayloadFormat != nil {
		msg.MetaSetMut(mqttmeta.PayloadFormat, int(*p.PayloadFormat))
	}
	if p.SubscriptionIdentifier != nil {
		msg.MetaSetMut(mqttmeta.SubscriptionIDs, strconv.Itoa(*p.SubscriptionIdentifier))
	}
	for _, u := range p.User {
		msg.MetaSetMut(mqttmeta.UserKey(u.Key), u.Value) // a repeated key keeps the last value
	}
	if p.MessageExpiry != nil {
		left := time.Duration(*p.MessageExpiry)*time.Second - time.Duration(now-at)
		if left <= 0 {
			msg.MetaSetMut(mqttmeta.MessageExpiry, 0)
			return true
		}
		msg.MetaSetMut(mqttmeta.MessageExpiry, int((left+time.Second-1)/time.Second))
	}
	return false
}

// markExpired marks msg for the dead-letter destination: its message
// expiry ran out in the bridge. A message already marked (no mapping, no
// valid topic) keeps its first reason.
func (in *input) markExpired(msg *service.Message, m message, p *properties, at, now int64) {
	if _, ok := msg.MetaGetMut(deadletter.Reason); ok {
		return
	}
	topic, _ := msg.MetaGetMut(mqttmeta.DanubeTopic)
	ts, _ := topic.(string)
	mapping := deadletter.MappingNone
	for _, mp := range in.cfg.mappings {
		if mp.filter.Match(m.Topic()) {
			mapping = mp.filter.String()
			break
		}
	}
	err := fmt.Errorf("mqtt input: topic %q: the MQTT 5 message expiry of %ds ran out while the message waited %v in the bridge", m.Topic(), *p.MessageExpiry, time.Duration(now-at).Round(time.Millisecond))
	msg.SetError(err)
	markDeadLetter(msg, deadletter.ReasonExpired, err, ts, mapping)
}
