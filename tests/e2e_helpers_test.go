// Package tests holds the end-to-end tests of benthos-danube: the real
// binary, built once in TestMain, runs as a subprocess with a config file
// between a real MQTT broker (Mosquitto at MQTT_TEST_URL when set, otherwise
// an in-process mochi broker) and the in-process Danube test broker.
package tests

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/stretchr/testify/require"

	"github.com/benthos-danube/benthos-danube/internal/danube/danubetest"
	"github.com/benthos-danube/benthos-danube/internal/mqtttest"
	"github.com/benthos-danube/benthos-danube/internal/syncbuf"
	"github.com/benthos-danube/benthos-danube/tests/harness"
)

// binPath is the benthos-danube binary built by TestMain.
var binPath string

// repoRoot is the module root (the parent of tests/).
var repoRoot string

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	root, err := harness.ModuleRoot()
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	repoRoot = root
	dir, err := os.MkdirTemp("", "benthos-danube-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	binPath, err = harness.BuildBinary(ctx, dir)
	cancel()
	if err != nil {
		fmt.Fprintf(os.Stderr, "e2e: building the binary: %v\n", err)
		return 1
	}
	return m.Run()
}

// uniqueID returns a short random id for topic prefixes and client ids, so
// tests can share one Mosquitto.
func uniqueID(t testing.TB) string {
	t.Helper()
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	name := regexp.MustCompile(`[^a-z0-9]+`).ReplaceAllString(strings.ToLower(t.Name()), "-")
	if len(name) > 24 {
		name = name[:24]
	}
	return "e2e-" + strings.Trim(name, "-") + "-" + hex.EncodeToString(b)
}

// mqttBroker returns the URL of the MQTT broker to use: MQTT_TEST_URL when
// set (the test fails if it is unreachable), otherwise a fresh in-process
// mochi broker on a free port.
func mqttBroker(t testing.TB) string {
	t.Helper()
	if u := mqtttest.ExternalURL(t); u != "" {
		return u
	}
	return mqtttest.NewTestServer(t).URL()
}

// danubeBroker starts the in-process Danube test broker with namespace iot.
func danubeBroker(t testing.TB) *danubetest.Server {
	t.Helper()
	return danubetest.NewTestServer(t, danubetest.WithNamespaces("iot"),
		danubetest.WithLogger(slog.New(slog.DiscardHandler)))
}

// shippedConfig returns config/mqtt-to-danube.yaml with every mqtt_topic
// filter prefixed by prefix, so concurrent tests on a shared broker do not
// see each other's messages.
func shippedConfig(t testing.TB, prefix string) string {
	t.Helper()
	out := configFile(t, "mqtt-to-danube.yaml", prefix)
	require.Equal(t, 4, strings.Count(out, "mqtt_topic: "+prefix+"/"), "the shipped config has four mappings")
	return out
}

// configFile returns config/<name> with every mqtt_topic filter prefixed by
// prefix.
func configFile(t testing.TB, name, prefix string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot, "config", name))
	require.NoError(t, err)
	return strings.ReplaceAll(string(b), "mqtt_topic: ", "mqtt_topic: "+prefix+"/")
}

// proc is a running benthos-danube subprocess.
type proc struct {
	cmd            *exec.Cmd
	stdout, stderr *syncbuf.Buffer
	done           chan struct{}
	waitErr        error
}

// startBin runs the binary with args and extra environment variables. The
// process is killed on cleanup if still running, and its output is logged
// when the test failed.
func startBin(t testing.TB, env map[string]string, args ...string) *proc {
	t.Helper()
	return startBinIn(t, repoRoot, env, args...)
}

