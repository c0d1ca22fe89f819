package danube

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/benthos-danube/benthos-danube/internal/hostcheck"
	"github.com/benthos-danube/benthos-danube/internal/redact"
)

// ParseServiceURL checks a Danube service URL and returns the host:port to
// dial. The accepted form is "host:port", optionally prefixed by "http://" or
// "https://" (in any case) and followed by '/'; surrounding spaces are
// ignored. The scheme never selects TLS (see WithTLS). host is a name or an
// IP address (IPv6 in brackets), port a number from 1 to 65535. Anything else
// could never be dialled, so it is refused here rather than retried.
func ParseServiceURL(serviceURL string) (string, error) {
	// The URL is masked: this error is logged and shown on /ready.
	bad := func(format string, args ...any) error {
		return fmt.Errorf("invalid Danube URL %q: %s", redact.URL(serviceURL), fmt.Sprintf(format, args...))
	}
	addr := stripScheme(serviceURL)
	if addr == "" {
		return "", bad("no host:port; use host:port, optionally prefixed by http:// or https://")
	}
	if at := strings.LastIndex(addr, "@"); at >= 0 && !strings.ContainsAny(addr[:at], "/?#") {
		// Danube authenticates with a JWT, never with URL credentials.
		return "", bad("it must not carry credentials (user:password@): Danube authenticates with a JWT, pass it as token or token_file")
	}
	if i := strings.Index(addr, "://"); i >= 0 {
		return "", bad("unsupported scheme %q; use host:port, optionally prefixed by http:// or https:// (TLS is set by the tls field, not by the scheme)", addr[:i+3])
	}
	if i := strings.IndexAny(addr, "/?#"); i >= 0 {
		return "", bad("unexpected %q after host:port", addr[i:])
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		var ae *net.AddrError
		switch {
		case errors.As(err, &ae) && ae.Err == "missing port in address":
			return "", bad("no port; use host:port, e.g. %s:6650 (6650 is Danube's default)", addr)
		case errors.As(err, &ae) && ae.Err == "too many colons in address":
			return "", bad("%s; write an IPv6 address in brackets, e.g. [::1]:6650", ae.Err)
		case errors.As(err, &ae):
			return "", bad("%s", ae.Err)
		}
		return "", bad("%v", err)
	}
	if host == "" {
		return "", bad("no host")
	}
	if !hostcheck.Valid(host) {
		return "", bad("invalid host %q; use a host name (letters, digits, '.', '-', '_') or an IP address", host)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return "", bad("port %q is not a number from 1 to 65535", port)
	}
	return addr, nil
}

// stripScheme removes a leading http:// or https:// and trailing slashes.
func stripScheme(u string) string {
	u = strings.TrimSpace(u)
	for _, p := range []string{"http://", "https://"} {
		if len(u) >= len(p) && strings.EqualFold(u[:len(p)], p) {
			u = u[len(p):]
			break
		}
	}
	return strings.TrimRight(u, "/")
}
