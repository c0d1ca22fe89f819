package tests

import (
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// freeAddr returns a loopback address nothing listens on.
func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	return addr
}

// withUserinfo returns the MQTT URL u with user:password@ added.
func withUserinfo(t testing.TB, u, user, password string) string {
	t.Helper()
	pu, err := url.Parse(u)
	require.NoError(t, err)
	pu.User = url.UserPassword(user, password)
	return pu.String()
}

// getReady returns the status code and body of GET /ready.
func getReady(httpAddr string) (int, string, error) {
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get("http://" + httpAddr + "/ready")
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// waitReady polls /ready until cond accepts the answer and returns its body.
func waitReady(t testing.TB, httpAddr string, timeout time.Duration, cond func(code int, body string) bool) string {
	t.Helper()
	var code int
	var body string
	require.Eventually(t, func() bool {
		var err error
		code, body, err = getReady(httpAddr)
		return err == nil && cond(code, body)
	}, timeout, 100*time.Millisecond, "/ready never gave the expected answer; last: %d %s", code, body)
	return body
}

// TestE2EURLPasswordNotShown runs the binary with a password in the MQTT URL
// (and, when unreachable, in the Danube URL) and checks that it appears in
// no log line and not in the body of the unauthenticated /ready endpoint,
// whose statuses carry the connection errors.
func TestE2EURLPasswordNotShown(t *testing.T) {
	const secret = "pw-Zq7x-not-for-logs"
	id := uniqueID(t)
	tests := []struct {
		name      string
		mqttURL   func(t *testing.T) string
		danubeURL func(t *testing.T) string
		ready     func(code int, body string) bool
		logged    string // a line that must be in the logs
	}{
		{
			name:      "connected",
			mqttURL:   func(t *testing.T) string { return withUserinfo(t, mqttBroker(t), "bridge", secret) },
			danubeURL: func(t *testing.T) string { return danubeBroker(t).URL() },
			ready:     func(code int, _ string) bool { return code == http.StatusOK },
			logged:    "Connected to MQTT broker [tcp://bridge:xxxxx@",
		},
		{
			name:      "unreachable",
			mqttURL:   func(t *testing.T) string { return "tcp://bridge:" + secret + "@" + freeAddr(t) },
			danubeURL: func(t *testing.T) string { return "http://" + freeAddr(t) },
			ready: func(code int, body string) bool {
				return code == http.StatusServiceUnavailable &&
					strings.Contains(body, "connecting to MQTT broker") && strings.Contains(body, "danube output")
			},
			logged: "connecting to MQTT broker [tcp://bridge:xxxxx@",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			httpAddr := freeAddr(t)
			env := bridgeEnv(tt.mqttURL(t), tt.danubeURL(t), id+"-"+tt.name)
			env["HTTP_ENABLED"] = "true"
			env["HTTP_ADDRESS"] = httpAddr
			p := startBridge(t, shippedConfig(t, id), env)
			body := waitReady(t, httpAddr, 30*time.Second, tt.ready)
			assert.NotContains(t, body, secret, "/ready shows the password")
			assert.Eventually(t, func() bool { return strings.Contains(p.stdout.String()+p.stderr.String(), tt.logged) },
				10*time.Second, 50*time.Millisecond, "no %q in the logs", tt.logged)
			p.signal(t, syscall.SIGTERM)
			p.wait(t, 40*time.Second)
			for _, line := range strings.Split(p.stdout.String()+"\n"+p.stderr.String(), "\n") {
				if strings.Contains(line, secret) {
					t.Errorf("a log line shows the password: %s", line)
				}
			}
		})
	}
}

// TestE2EUnparsableURLPasswordNotShown: a URL that does not parse stops the
// binary at start-up with a reason that does not show the password, nor a
// piece of it (url.Parse quotes the bad escape).
func TestE2EUnparsableURLPasswordNotShown(t *testing.T) {
	env := bridgeEnv("tcp://bridge:pw-Zq7x%zz-not-for-logs@127.0.0.1:1883", "http://"+freeAddr(t), "unused")
	p := startBridge(t, shippedConfig(t, uniqueID(t)), env)
	assert.NotEqual(t, 0, p.wait(t, 20*time.Second))
	out := p.stdout.String() + p.stderr.String()
	assert.Contains(t, out, "tcp://bridge:xxxxx@127.0.0.1:1883", "the reason names the URL, masked")
	for _, piece := range []string{"pw-Zq7x", "not-for-logs", "%zz"} {
		assert.NotContains(t, out, piece)
	}
}

// TestE2EDanubeURLCredentialsRefused: Danube takes no URL credentials; a URL
// with some stops the binary at start-up (lint) with the password masked.
func TestE2EDanubeURLCredentialsRefused(t *testing.T) {
	env := bridgeEnv("tcp://"+freeAddr(t), "http://bridge:pw-Zq7x-not-for-logs@"+freeAddr(t), "unused")
	p := startBridge(t, shippedConfig(t, uniqueID(t)), env)
	assert.NotEqual(t, 0, p.wait(t, 20*time.Second))
	out := p.stdout.String() + p.stderr.String()
	assert.Contains(t, out, "must not carry credentials")
	assert.Contains(t, out, "http://bridge:xxxxx@")
	assert.NotContains(t, out, "pw-Zq7x")
}
