package danubeout

import (
	"errors"
	"fmt"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/benthos-danube/benthos-danube/internal/danube"
	"github.com/benthos-danube/benthos-danube/internal/danube/topicname"
)

// This file holds the advice attached to Danube errors, in one place so that
// connection errors, message errors and dead-letter reasons say the same
// thing. hint knows only the error; (*output).hint adds what the
// configuration explains (an https:// url without tls.enabled).

// hint returns what to do about err, an error of the Danube client, or ""
// when there is nothing specific to say.
func hint(err error) string {
	if err == nil {
		return ""
	}
	msg := err.Error()
	switch code := status.Code(err); {
	case code == codes.Unauthenticated && strings.Contains(msg, "credentials are missing"):
		return fmt.Sprintf("the broker requires authentication: set %s (or %s) to a JWT the broker accepts", fieldToken, fieldTokenFile)
	case code == codes.Unauthenticated:
		return fmt.Sprintf("the broker rejected the token: check %s or %s (a JWT signed with the broker's secret that has not expired; %s is re-read when the file changes)", fieldToken, fieldTokenFile, fieldTokenFile)
	case code == codes.NotFound && strings.Contains(msg, "Unable to find the topic"):
		topic := missingTopic(err)
		return fmt.Sprintf("the topic does not exist and the broker does not create topics on first use: create it (danube-admin-cli topics create %s, with --partitions and --dispatch-strategy as configured) or set auto_create_topics: true in the broker configuration", topic)
	}
	switch {
	case strings.Contains(msg, "first record does not look like a TLS handshake"):
		return fmt.Sprintf("%s.enabled is true but the broker answers in plaintext: set %s.enabled: false, or point %s at the broker's TLS port", fieldTLS, fieldTLS, fieldURL)
	case strings.Contains(msg, "error reading server preface"):
		return fmt.Sprintf("the broker closed the plaintext connection at once: if it serves TLS (auth mode tls or tlswithjwt), set %s.enabled: true", fieldTLS)
	case strings.Contains(msg, "certificate signed by unknown authority"):
		return fmt.Sprintf("the broker's certificate is not trusted: set %s.root_cas_file to the CA that signed it", fieldTLS)
	case strings.Contains(msg, "certificate is valid for") || strings.Contains(msg, "doesn't contain any IP SANs"):
		return fmt.Sprintf("the broker's certificate does not name the host of %s: connect with a host name the certificate is valid for", fieldURL)
	}
	return ""
}

// missingTopic returns the topic of a NotFound error, without the partition
// suffix: partitions are created with their topic.
func missingTopic(err error) string {
	var de *danube.Error
	if errors.As(err, &de) && de.Topic != "" {
		base, _ := topicname.SplitPartition(de.Topic)
		return base
	}
	return "<topic>"
}

// httpsWithoutTLS reports whether url asks for https:// while tls is off.
func httpsWithoutTLS(url string, tlsOn bool) bool {
	u := strings.ToLower(strings.TrimSpace(url))
	return !tlsOn && strings.HasPrefix(u, "https://")
}

// hint is hint(err) with what the configuration explains: a connection error
// with an https:// url and tls disabled.
func (o *output) hint(err error) string {
	if o.httpsNoTLS && danube.IsConnectionError(err) {
		return fmt.Sprintf("%s starts with https:// but %s.enabled is false, and the scheme does not enable TLS: set %s.enabled: true", fieldURL, fieldTLS, fieldTLS)
	}
	return hint(err)
}

// explain returns err with o.hint(err) appended, or err itself when there is
// no hint or err already carries one. errors.Is and errors.As see through it.
func (o *output) explain(err error) error {
	var already *hinted
	if errors.As(err, &already) {
		return err
	}
	if h := o.hint(err); h != "" {
		return &hinted{err: err, hint: h}
	}
	return err
}

type hinted struct {
	err  error
	hint string
}

func (e *hinted) Error() string { return e.err.Error() + "; " + e.hint }
func (e *hinted) Unwrap() error { return e.err }

// checkScheme records whether the url says https:// without tls.enabled, and
// warns at start-up: the connection is plaintext whatever the scheme says.
func (o *output) checkScheme(tlsOn bool) {
	o.httpsNoTLS = httpsWithoutTLS(o.url, tlsOn)
	if o.httpsNoTLS {
		o.log.Warnf("danube output: %s %s starts with https:// but %s.enabled is false: the connection is plaintext, the scheme does not enable TLS; set %s.enabled: true (and %s.root_cas_file if a private CA signed the broker's certificate), or write http:// for a plaintext broker",
			fieldURL, o.shownURL(), fieldTLS, fieldTLS, fieldTLS)
	}
}

// connectError is the error of a failed Connect ping: an authentication
// failure says so (it is not a reachability problem), anything else is
// "unreachable", each with its hint.
func (o *output) connectError(err error) error {
	if status.Code(err) == codes.Unauthenticated {
		return fmt.Errorf("danube output: broker %s refused the authentication: %w", o.shownURL(), o.explain(err))
	}
	return fmt.Errorf("danube output: broker %s unreachable: %w", o.shownURL(), o.explain(err))
}
