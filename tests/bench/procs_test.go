package bench

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/benthos-danube/benthos-danube/tests/harness"
)

// buildPrograms builds the minimal bridge and the raw subscriber of the
// test tree into dir.
func buildPrograms(ctx context.Context, dir string) (mini, raw string, err error) {
	if mini, err = harness.Build(ctx, dir, "./tests/bench/minibridge"); err != nil {
		return "", "", err
	}
	if raw, err = harness.Build(ctx, dir, "./tests/bench/rawsub"); err != nil {
		return "", "", err
	}
	return mini, raw, nil
}

// program is a process under test besides the bridge (the minimal bridge,
// the raw subscriber), started once for the whole run.
type program struct {
	name    string
	logPath string
	cmd     *exec.Cmd
	done    chan struct{}

	mu       sync.Mutex
	stopping bool
	exited   string
}

func startProgram(name, bin, logDir string, env []string, args ...string) (*program, error) {
	p := &program{name: name, logPath: filepath.Join(logDir, name+".log"), done: make(chan struct{})}
	logf, err := os.Create(p.logPath)
	if err != nil {
		return nil, fmt.Errorf("creating %s log: %w", name, err)
	}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Stdout, p.cmd.Stderr = logf, logf
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if len(env) > 0 {
		p.cmd.Env = append(os.Environ(), env...)
	}
	if err := p.cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	go func() {
		err := p.cmd.Wait()
		logf.Close()
		p.mu.Lock()
		if !p.stopping {
			p.exited = fmt.Sprintf("%s (pid %d) exited on its own: %v; log %s:\n%s", name, p.cmd.Process.Pid, err,
				p.logPath, harness.TailFile(p.logPath, 3000))
		}
		p.mu.Unlock()
		close(p.done)
	}()
	return p, nil
}

// PID of the process.
func (p *program) PID() int { return p.cmd.Process.Pid }

// Unexpected describes an exit the benchmark did not cause, or is "".
func (p *program) Unexpected() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.exited
}

// Close sends SIGTERM, then SIGKILL after 5 s.
func (p *program) Close() {
	p.mu.Lock()
	p.stopping = true
	p.mu.Unlock()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// countLines counts the lines of a file that contain every one of words.
func countLines(path string, words ...string) int {
	f, err := os.Open(path)
	if err != nil {
		return 0
	}
	defer f.Close()
	n := 0
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
next:
	for sc.Scan() {
		for _, w := range words {
			if !strings.Contains(sc.Text(), w) {
				continue next
			}
		}
		n++
	}
	return n
}

// rawStats reads the raw subscriber's counters.
func (e *env) rawStats() (n int64, first, last time.Time, err error) {
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/stats", e.rawPort))
	if err != nil {
		return 0, first, last, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, first, last, err
	}
	var f, l int64
	if _, err := fmt.Sscan(string(b), &n, &f, &l); err != nil {
		return 0, first, last, fmt.Errorf("raw subscriber stats %q: %w", b, err)
	}
	return n, time.Unix(0, f), time.Unix(0, l), nil
}

// rawReceived polls the raw subscriber's counter (an HTTP endpoint of
// another process) until it received a message or ctx is done.
func (e *env) rawReceived(ctx context.Context) error {
	for {
		if n, _, _, err := e.rawStats(); err == nil && n > 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (e *env) rawReset() {
	resp, err := http.Post(fmt.Sprintf("http://127.0.0.1:%d/reset", e.rawPort), "text/plain", nil)
	if err != nil {
		e.t.Fatalf("resetting the raw subscriber: %v", err)
	}
	resp.Body.Close()
}
