package danubeout

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"

	"github.com/benthos-danube/benthos-danube/internal/danube"
	"github.com/benthos-danube/benthos-danube/internal/danube/danubetest"
)

// TestConnectAuthFailureIsNotUnreachable: a token the broker rejects (or a
// missing one) is reported as an authentication failure that says what to
// check, never as "unreachable", and is not a connection error.
func TestConnectAuthFailureIsNotUnreachable(t *testing.T) {
	srv := danubetest.NewTestServer(t, danubetest.WithTokens("the-good-token"))
	tests := []struct {
		name, extra string
		want        []string
	}{
		{"wrong token", "token: not-the-token", []string{"refused the authentication", "Invalid token", "check token or token_file"}},
		{"no token", "", []string{"refused the authentication", "requires authentication: set token (or token_file)"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, _ := newTestOutput(t, fmt.Sprintf("url: %s\ntopic: /default/auth\n%s", srv.URL(), tt.extra))
			err := connect(t, o)
			require.Error(t, err)
			for _, w := range tt.want {
				assert.Contains(t, err.Error(), w)
			}
			assert.NotContains(t, err.Error(), "unreachable")
			assert.False(t, danube.IsConnectionError(err), "an authentication failure is not a connection error")
		})
	}
}

// TestTokenRejectedLaterIsNotAConnectionError: when the token stops being
// accepted after the output connected (an expired JWT, a bad rotation of
// token_file), the writes fail with the hint, and are not reported as a
// lost connection (which would hide the cause behind "unreachable").
func TestTokenRejectedLaterIsNotAConnectionError(t *testing.T) {
	srv := danubetest.NewTestServer(t, danubetest.WithTokens("the-good-token"))
	path := filepath.Join(t.TempDir(), "jwt")
	require.NoError(t, os.WriteFile(path, []byte("the-good-token\n"), 0o600))
	o, _ := newTestOutput(t, fmt.Sprintf("url: %s\ntopic: /default/rotated\ntoken_file: %s\n", srv.URL(), path))
	require.NoError(t, connect(t, o))
	require.NoError(t, write(t, o, "before"), "the producer exists")

	require.NoError(t, os.WriteFile(path, []byte("an-expired-token\n"), 0o600))
	future := time.Now().Add(2 * time.Second)
	require.NoError(t, os.Chtimes(path, future, future))
	err := write(t, o, "after")
	require.Error(t, err)
	assert.False(t, errors.Is(err, service.ErrNotConnected), "reported as a lost connection: %v", err)
	assert.False(t, danube.IsConnectionError(err))
	assert.Contains(t, err.Error(), "check token or token_file")
}

// TestMissingTopicHint: with auto-creation off on the broker, a producer for
// a topic that does not exist fails with NotFound "Unable to find the
// topic"; the error says how to create it, for the base topic of a
// partitioned one.
func TestMissingTopicHint(t *testing.T) {
	srv := danubetest.NewTestServer(t, danubetest.WithAutoCreateTopics(false))
	for _, parts := range []int{0, 3} {
		t.Run(fmt.Sprintf("partitions=%d", parts), func(t *testing.T) {
			o, _ := newTestOutput(t, fmt.Sprintf("url: %s\ntopic: /default/missing\npartitions: %d\n", srv.URL(), parts))
			require.NoError(t, connect(t, o))
			err := write(t, o, "x")
			require.Error(t, err)
			assert.Contains(t, err.Error(), "Unable to find the topic")
			assert.Contains(t, err.Error(), "danube-admin-cli topics create /default/missing,")
			assert.Contains(t, err.Error(), "auto_create_topics: true")
			assert.Equal(t, hint(err), hint(errors.Unwrap(err)), "hint finds the cause through wrapping")
		})
	}
}

// TestTLSMismatchHints: https:// without tls.enabled is warned about at
// start-up and explained in the connection error; the other TLS mismatches
// get their own hint.
func TestTLSMismatchHints(t *testing.T) {
	// The broker's certificate is self-signed: no client trusts it by default.
	tlsSrv := danubetest.NewTestTLSServer(t)
	plainSrv := danubetest.NewTestServer(t)
	tlsAddr := tlsSrv.Addr()
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	require.NoError(t, os.WriteFile(caFile, tlsSrv.CertificatePEM(), 0o600))
	tests := []struct {
		name    string
		yaml    string
		connErr string // "" : Connect succeeds
		warn    bool   // the start-up warning about https://
	}{
		{"https without tls to a TLS broker", "url: https://" + tlsAddr, "url starts with https:// but tls.enabled is false, and the scheme does not enable TLS: set tls.enabled: true", true},
		{"https without tls to a plaintext broker", "url: https://" + plainSrv.Addr(), "", true},
		{"http without tls to a TLS broker", "url: http://" + tlsAddr, "if it serves TLS (auth mode tls or tlswithjwt), set tls.enabled: true", false},
		{"tls to a plaintext broker", "url: " + plainSrv.Addr() + "\ntls: {enabled: true, skip_cert_verify: true}", "tls.enabled is true but the broker answers in plaintext", false},
		{"untrusted certificate", "url: https://" + tlsAddr + "\ntls: {enabled: true}", "set tls.root_cas_file to the CA that signed it", false},
		{"https with tls", "url: https://" + tlsAddr + "\ntls: {enabled: true, skip_cert_verify: true}", "", false},
		{"tls trusting the broker's certificate", "url: " + tlsAddr + "\ntls: {enabled: true, root_cas_file: " + caFile + "}", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, logs := newTestOutput(t, tt.yaml+"\ntopic: /default/tls\nsend_timeout: 2s\n")
			warned := strings.Contains(logs.String(), "starts with https:// but tls.enabled is false: the connection is plaintext")
			assert.Equal(t, tt.warn, warned, "start-up warning; logs:\n%s", logs)
			err := connect(t, o)
			if tt.connErr == "" {
				require.NoError(t, err)
				return
			}
			require.Error(t, err)
			assert.Contains(t, err.Error(), "unreachable")
			assert.Contains(t, err.Error(), tt.connErr)
		})
	}
}

// TestExplainOnce: an error explained twice on its way up (newProducer, then
// send) carries its hint once.
func TestExplainOnce(t *testing.T) {
	o := &output{}
	base := &danube.Error{Topic: "/default/x", RPC: "CreateProducer", Code: codes.NotFound, Err: errors.New("Unable to find the topic: /default/x")}
	err := o.explain(fmt.Errorf("sending: %w", o.explain(fmt.Errorf("creating producer: %w", base))))
	assert.Equal(t, 1, strings.Count(err.Error(), "auto_create_topics"), err.Error())
	assert.Empty(t, hint(errors.New("some other failure")))
	assert.Empty(t, hint(nil))
}
