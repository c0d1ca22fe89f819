package drain

import (
	"context"
	"testing"
	"time"
)

func TestGate(t *testing.T) {
	var g Gate
	done, ok := g.Enter()
	if !ok {
		t.Fatal("an open gate refused a call")
	}
	drained, first := g.Close()
	if !first {
		t.Fatal("the first Close was not reported as first")
	}
	if _, ok := g.Enter(); ok || !g.Closed() {
		t.Fatal("a closed gate let a call in")
	}
	select {
	case <-drained:
		t.Fatal("drained while a call was in flight")
	case <-time.After(20 * time.Millisecond):
	}
	done()
	Wait(context.Background(), drained, 5*time.Second)
	select {
	case <-drained:
	default:
		t.Fatal("not drained after the last call ended")
	}
	if _, first := g.Close(); first {
		t.Fatal("a second Close was reported as first")
	}
}

func TestWaitIsBounded(t *testing.T) {
	var g Gate
	done, _ := g.Enter()
	defer done()
	drained, _ := g.Close()
	start := time.Now()
	Wait(context.Background(), drained, 30*time.Millisecond)
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("Wait took %v with a bound of 30ms", d)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	Wait(ctx, drained, time.Hour)
}
