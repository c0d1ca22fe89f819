package mqtt

import (
	"context"

	"github.com/benthos-danube/benthos-danube/internal/mqttconn"
)

// The input runs one data path (queue, natural batches, ordered acks,
// retries, mappings, metadata, dead-letter marking) over two transports:
// MQTT 3.1.1 on Eclipse Paho (transport3.go) and MQTT 5 on Eclipse Paho's
// paho.golang (transport5.go). A transport only connects, subscribes,
// delivers each PUBLISH as a message and sends the acknowledgement the data
// path releases.

// message is one received PUBLISH, whatever the protocol. Its method set is
// the one of paho.mqtt.golang's Message, which therefore is one.
type message interface {
	Topic() string // the real topic (a topic alias resolved)
	Payload() []byte
	Qos() byte
	Retained() bool
	Duplicate() bool
	MessageID() uint16
	// Ack sends the PUBACK (QoS 1) or PUBREC (QoS 2) on the connection the
	// message arrived on; it does nothing when that connection is gone (a
	// persistent session redelivers the message) and when repeated.
	Ack()
}

// withProperties is a message that carries MQTT 5 PUBLISH properties.
type withProperties interface {
	properties() *properties
}

// propertiesOf returns the MQTT 5 properties of m, nil for MQTT 3.1.1.
func propertiesOf(m message) *properties {
	if t, ok := m.(*tracked); ok {
		m = t.message
	}
	if p, ok := m.(withProperties); ok {
		return p.properties()
	}
	return nil
}

// subscription is one filter to subscribe to.
type subscription struct {
	filter string
	qos    byte
}

// subResult is the broker's answer for one filter: the SUBACK reason code
// (the granted QoS, or 0x80 and up for a refusal) and, on MQTT 5, the
// SUBACK's reason string.
type subResult struct {
	code   byte
	reason string
}

// session is one established MQTT connection of a transport. Its methods are
// called by Connect and Close, never concurrently.
type session interface {
	// subscribe sends one SUBSCRIBE for subs and returns the answer for each
	// filter, in the order of subs.
	subscribe(ctx context.Context, subs []subscription) ([]subResult, error)
	// disconnect sends DISCONNECT and closes the connection; graceful waits
	// a moment for what is being written.
	disconnect(graceful bool)
}

// dial connects one fresh transport session for c, whose lost channel the
// transport closes when the connection ends. It reports whether the broker
// resumed an existing session (CONNACK session present).
func (in *input) dial(ctx context.Context, c *connection) (session, bool, error) {
	switch in.cfg.protocol {
	case protocol5:
		return in.dial5(ctx, c)
	default:
		return in.dial3(ctx, c)
	}
}

// Protocol versions of protocol_version (see mqttconn.CheckProtocol).
const (
	protocol311 = mqttconn.Protocol311
	protocol5   = mqttconn.Protocol5
)

func checkProtocol(v string) error { return mqttconn.CheckProtocol(v) }

// subackReason names a SUBACK reason code (MQTT 5 §3.9.3; 0x80 is also
// MQTT 3.1.1's only failure code).
func subackReason(code byte) string {
	switch code {
	case 0x80:
		return "unspecified error"
	case 0x83:
		return "implementation specific error"
	case 0x87:
		return "not authorized"
	case 0x8F:
		return "topic filter invalid"
	case 0x91:
		return "packet identifier in use"
	case 0x97:
		return "quota exceeded"
	case 0x9E:
		return "shared subscriptions not supported"
	case 0xA1:
		return "subscription identifiers not supported"
	case 0xA2:
		return "wildcard subscriptions not supported"
	}
	return "refused"
}

// reasonSuffix formats a broker's reason string, if any.
func reasonSuffix(reason string) string { return mqttconn.ReasonSuffix(reason) }
