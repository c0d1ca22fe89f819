package danube

import (
	"context"
	"math/rand/v2"
	"time"
)

const (
	defaultMaxRetries  = 5
	defaultBaseBackoff = 200 * time.Millisecond
	defaultMaxBackoff  = 5 * time.Second
)

// retryPolicy is the linear, jittered backoff of the Danube clients:
// attempt k (0-based) sleeps uniformly in [L/2, L], L = min(base*(k+1), max).
type retryPolicy struct {
	maxRetries int
	base, max  time.Duration
}

func newRetryPolicy(maxRetries int, base, max time.Duration) retryPolicy {
	if maxRetries <= 0 {
		maxRetries = defaultMaxRetries
	}
	if base <= 0 {
		base = defaultBaseBackoff
	}
	if max <= 0 {
		max = defaultMaxBackoff
	}
	if max < base {
		max = base
	}
	return retryPolicy{maxRetries: maxRetries, base: base, max: max}
}

func (r retryPolicy) delay(attempt int) time.Duration {
	if attempt < 0 {
		attempt = 0
	}
	l := r.max
	if attempt < int(r.max/r.base) {
		l = r.base * time.Duration(attempt+1)
		if l > r.max {
			l = r.max
		}
	}
	half := l / 2
	return half + rand.N(half+1)
}

// sleepCtx sleeps for d unless one of the contexts ends first; it returns the
// error of the context that ended.
func sleepCtx(ctx, owner context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-owner.Done():
		return ErrClosed
	}
}
