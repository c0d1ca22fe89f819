package mqttconn

import (
	"errors"
	"fmt"
	"strings"

	"github.com/eclipse/paho.golang/packets"
	paho5 "github.com/eclipse/paho.golang/paho"
)

// ConnackError explains a refused MQTT 5 connection (a CONNACK reason code
// of 0x80 or more), for the mqtt input and output alike.
func ConnackError(ca *paho5.Connack) error {
	reason := ""
	if ca.Properties != nil {
		reason = ca.Properties.ReasonString
	}
	msg := fmt.Sprintf("the broker refused the connection: CONNACK reason code 0x%02x (%s)%s", ca.ReasonCode, (&packets.Connack{ReasonCode: ca.ReasonCode}).Reason(), ReasonSuffix(reason))
	switch ca.ReasonCode {
	case 0x84:
		msg += fmt.Sprintf("; the broker does not accept MQTT 5: set %s: %s", FieldProtocol, Protocol311)
	case 0x85:
		msg += "; check client_id"
	case 0x86, 0x87:
		msg += "; check user and password"
	}
	return errors.New(msg)
}

// NoConnackError explains an MQTT 5 CONNECT that got no MQTT 5 CONNACK.
func NoConnackError(err error) error {
	return fmt.Errorf("%w (no MQTT 5 CONNACK: a broker that speaks only MQTT 3.1.1 may close the connection or answer in 3.1.1 form; set %s: %s for it)", err, FieldProtocol, Protocol311)
}

// DisconnectReason names a DISCONNECT reason code.
func DisconnectReason(code byte) string {
	r := (&packets.Disconnect{ReasonCode: code}).Reason()
	if i := strings.Index(r, " - "); i > 0 {
		return r[:i]
	}
	if r == "" {
		return "unknown"
	}
	return r
}

// ReasonSuffix formats a broker's reason string, if any.
func ReasonSuffix(reason string) string {
	if reason == "" {
		return ""
	}
	return fmt.Sprintf(": %q", reason)
}
