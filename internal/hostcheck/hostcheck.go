// Package hostcheck checks the host part of a broker address before it is
// dialled, so that a typo fails at start-up instead of in every reconnect.
package hostcheck

import (
	"net"
	"strings"
)

// Valid reports whether h is an IP address (IPv6 without brackets, with an
// optional %zone) or a host name made of ASCII letters, digits, '.', '-' and
// '_' (the last for container and compose service names). It does not
// resolve the name.
func Valid(h string) bool {
	if h == "" {
		return false
	}
	if ip, _, _ := strings.Cut(h, "%"); net.ParseIP(ip) != nil {
		return true
	}
	for i := 0; i < len(h); i++ {
		c := h[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}
