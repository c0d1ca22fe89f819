package danubetest

import (
	"syscall"
	"testing"
	"time"

	"github.com/benthos-danube/benthos-danube/internal/danubepb"
)

// processCPU returns the CPU time (user + system) this process has used.
func processCPU(t *testing.T) time.Duration {
	t.Helper()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		t.Fatalf("getrusage: %v", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// TestIdleCPUWhileDeliveryUnacked checks that a reliable delivery waiting
// for its ack costs the broker no CPU: the timer loop sleeps until the
// earliest deadline (the ack timeout) instead of waking itself again and
// again. The old loop burnt a full core here.
func TestIdleCPUWhileDeliveryUnacked(t *testing.T) {
	s := NewTestServer(t) // 30 s ack timeout: no deadline falls in the window
	st := dial(t, s)
	ctx := testCtx(t)
	const topic = "/default/idle-cpu"
	p, err := st.createProducer(ctx, topic, "p", reliable)
	mustOK(t, err)
	cid, err := st.subscribe(ctx, topic, "s", "c", danubepb.ConsumerRequest_Exclusive)
	mustOK(t, err)
	r := st.receive(t, cid)
	mustOK(t, p.send(ctx, "wait-for-ack"))
	m := r.next(t, 5*time.Second)

	// A nack with a long delay adds a future redelivery deadline too.
	mustOK(t, p.send(ctx, "nacked"))
	m2 := r.next(t, 5*time.Second)
	delay := uint64(20000)
	mustOK(t, st.nack(ctx, "s", m2, &delay))

	time.Sleep(100 * time.Millisecond) // let the dispatch settle
	const window = time.Second
	before := processCPU(t)
	time.Sleep(window)
	used := processCPU(t) - before
	t.Logf("process CPU over %v with one unacked and one delayed delivery: %v", window, used)
	if used > window/10 {
		t.Fatalf("the broker used %v of CPU in %v while idle (busy loop?); want < %v", used, window, window/10)
	}
	mustOK(t, st.ack(ctx, "s", m))
}
