package harness

import (
	"context"
	"testing"
	"time"
)

// TestMosquittoRestartKeepsQueuedMessages checks the premise of the chaos
// soak: with persistent sessions on both sides and graceful restarts, the
// MQTT broker itself loses nothing, so a loss in the soak can only be ours.
func TestMosquittoRestartKeepsQueuedMessages(t *testing.T) {
	if testing.Short() {
		t.Skip("starts mosquitto")
	}
	mq := NewTestMosquitto(t, MosquittoOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	sub, err := NewSubscriber(SubscriberConfig{URL: mq.URL(), ClientID: "h-witness", Filter: "h/+/d", QoS: 1, Parse: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sub.Close)
	ledger := NewLedger()
	pub, err := NewPublisher(PublisherConfig{URL: mq.URL(), ClientID: "h-pub", Topic: func(d string) string { return "h/" + d + "/d" },
		Devices: []string{"a", "b"}, Rate: 400, QoS: 1, Ledger: ledger, RetryAfter: 20 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pub.Close)
	lctx, stop := context.WithTimeout(ctx, 3*time.Second)
	defer stop()
	done := make(chan struct{})
	go func() { pub.Run(lctx); close(done) }()
	time.Sleep(time.Second)
	if err := mq.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	if err := mq.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	<-done
	fctx, fcancel := context.WithTimeout(ctx, 20*time.Second)
	defer fcancel()
	pub.Flush(fctx)
	waitWitnessed(t, ledger, sub, 0)
	attempted, acked, retries := ledger.Counts()
	t.Logf("attempted %d acked %d retries %d, witness got %d (dups incl.)", attempted, acked, retries, sub.Count())
}

// waitWitnessed waits until every id the ledger holds is PUBACKed (and, with
// want > 0, want of them are) and the subscriber saw every PUBACKed id.
func waitWitnessed(t *testing.T, ledger *Ledger, sub *Subscriber, want int) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		missing := 0
		for id, e := range ledger.Snapshot() {
			if e.Acked && !sub.Seen(id) {
				missing++
			}
		}
		attempted, acked, _ := ledger.Counts()
		if missing == 0 && acked == attempted && (want == 0 || acked == want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("attempted %d acked %d (want %d): %d PUBACKed messages never reached the persistent subscriber", attempted, acked, want, missing)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestMosquittoKeepsOfflineQueueAcrossRestart: messages queued for an offline
// persistent session survive a graceful broker restart.
func TestMosquittoKeepsOfflineQueueAcrossRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("starts mosquitto")
	}
	mq := NewTestMosquitto(t, MosquittoOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cfg := SubscriberConfig{URL: mq.URL(), ClientID: "o-witness", Filter: "o/+/d", QoS: 1, Parse: true}
	sub, err := NewSubscriber(cfg)
	if err != nil {
		t.Fatal(err)
	}
	sub.Close() // offline, session kept
	ledger := NewLedger()
	pub, err := NewPublisher(PublisherConfig{URL: mq.URL(), ClientID: "o-pub", Topic: func(d string) string { return "o/" + d + "/d" },
		Devices: []string{"a"}, QoS: 1, Ledger: ledger, Limit: 3000})
	if err != nil {
		t.Fatal(err)
	}
	pub.Run(ctx)
	fctx, fcancel := context.WithTimeout(ctx, 20*time.Second)
	defer fcancel()
	pub.Flush(fctx)
	pub.Close()
	if err := mq.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	sub, err = NewSubscriber(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sub.Close)
	waitWitnessed(t, ledger, sub, 3000)
}

func TestDisplaced(t *testing.T) {
	count := func(s []int64) int {
		n := 0
		for _, d := range Displaced(s) {
			if d {
				n++
			}
		}
		return n
	}
	for _, c := range []struct {
		seqs []int64
		want int
	}{
		{nil, 0},
		{[]int64{1, 2, 3}, 0},
		{[]int64{1, 100, 2, 3, 4, 5}, 1}, // one jumps ahead: 1, not 4
		{[]int64{3, 4, 5, 1, 2}, 2},      // two arrive late
		{[]int64{2, 1}, 1},
		{[]int64{5, 4, 3, 2, 1}, 4},
	} {
		if got := count(c.seqs); got != c.want {
			t.Errorf("Displaced(%v) = %d, want %d", c.seqs, got, c.want)
		}
	}
}
