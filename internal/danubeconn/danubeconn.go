// Package danubeconn is what the danube input and output share about reaching
// a broker: the tls, token and token_file fields, the client options they
// give, and the advice attached to connection, TLS and authentication errors.
// Both components take their fields from here, so the two say the same thing.
package danubeconn

import (
	"fmt"
	"strings"

	"github.com/redpanda-data/benthos/v4/public/service"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/benthos-danube/benthos-danube/internal/danube"
)

// Field names. FieldURL is the broker address field, which each component
// describes itself; the hints here name it.
const (
	FieldURL       = "url"
	FieldTLS       = "tls"
	FieldToken     = "token"
	FieldTokenFile = "token_file"
)

// Fields returns the tls, token and token_file fields, in that order.
func Fields() []*service.ConfigField {
	return []*service.ConfigField{
		service.NewTLSToggledField(FieldTLS).
			Example(map[string]any{"enabled": true, "root_cas_file": "/etc/danube/ca.pem"}),
		service.NewStringField(FieldToken).
			Description("A JWT sent as `authorization: Bearer <token>` on every RPC. Prefer an environment variable, e.g. `${DANUBE_TOKEN}`.").
			Default("").
			Secret().
			Examples("${DANUBE_TOKEN}").
			Advanced(),
		service.NewStringField(FieldTokenFile).
			Description("A file holding the JWT; it is re-read whenever it changes. Takes precedence over `token`.").
			Default("").
			Examples("/var/run/secrets/danube/token").
			Advanced(),
	}
}

// Conn is what the fields ask for: the client options, and whether the url's
// https:// scheme is contradicted by tls.enabled: false.
type Conn struct {
	opts       []danube.Option
	httpsNoTLS bool
}

// Read reads the fields of conf; url is the component's broker address. Its
// errors name the field.
func Read(conf *service.ParsedConfig, url string) (*Conn, error) {
	c := &Conn{}
	tlsConf, tlsOn, err := conf.FieldTLSToggled(FieldTLS)
	if err != nil {
		// Unlike the other field errors, Benthos' TLS errors (an unreadable
		// root_cas_file, say) do not name the field.
		return nil, fmt.Errorf("field %s: %w", FieldTLS, err)
	}
	if tlsOn {
		c.opts = append(c.opts, danube.WithTLS(tlsConf))
	}
	c.httpsNoTLS = !tlsOn && strings.HasPrefix(strings.ToLower(strings.TrimSpace(url)), "https://")
	token, err := conf.FieldString(FieldToken)
	if err != nil {
		return nil, err
	}
	tokenFile, err := conf.FieldString(FieldTokenFile)
	if err != nil {
		return nil, err
	}
	switch {
	case tokenFile != "":
		c.opts = append(c.opts, danube.WithTokenFile(tokenFile))
	case token != "":
		c.opts = append(c.opts, danube.WithToken(token))
	}
	return c, nil
}

// Options returns the client options for the fields.
func (c *Conn) Options() []danube.Option { return append([]danube.Option(nil), c.opts...) }

// SchemeWarning returns the start-up warning for an https:// url with TLS
// off (the connection is plaintext whatever the scheme says), or "". shownURL
// is the url as the component shows it, without credentials.
func (c *Conn) SchemeWarning(shownURL string) string {
	if !c.httpsNoTLS {
		return ""
	}
	return fmt.Sprintf("%s %s starts with https:// but %s.enabled is false: the connection is plaintext, the scheme does not enable TLS; set %s.enabled: true (and %s.root_cas_file if a private CA signed the broker's certificate), or write http:// for a plaintext broker",
		FieldURL, shownURL, FieldTLS, FieldTLS, FieldTLS)
}

// Hint returns what to do about err, an error of the Danube client, as far as
// the broker's address, TLS and credentials explain it, or "" when they do
// not.
func (c *Conn) Hint(err error) string {
	if err == nil {
		return ""
	}
	if c.httpsNoTLS && danube.IsConnectionError(err) {
		return fmt.Sprintf("%s starts with https:// but %s.enabled is false, and the scheme does not enable TLS: set %s.enabled: true", FieldURL, FieldTLS, FieldTLS)
	}
	return Hint(err)
}

// Hint is (*Conn).Hint without what the configuration explains.
func Hint(err error) string {
	if err == nil {
		return ""
	}
	msg := err.Error()
	if status.Code(err) == codes.Unauthenticated {
		if strings.Contains(msg, "credentials are missing") {
			return fmt.Sprintf("the broker requires authentication: set %s (or %s) to a JWT the broker accepts", FieldToken, FieldTokenFile)
		}
		return fmt.Sprintf("the broker rejected the token: check %s or %s (a JWT signed with the broker's secret that has not expired; %s is re-read when the file changes)", FieldToken, FieldTokenFile, FieldTokenFile)
	}
	switch {
	case strings.Contains(msg, "first record does not look like a TLS handshake"):
		return fmt.Sprintf("%s.enabled is true but the broker answers in plaintext: set %s.enabled: false, or point %s at the broker's TLS port", FieldTLS, FieldTLS, FieldURL)
	case strings.Contains(msg, "error reading server preface"):
		return fmt.Sprintf("the broker closed the plaintext connection at once: if it serves TLS (auth mode tls or tlswithjwt), set %s.enabled: true", FieldTLS)
	case strings.Contains(msg, "certificate signed by unknown authority"):
		return fmt.Sprintf("the broker's certificate is not trusted: set %s.root_cas_file to the CA that signed it", FieldTLS)
	case strings.Contains(msg, "certificate is valid for") || strings.Contains(msg, "doesn't contain any IP SANs"):
		return fmt.Sprintf("the broker's certificate does not name the host of %s: connect with a host name the certificate is valid for", FieldURL)
	}
	return ""
}
