package harness

import (
	"context"
	"fmt"
	"strings"

	"github.com/benthos-danube/benthos-danube/internal/danube/danubetest"
)

// PartitionNames returns the names of topic's n partitions
// ("<topic>-part-0" …), or topic itself when n is 0.
func PartitionNames(topic string, n int) []string {
	if n == 0 {
		return []string{topic}
	}
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s-part-%d", topic, i)
	}
	return out
}

// WaitAny blocks until one of the exact topics holds a message, through
// srv.WaitForMessages, or ctx is done.
func WaitAny(ctx context.Context, srv *danubetest.Server, topics ...string) error {
	if len(topics) == 0 {
		return fmt.Errorf("WaitAny: no topic")
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errs := make(chan error, len(topics))
	for _, tn := range topics {
		go func() { errs <- srv.WaitForMessages(ctx, tn, 1) }()
	}
	var last error
	for range topics {
		err := <-errs
		if err == nil {
			return nil
		}
		last = err
	}
	return fmt.Errorf("waiting for a message on %s: %w", strings.Join(topics, ", "), last)
}
