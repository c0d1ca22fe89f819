// Package redact hides the passwords of URLs (scheme://user:password@host)
// before a URL or an error that may contain one is logged, returned as a
// connection error (Benthos shows those on the unauthenticated /ready
// endpoint) or printed at start-up. It handles URLs that do not parse too:
// a typo in a URL must not print the password next to it.
package redact

import (
	"errors"
	"net/url"
	"regexp"
	"strings"
)

// Mask replaces a password, as in url.URL.Redacted.
const Mask = "xxxxx"

// URL returns raw with the password of its user information replaced by
// Mask. A user name without a password is kept, as url.URL.Redacted does.
// When raw does not parse as a URL, everything between the first ':' after
// the scheme and the last '@' is masked: a broken URL may lose a little more
// than its password, never less.
func URL(raw string) string {
	if !strings.Contains(raw, "@") {
		return raw // no user information
	}
	u, err := url.Parse(raw)
	if err == nil && u.Opaque == "" {
		if u.User == nil {
			return raw // the '@' is in the path, query or fragment
		}
		if _, ok := u.User.Password(); !ok {
			return raw
		}
		return u.Redacted()
	}
	// Unparsable, or "user:pass@host:port" without a scheme (which parses as
	// scheme "user" with an opaque part).
	return maskUserinfo(raw)
}

// URLs applies URL to every element of urls.
func URLs(urls []string) []string {
	out := make([]string, len(urls))
	for i, u := range urls {
		out[i] = URL(u)
	}
	return out
}

// maskUserinfo masks the password part of the user information of s without
// parsing it.
func maskUserinfo(s string) string {
	start := 0
	if i := strings.Index(s, "://"); i >= 0 {
		start = i + len("://")
	}
	at := strings.LastIndex(s[start:], "@")
	if at < 0 {
		return s
	}
	at += start
	colon := strings.Index(s[start:at], ":")
	if colon < 0 {
		return s // a user name only
	}
	return s[:start+colon+1] + Mask + s[at:]
}

// inText finds "scheme://user:password@" in free text: the password runs to
// the last '@' before a space or a quote, so a password containing '@' is
// masked whole.
var inText = regexp.MustCompile(`([A-Za-z][A-Za-z0-9+.\-]*://[^\s"'/@:]*:)[^\s"']*@`)

// Text returns s with the password of every URL in it masked, e.g. an error
// message from a library that quotes the URL it was given.
func Text(s string) string {
	if !strings.Contains(s, "@") {
		return s
	}
	return inText.ReplaceAllString(s, "${1}"+Mask+"@")
}

// Error returns err with the passwords of the URLs in its message masked,
// keeping errors.Is and errors.As working through it. A *url.Error (from
// url.Parse) loses the quoted fragments of its reason too when the URL has
// a password, since they may be part of it (`invalid URL escape "%zz"`).
// nil stays nil, and an error with nothing to mask is returned as it is.
func Error(err error) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	var ue *url.Error
	if errors.As(err, &ue) && ue.Err != nil && URL(ue.URL) != ue.URL {
		reason := quoted.ReplaceAllString(ue.Err.Error(), `"…"`)
		safe := ue.Op + " " + `"` + URL(ue.URL) + `": ` + reason + " (the password is not shown; percent-encode reserved characters such as @ : / % in the user name and password)"
		msg = strings.Replace(msg, ue.Error(), safe, 1)
		if msg == err.Error() { // ue's text is not in the message as such
			msg = safe
		}
	}
	if m := Text(msg); m != err.Error() {
		return &scrubbed{msg: m, err: err}
	}
	return err
}

var quoted = regexp.MustCompile(`"[^"]*"`)

type scrubbed struct {
	msg string
	err error
}

func (e *scrubbed) Error() string { return e.msg }
func (e *scrubbed) Unwrap() error { return e.err }
