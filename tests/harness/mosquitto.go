package harness

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// MosquittoOptions configures a Mosquitto subprocess.
type MosquittoOptions struct {
	// Dir holds the config, the persistence database and the log.
	Dir string
	// MaxInflight is max_inflight_messages (0 = Mosquitto's default of 20).
	MaxInflight int
	// Extra lines appended to the generated config.
	Extra []string
}

// Mosquitto is a Mosquitto broker run as a subprocess on a fixed port, with
// persistence on, so that sessions and queued QoS 1/2 messages survive a
// graceful restart.
type Mosquitto struct {
	opts MosquittoOptions
	port int
	conf string
	log  string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

// MosquittoAvailable reports whether a mosquitto binary is on PATH.
func MosquittoAvailable() bool {
	_, err := exec.LookPath("mosquitto")
	return err == nil
}

// StartMosquitto writes a config and starts the broker on a free port.
//
// The config keeps every queued QoS 1/2 message (max_queued_messages 0 and
// max_queued_bytes 0 mean no limit), never expires persistent sessions, and
// writes the persistence database on graceful exit (SIGTERM).
func StartMosquitto(ctx context.Context, opts MosquittoOptions) (*Mosquitto, error) {
	if opts.Dir == "" {
		return nil, errors.New("mosquitto: Dir is required")
	}
	port, err := FreePort()
	if err != nil {
		return nil, err
	}
	m := &Mosquitto{opts: opts, port: port,
		conf: filepath.Join(opts.Dir, "mosquitto.conf"),
		log:  filepath.Join(opts.Dir, "mosquitto.log")}
	lines := []string{
		fmt.Sprintf("listener %d 127.0.0.1", port),
		"allow_anonymous true",
		"persistence true",
		"persistence_location " + opts.Dir + "/",
		"autosave_interval 0",
		"max_queued_messages 0",
		"max_queued_bytes 0",
		"log_dest stderr",
		"log_type error",
		"log_type warning",
		"log_type notice",
	}
	if os.Geteuid() == 0 {
		// Started as root, Mosquitto switches to the user "mosquitto", which
		// cannot write the persistence file into our root-owned temp dir:
		// every restart would then silently forget all sessions.
		lines = append(lines, "user root")
	}
	if opts.MaxInflight > 0 {
		lines = append(lines, fmt.Sprintf("max_inflight_messages %d", opts.MaxInflight))
	}
	lines = append(lines, opts.Extra...)
	if err := os.WriteFile(m.conf, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		return nil, fmt.Errorf("writing mosquitto config: %w", err)
	}
	if err := m.start(ctx); err != nil {
		return nil, err
	}
	return m, nil
}

// Addr is host:port of the listener.
func (m *Mosquitto) Addr() string { return fmt.Sprintf("127.0.0.1:%d", m.port) }

// URL is the tcp:// URL of the listener.
func (m *Mosquitto) URL() string { return "tcp://" + m.Addr() }

// LogPath is the file that receives the broker's log.
func (m *Mosquitto) LogPath() string { return m.log }

// PID of the running broker, or 0.
func (m *Mosquitto) PID() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cmd == nil || m.cmd.Process == nil {
		return 0
	}
	return m.cmd.Process.Pid
}

func (m *Mosquitto) start(ctx context.Context) error {
	var lastErr error
	for attempt := 0; attempt < 20; attempt++ {
		logf, err := os.OpenFile(m.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return fmt.Errorf("opening mosquitto log: %w", err)
		}
		cmd := exec.Command("mosquitto", "-c", m.conf)
		cmd.Stdout, cmd.Stderr = logf, logf
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := cmd.Start(); err != nil {
			logf.Close()
			return fmt.Errorf("starting mosquitto: %w", err)
		}
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); logf.Close(); close(done) }()
		wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err = waitTCPOrExit(wctx, m.Addr(), done)
		cancel()
		if err == nil {
			m.mu.Lock()
			m.cmd, m.done = cmd, done
			m.mu.Unlock()
			return nil
		}
		lastErr = err
		_ = cmd.Process.Kill()
		<-done
		// The port may still be held by the previous instance; retry.
		select {
		case <-ctx.Done():
			return fmt.Errorf("starting mosquitto: %w", ctx.Err())
		case <-time.After(250 * time.Millisecond):
		}
	}
	return fmt.Errorf("mosquitto did not come up on %s: %w\nlog:\n%s", m.Addr(), lastErr, TailFile(m.log, 2000))
}

func waitTCPOrExit(ctx context.Context, addr string, exited <-chan struct{}) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-exited:
			cancel()
		case <-ctx.Done():
		}
	}()
	return WaitTCP(ctx, addr)
}

// Stop sends SIGTERM (Mosquitto then writes its persistence database) and
// waits up to timeout, then SIGKILLs. It reports whether the stop was graceful.
func (m *Mosquitto) Stop(timeout time.Duration) (graceful bool) {
	m.mu.Lock()
	cmd, done := m.cmd, m.done
	m.cmd, m.done = nil, nil
	m.mu.Unlock()
	if cmd == nil {
		return true
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
		return true
	case <-time.After(timeout):
		_ = cmd.Process.Kill()
		<-done
		return false
	}
}

// Start starts a stopped broker again on the same port, with the sessions
// and queued messages it saved at its graceful stop.
func (m *Mosquitto) Start(ctx context.Context) error {
	m.mu.Lock()
	running := m.cmd != nil
	m.mu.Unlock()
	if running {
		return errors.New("mosquitto is running")
	}
	return m.start(ctx)
}

// Restart stops the broker gracefully and starts it again on the same port.
func (m *Mosquitto) Restart(ctx context.Context) error {
	if !m.Stop(15 * time.Second) {
		return errors.New("mosquitto did not exit within 15s of SIGTERM (killed; persistence may be stale)")
	}
	return m.start(ctx)
}

// Close kills the broker (used in cleanup).
func (m *Mosquitto) Close() { m.Stop(5 * time.Second) }

// PersistenceErrors returns the broker's log lines that report a failure to
// save or load its persistence database (a broker that forgets its sessions
// would make losses that are not ours).
func (m *Mosquitto) PersistenceErrors() []string {
	b, err := os.ReadFile(m.log)
	if err != nil {
		return nil
	}
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.Contains(l, "Error saving") || strings.Contains(l, "Error: Permission denied") ||
			strings.Contains(l, "Error restoring") || strings.Contains(l, "Error loading") {
			out = append(out, l)
		}
	}
	return out
}
