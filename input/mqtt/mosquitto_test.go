package mqtt

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// mosquittoBroker is a Mosquitto process of the test's own (never the shared
// broker of MQTT_TEST_URL), on a free loopback port, with persistence in a
// temporary directory so sessions survive a graceful restart.
type mosquittoBroker struct {
	t    testing.TB
	bin  string
	conf string
	log  string
	addr string
	cmd  *exec.Cmd
	exit chan error
}

// newMosquitto starts Mosquitto. It skips the test when no `mosquitto`
// binary is on PATH, except in CI (MQTT_TEST_URL set), where that fails it.
func newMosquitto(t testing.TB) *mosquittoBroker {
	t.Helper()
	bin, err := exec.LookPath("mosquitto")
	if err != nil {
		if os.Getenv("MQTT_TEST_URL") != "" {
			t.Fatalf("MQTT_TEST_URL is set (CI) but no mosquitto binary is on PATH: %v", err)
		}
		t.Skipf("no mosquitto binary on PATH: %v", err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	_ = l.Close()
	dir := t.TempDir()
	b := &mosquittoBroker{
		t: t, bin: bin, conf: filepath.Join(dir, "mosquitto.conf"), log: filepath.Join(dir, "mosquitto.log"),
		addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
	}
	conf := fmt.Sprintf(`listener %d 127.0.0.1
allow_anonymous true
persistence true
persistence_location %s/
autosave_interval 1
max_queued_messages 0
max_inflight_messages 20
log_dest stderr
log_type error
log_type warning
log_type notice
`, port, dir)
	if os.Geteuid() == 0 {
		conf += "user root\n" // as root, Mosquitto would switch to user mosquitto, who cannot write dir
	}
	if err := os.WriteFile(b.conf, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	b.start()
	t.Cleanup(b.stop)
	return b
}

func (b *mosquittoBroker) url() string { return "tcp://" + b.addr }

// start runs Mosquitto and waits until it accepts connections.
func (b *mosquittoBroker) start() {
	b.t.Helper()
	logf, err := os.OpenFile(b.log, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		b.t.Fatal(err)
	}
	defer logf.Close()
	cmd := exec.Command(b.bin, "-c", b.conf)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		b.t.Fatalf("starting mosquitto: %v", err)
	}
	b.cmd, b.exit = cmd, make(chan error, 1)
	go func() { b.exit <- cmd.Wait() }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", b.addr, 200*time.Millisecond)
		if err == nil {
			_ = c.Close()
			return
		}
		select {
		case err := <-b.exit:
			b.cmd = nil
			b.t.Fatalf("mosquitto exited at start-up (%v); log:\n%s", err, b.logText())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("mosquitto not listening on %s within 10s; log:\n%s", b.addr, b.logText())
		}
	}
}

// stop shuts Mosquitto down gracefully (SIGTERM: it saves its persistence
// file) and waits for the process to exit.
func (b *mosquittoBroker) stop() {
	if b.cmd == nil {
		return
	}
	_ = b.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-b.exit:
		var ee *exec.ExitError
		if err != nil && !errors.As(err, &ee) {
			b.t.Errorf("mosquitto exit: %v", err)
		}
	case <-time.After(15 * time.Second):
		_ = b.cmd.Process.Kill()
		<-b.exit
		b.t.Errorf("mosquitto did not exit within 15s of SIGTERM; killed")
	}
	b.cmd = nil
}

func (b *mosquittoBroker) logText() string {
	s, _ := os.ReadFile(b.log)
	return string(s)
}

// TestBrokerRestartMosquitto restarts a real Mosquitto (persistence on, a
// graceful SIGTERM) mid-stream while a persistent-session QoS 1 publisher
// publishes 3000 messages and the bridge consumes them with a persistent
// session: the input reconnects, resubscribes and nothing is missing.
func TestBrokerRestartMosquitto(t *testing.T) {
	for _, protocol := range []string{protocol311, protocol5} {
		t.Run("mqtt"+protocol, func(t *testing.T) { testBrokerRestartMosquitto(t, protocol) })
	}
}

func testBrokerRestartMosquitto(t *testing.T, protocol string) {
	b := newMosquitto(t)
	const n = 3000
	_, ts, rec, all, done := startRestartLoad(t, b.url(), n, protocol)
	b.stop()
	atStop := rec.unique()
	b.start()
	select {
	case <-done:
	case <-time.After(40 * time.Second):
		t.Fatalf("publishing not finished 40s after the restart (%d of %d received); mosquitto log:\n%s", rec.unique(), n, b.logText())
	}
	deadline := time.Now().Add(15 * time.Second)
	for rec.unique() < n && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if missing, s := rec.missing(all); missing > 0 {
		t.Fatalf("%d missing after the Mosquitto restart (%d received before it): %v; reconnects %d, lost %d; mosquitto log:\n%s",
			missing, atStop, s, ts.in.reconnects.Load(), ts.in.lost.Load(), b.logText())
	}
	if r := ts.in.reconnects.Load(); r < 1 {
		t.Errorf("reconnects = %d, want >= 1", r)
	}
	t.Logf("restart after %d unique; %d delivered, %d duplicates, %d reconnects", atStop, rec.total, rec.duplicates(), ts.in.reconnects.Load())
}
