package componenttest

import (
	"fmt"
	"testing"
	"time"
)

// fakeTB records Fatalf instead of stopping the test.
type fakeTB struct {
	fatal    string
	cleanups []func()
}

func (f *fakeTB) Helper()                        {}
func (f *fakeTB) Fatalf(format string, a ...any) { f.fatal = fmt.Sprintf(format, a...) }
func (f *fakeTB) Cleanup(fn func())              { f.cleanups = append(f.cleanups, fn) }

func TestWaitFor(t *testing.T) {
	var f fakeTB
	n := 0
	WaitFor(&f, time.Second, "three calls", func() bool { n++; return n == 3 })
	if f.fatal != "" || n != 3 {
		t.Fatalf("fatal %q after %d calls", f.fatal, n)
	}
	WaitFor(&f, 30*time.Millisecond, "never", func() bool { return false })
	if want := "timed out after 30ms waiting for never"; f.fatal != want {
		t.Fatalf("fatal %q, want %q", f.fatal, want)
	}
}
