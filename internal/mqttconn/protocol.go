package mqttconn

import "fmt"

// Protocol versions of the protocol_version field of the mqtt input and
// output.
const (
	Protocol311 = "3.1.1"
	Protocol5   = "5"
)

// FieldProtocol is the name of the protocol_version field.
const FieldProtocol = "protocol_version"

// CheckProtocol checks a protocol_version value (the input's and the
// output's one check).
func CheckProtocol(v string) error {
	switch v {
	case Protocol311, Protocol5:
		return nil
	}
	return fmt.Errorf("%s: unknown value %q (supported: %s, %s)", FieldProtocol, v, Protocol311, Protocol5)
}