// startBinIn is startBin with the working directory dir.
func startBinIn(t testing.TB, dir string, env map[string]string, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(binPath, args...)
	cmd.Dir = dir
	// The shipped configs spool oversized dead letters to
	// DEAD_LETTER_SPOOL_DIR; keep them out of the repository.
	cmd.Env = append(os.Environ(), "DEAD_LETTER_SPOOL_DIR="+t.TempDir())
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	p := &proc{cmd: cmd, stdout: &syncbuf.Buffer{}, stderr: &syncbuf.Buffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.stdout, p.stderr
	require.NoError(t, cmd.Start())
	go func() {
		p.waitErr = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("%s %s\n--- stdout ---\n%s\n--- stderr ---\n%s", filepath.Base(binPath), strings.Join(args, " "), p.stdout, p.stderr)
		}
	})
	return p
}

// startBridge writes yaml to a file and runs the binary on it.
func startBridge(t testing.TB, yaml string, env map[string]string) *proc {
	t.Helper()
	path := filepath.Join(t.TempDir(), "pipeline.yaml")
	require.NoError(t, os.WriteFile(path, []byte(yaml), 0o600))
	return startBin(t, env, "-c", path)
}

// bridgeEnv is the environment for the shipped config.
func bridgeEnv(mqttURL, danubeURL, clientID string) map[string]string {
	return map[string]string{
		"MQTT_URL":       mqttURL,
		"DANUBE_URL":     danubeURL,
		"MQTT_CLIENT_ID": clientID,
		"HTTP_ENABLED":   "false",
	}
}

// signal sends sig to the process.
func (p *proc) signal(t testing.TB, sig syscall.Signal) {
	t.Helper()
	require.NoError(t, p.cmd.Process.Signal(sig))
}

// wait waits for the process to exit and returns its exit code.
func (p *proc) wait(t testing.TB, timeout time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(timeout):
		t.Fatalf("process did not exit within %s", timeout)
	}
	if p.waitErr == nil {
		return 0
	}
	if ee, ok := p.waitErr.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	t.Fatalf("waiting for the process: %v", p.waitErr)
	return -1
}

// publisher is a real MQTT client.
type publisher struct {
	c paho.Client
}

func newPublisher(t testing.TB, brokerURL, clientID string) *publisher {
	t.Helper()
	c := paho.NewClient(paho.NewClientOptions().
		AddBroker(brokerURL).
		SetClientID(clientID).
		SetCleanSession(true).
		SetOrderMatters(true).
		SetConnectTimeout(5 * time.Second))
	tok := c.Connect()
	require.True(t, tok.WaitTimeout(10*time.Second), "connecting the publisher")
	require.NoError(t, tok.Error())
	t.Cleanup(func() { c.Disconnect(100) })
	return &publisher{c: c}
}

// publish publishes and waits for the broker's acknowledgement (QoS > 0).
func (p *publisher) publish(topic string, qos byte, retained bool, payload []byte) error {
	tok := p.c.Publish(topic, qos, retained, payload)
	if !tok.WaitTimeout(10 * time.Second) {
		return fmt.Errorf("publishing to %s timed out", topic)
	}
	if err := tok.Error(); err != nil {
		return fmt.Errorf("publishing to %s: %w", topic, err)
	}
	return nil
}

// waitBridgeReady publishes probes to probeTopic until one arrives in Danube
// on one of the exact topics danubeTopics (harness.PartitionNames lists a
// partitioned topic's), which proves the bridge is subscribed end to end.
func waitBridgeReady(t testing.TB, pub *publisher, srv *danubetest.Server, probeTopic string, timeout time.Duration, danubeTopics ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	for {
		require.NoError(t, pub.publish(probeTopic, 1, false, []byte("probe")))
		wctx, wcancel := context.WithTimeout(ctx, 300*time.Millisecond)
		err := harness.WaitAny(wctx, srv, danubeTopics...)
		wcancel()
		if err == nil {
			return
		}
		if ctx.Err() != nil {
			t.Fatalf("the bridge forwarded nothing to %v within %s", danubeTopics, timeout)
		}
	}
}

// allMessages returns every message on every topic of srv.
func allMessages(srv *danubetest.Server) []danubetest.Message {
	var out []danubetest.Message
	for _, tn := range srv.Topics() {
		out = append(out, srv.Messages(tn)...)
	}
	return out
}
