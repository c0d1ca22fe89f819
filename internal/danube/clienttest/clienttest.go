// Package clienttest holds the helpers of tests that drive the Danube client
// (internal/danube) against a broker, such as danubetest's: the calls every
// such test repeats, bounded in time and failing the test on error.
//
// Like danubetest it takes a small TB interface instead of importing
// testing.
package clienttest

import (
	"context"
	"time"

	"github.com/benthos-danube/benthos-danube/internal/danube"
)

// TB is the part of testing.TB the helpers use.
type TB interface {
	Helper()
	Fatalf(format string, args ...any)
}

// SendTimeout bounds Send.
const SendTimeout = 10 * time.Second

// Send sends m with p within SendTimeout and fails the test on error.
func Send(t TB, p *danube.Producer, m danube.Message) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), SendTimeout)
	defer cancel()
	if err := p.Send(ctx, m); err != nil {
		t.Fatalf("Send to %s: %v", p.Topic(), err)
	}
}
