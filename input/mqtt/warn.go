package mqtt

import (
	"fmt"
	"sync"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"
)

// warnEvery is the minimum interval between two warnings of one kind.
const warnEvery = 10 * time.Second

// rateLimited logs one warning per warnEvery and counts the suppressed ones.
type rateLimited struct {
	mu         sync.Mutex
	last       time.Time
	suppressed int
}

func (r *rateLimited) warn(log *service.Logger, format string, args ...any) {
	r.mu.Lock()
	now := time.Now()
	if now.Sub(r.last) < warnEvery {
		r.suppressed++
		r.mu.Unlock()
		return
	}
	n := r.suppressed
	r.last, r.suppressed = now, 0
	r.mu.Unlock()
	if n > 0 {
		format += fmt.Sprintf(" (%d similar warnings suppressed)", n)
	}
	log.Warnf(format, args...)
}
