// Package componenttest builds one of this repository's Benthos components
// (an input or an output) from YAML in a unit test, without a stream, and
// connects it: the steps every such test repeats. Like danubetest it takes
// a small TB interface instead of importing testing.
package componenttest

import (
	"context"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"
)

// TB is the part of testing.TB the helpers use.
type TB interface {
	Helper()
	Fatalf(format string, args ...any)
	Cleanup(func())
}

// Component is an input or output under test.
type Component interface {
	Connect(context.Context) error
	Close(context.Context) error
}

// ConnectTimeout bounds Connect.
const ConnectTimeout = 10 * time.Second

// New parses yaml with spec and builds the component with newC and res
// (service.MockResources() when nil). The component is closed on cleanup.
func New[C Component](t TB, spec *service.ConfigSpec, yaml string, res *service.Resources,
	newC func(*service.ParsedConfig, *service.Resources) (C, error)) C {
	t.Helper()
	conf, err := spec.ParseYAML(yaml, nil)
	if err != nil {
		t.Fatalf("parsing the config: %v", err)
	}
	if res == nil {
		res = service.MockResources()
	}
	c, err := newC(conf, res)
	if err != nil {
		t.Fatalf("building the component: %v", err)
	}
	t.Cleanup(func() { _ = c.Close(context.Background()) })
	return c
}

// Connect connects c within ConnectTimeout and returns the error.
func Connect(c Component) error {
	ctx, cancel := context.WithTimeout(context.Background(), ConnectTimeout)
	defer cancel()
	return c.Connect(ctx)
}

// MustConnect is Connect that fails the test on error.
func MustConnect(t TB, c Component) {
	t.Helper()
	if err := Connect(c); err != nil {
		t.Fatalf("connecting: %v", err)
	}
}

// WaitFor polls cond every 10 ms until it holds, and fails the test when
// timeout passes first, naming what it waited for.
func WaitFor(t TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}
