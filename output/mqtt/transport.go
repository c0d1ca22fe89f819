package mqttout

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"time"
)

// The output talks to the broker through a transport: one connection of
// one protocol version. transport311 (paho.mqtt.golang) is MQTT 3.1.1; an
// MQTT 5 transport (paho.golang, shared with the input's v5 connection)
// implements the same interface and can report a broker's refusal in the
// PUBACK reason code as a *refusedError.

// publication is one PUBLISH.
type publication struct {
	topic    string
	qos      byte
	retained bool
	payload  []byte
	// props are the MQTT 5 properties from the message's metadata
	// (properties.go); nil on MQTT 3.1.1, which has no headers.
	props *properties5
}

// delivery completes when the broker acknowledged a publication (QoS 1:
// PUBACK, QoS 2: PUBCOMP, QoS 0: written) or it failed. paho.Token
// satisfies it.
type delivery interface {
	Done() <-chan struct{}
	Error() error
}

// transport is one live connection.
type transport interface {
	// publish hands p to the connection in call order and returns at once
	// (it may block while the client's outgoing queue is full).
	publish(p publication) delivery
	// lost is closed when the connection is gone.
	lost() <-chan struct{}
	// close disconnects; it waits at most quiesce for the DISCONNECT.
	close(quiesce time.Duration)
}

// connConfig is what a transport needs to connect.
type connConfig struct {
	urls           []string
	clientID       string
	user, password string
	tls            *tls.Config
	keepalive      time.Duration
	connectTimeout time.Duration
	writeTimeout   time.Duration
	onLost         func(error)
}

// dialFunc connects a new transport.
type dialFunc func(ctx context.Context, c connConfig) (transport, error)

// refusedError is a broker's refusal of one message (an MQTT 5 PUBACK or
// PUBREC reason code of 0x80 or more): permanent for that message.
type refusedError struct {
	code   byte
	reason string
}

func (e *refusedError) Error() string {
	return fmt.Sprintf("the broker refused the message: reason code 0x%02x (%s)", e.code, e.reason)
}

// errConnLost is the error of a delivery whose connection was lost;
// errNotSent (which wraps errConnLost) of one whose connection was gone
// before it was written.
var (
	errConnLost = errors.New("the MQTT connection was lost before the broker acknowledged the message")
	errNotSent  = fmt.Errorf("%w (it was not sent: not connected)", errConnLost)
)
