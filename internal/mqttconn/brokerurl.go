package mqttconn

import (
	"fmt"
	"net/url"
	"strconv"

	"github.com/benthos-danube/benthos-danube/internal/hostcheck"
	"github.com/benthos-danube/benthos-danube/internal/redact"
)

// SchemeHelp lists the schemes the MQTT client dials.
const SchemeHelp = "use tcp:// (or mqtt://), ssl:// (or tls://, mqtts://), ws://, wss:// or unix://"

// CheckBrokerURL rejects what the Paho client cannot dial, which it would
// otherwise retry for ever: an unknown scheme, a missing or out-of-range port
// (Paho has no default port for tcp and ssl; ws and wss default to 80 and
// 443), a missing or malformed host, a unix URL without a path.
//
// Errors show the URL with its password masked: they are logged and lint
// prints them.
func CheckBrokerURL(raw string) error {
	pu, err := url.Parse(raw)
	if err != nil {
		return redact.Error(err)
	}
	u := redact.URL(raw)
	switch pu.Scheme {
	case "unix":
		if pu.Host == "" && pu.Path == "" {
			return fmt.Errorf("%q has no socket path: use unix:///path/to/socket", u)
		}
		return nil
	case "tcp", "mqtt", "ssl", "tls", "mqtts", "mqtt+ssl", "tcps", "ws", "wss":
	default:
		return fmt.Errorf("unsupported scheme %q in %q: %s", pu.Scheme, u, SchemeHelp)
	}
	host, port := pu.Hostname(), pu.Port()
	if host == "" {
		return fmt.Errorf("%q has no host", u)
	}
	if !hostcheck.Valid(host) {
		return fmt.Errorf("invalid host %q in %q: use a host name (letters, digits, '.', '-', '_') or an IP address", host, u)
	}
	if port == "" {
		if pu.Scheme == "ws" || pu.Scheme == "wss" {
			return nil // the WebSocket dialer defaults to 80 and 443
		}
		return fmt.Errorf("%q has no port: the MQTT client has no default port for %s://, add one (1883 is the usual plain port, 8883 the TLS one)", u, pu.Scheme)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("port %s in %q is out of range: use 1 to 65535", port, u)
	}
	return nil
}
