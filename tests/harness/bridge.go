package harness

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"
)

// Bridge runs the benthos-danube binary as a subprocess with one config
// file, restarts it on demand and samples its memory.
type Bridge struct {
	bin    string
	config string
	logDir string

	mu         sync.Mutex
	cmd        *exec.Cmd
	done       chan struct{}
	starts     int
	expected   bool // the current process is being stopped on purpose
	unexpected []string
	peak       ProcMem // highest VmHWM / VmRSS over all processes
	stopSample chan struct{}
	sampleWG   sync.WaitGroup
	logPath    string
	// Env is added to the bridge's environment (e.g. "GOGC=400").
	Env []string
}

// NewBridge prepares a bridge; config is the YAML text written to logDir.
func NewBridge(bin, logDir, config string) (*Bridge, error) {
	p := filepath.Join(logDir, "bridge.yaml")
	if err := os.WriteFile(p, []byte(config), 0o644); err != nil {
		return nil, fmt.Errorf("writing bridge config: %w", err)
	}
	return &Bridge{bin: bin, config: p, logDir: logDir}, nil
}

// ConfigPath is the path of the YAML config.
func (b *Bridge) ConfigPath() string { return b.config }

// Start launches a new bridge process. It must not be running.
func (b *Bridge) Start() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.cmd != nil {
		return errors.New("bridge already running")
	}
	b.starts++
	b.logPath = filepath.Join(b.logDir, fmt.Sprintf("bridge-%03d.log", b.starts))
	logf, err := os.Create(b.logPath)
	if err != nil {
		return fmt.Errorf("creating bridge log: %w", err)
	}
	cmd := exec.Command(b.bin, "-c", b.config)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if len(b.Env) > 0 {
		cmd.Env = append(os.Environ(), b.Env...)
	}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("starting bridge: %w", err)
	}
	done := make(chan struct{})
	b.cmd, b.done, b.expected = cmd, done, false
	stop := make(chan struct{})
	b.stopSample = stop
	logPath := b.logPath
	go func() {
		err := cmd.Wait()
		logf.Close()
		b.mu.Lock()
		if !b.expected {
			b.unexpected = append(b.unexpected, fmt.Sprintf("bridge pid %d exited on its own: %v; log %s:\n%s",
				cmd.Process.Pid, err, logPath, TailFile(logPath, 3000)))
			b.cmd, b.done = nil, nil
		}
		b.mu.Unlock()
		close(done)
	}()
	b.sampleWG.Add(1)
	go b.sample(cmd.Process.Pid, stop, done)
	return nil
}

func (b *Bridge) sample(pid int, stop, done <-chan struct{}) {
	defer b.sampleWG.Done()
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	for {
		b.record(pid)
		select {
		case <-stop:
			return
		case <-done:
			return
		case <-t.C:
		}
	}
}

func (b *Bridge) record(pid int) {
	m, err := ReadProcMem(pid)
	if err != nil {
		return
	}
	b.mu.Lock()
	if m.HWM > b.peak.HWM {
		b.peak.HWM = m.HWM
	}
	if m.RSS > b.peak.RSS {
		b.peak.RSS = m.RSS
	}
	b.mu.Unlock()
}

// PID of the running process, or 0.
func (b *Bridge) PID() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.cmd == nil {
		return 0
	}
	return b.cmd.Process.Pid
}

// Running reports whether a bridge process is up.
func (b *Bridge) Running() bool { return b.PID() != 0 }

// Stop signals the process and waits up to timeout for it to exit; after
// that it SIGKILLs. It returns how long the exit took and whether it was
// forced.
func (b *Bridge) Stop(sig syscall.Signal, timeout time.Duration) (took time.Duration, forced bool, err error) {
	b.mu.Lock()
	cmd, done, stop := b.cmd, b.done, b.stopSample
	if cmd == nil {
		b.mu.Unlock()
		return 0, false, errors.New("bridge not running")
	}
	b.expected = true
	b.mu.Unlock()
	b.record(cmd.Process.Pid) // last VmHWM before the process goes
	start := time.Now()
	if err := cmd.Process.Signal(sig); err != nil {
		return 0, false, fmt.Errorf("signalling bridge: %w", err)
	}
	select {
	case <-done:
	case <-time.After(timeout):
		forced = true
		_ = cmd.Process.Kill()
		<-done
	}
	took = time.Since(start)
	close(stop)
	b.mu.Lock()
	b.cmd, b.done = nil, nil
	b.mu.Unlock()
	return took, forced, nil
}

// Restart stops with sig (bounded by timeout) and starts a new process.
func (b *Bridge) Restart(sig syscall.Signal, timeout time.Duration) (took time.Duration, forced bool, err error) {
	if b.Running() {
		took, forced, err = b.Stop(sig, timeout)
		if err != nil {
			return took, forced, err
		}
	}
	return took, forced, b.Start()
}

// Supervise restarts the bridge when it exited on its own, until ctx is done.
func (b *Bridge) Supervise(ctx context.Context) {
	t := time.NewTicker(500 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		b.mu.Lock()
		down := b.cmd == nil && !b.expected && len(b.unexpected) > 0
		b.mu.Unlock()
		if down {
			_ = b.Start()
		}
	}
}

// Unexpected lists the exits the harness did not cause.
func (b *Bridge) Unexpected() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.unexpected...)
}

// Peak is the highest VmHWM and VmRSS seen over every bridge process.
func (b *Bridge) Peak() ProcMem {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.peak
}

// Starts is how many processes were started.
func (b *Bridge) Starts() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.starts
}

// LogPath is the log file of the latest process.
func (b *Bridge) LogPath() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.logPath
}

// Close kills the process if it runs and waits for the samplers.
func (b *Bridge) Close() {
	if b.Running() {
		_, _, _ = b.Stop(syscall.SIGKILL, 5*time.Second)
	}
	b.sampleWG.Wait()
}
