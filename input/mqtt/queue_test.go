package mqtt

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/redpanda-data/benthos/v4/public/service"
)

// qosMsg is a paho message of a given QoS for queue tests.
type qosMsg struct {
	paho.Message
	qos byte
}

func (m qosMsg) Qos() byte { return m.qos }

// pushAsync pushes m on its own goroutine and returns push's answer.
func pushAsync(q *queue, m message, stop <-chan struct{}) <-chan bool {
	done := make(chan bool, 1)
	go func() { done <- q.push(m, 0, stop) }()
	return done
}

// TestQueueBackPressure: a full queue holds a push of any QoS until the
// pipeline takes a message. When it takes none for maxBlock, the pipeline is
// stalled: the push that waited drops its message if it is QoS 0 and keeps
// it over the bound if it is QoS 1/2, and until the pipeline takes a message
// no push waits any more (one wait of maxBlock per stall, whatever the mix of
// QoS, so paho's reader is never held for the ping timeout). stop releases a
// held push without queueing its message.
func TestQueueBackPressure(t *testing.T) {
	for _, tc := range []struct {
		name          string
		qos           byte
		keptOnTimeout bool
	}{
		{"qos0 sheds", 0, false},
		{"qos1 overflows", 1, true},
		{"qos2 overflows", 2, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := newQueue(2, 200*time.Millisecond)
			stop := make(chan struct{})
			m := qosMsg{qos: tc.qos}
			for range 2 {
				if !q.push(m, 0, stop) {
					t.Fatal("push into a queue with room failed")
				}
			}
			// Held until a pop makes room.
			done := pushAsync(q, m, stop)
			select {
			case <-done:
				t.Fatal("push into a full queue did not wait")
			case <-time.After(50 * time.Millisecond):
			}
			if _, ok := q.pop(); !ok {
				t.Fatal("pop")
			}
			select {
			case ok := <-done:
				if !ok {
					t.Fatal("the held push lost its message although room was made")
				}
			case <-time.After(time.Second):
				t.Fatal("the held push was not released by the pop")
			}
			// Nothing taken for maxBlock.
			start := time.Now()
			if got := q.push(m, 0, stop); got != tc.keptOnTimeout {
				t.Fatalf("push into a stalled full queue: kept %v, want %v", got, tc.keptOnTimeout)
			}
			if d := time.Since(start); d < q.maxBlock {
				t.Fatalf("gave up after %v, before maxBlock", d)
			}
			// Then no push waits: QoS 0 is dropped, QoS 1/2 kept.
			for _, after := range []struct {
				qos  byte
				kept bool
			}{{0, false}, {1, true}, {2, true}} {
				start = time.Now()
				if got := q.push(qosMsg{qos: after.qos}, 0, stop); got != after.kept || time.Since(start) > 50*time.Millisecond {
					t.Fatalf("QoS %d push in the stall: kept %v after %v, want %v at once", after.qos, got, time.Since(start), after.kept)
				}
			}
			wantLen := 4
			if tc.keptOnTimeout {
				wantLen = 5
			}
			if n := q.len(); n != wantLen {
				t.Fatalf("queue holds %d, want %d", n, wantLen)
			}
			// A pop ends it: the queue is still full (or over), so the
			// next push waits again.
			if _, ok := q.pop(); !ok {
				t.Fatal("pop")
			}
			for q.len() >= 2 {
				if _, ok := q.pop(); !ok {
					t.Fatal("pop")
				}
			}
			if !q.push(m, 0, stop) {
				t.Fatal("push after the pipeline took messages lost its message")
			}
			done = pushAsync(q, m, stop)
			select {
			case <-done:
				t.Fatal("push into a full queue did not wait after the pipeline took a message")
			case <-time.After(50 * time.Millisecond):
			}
			// stop releases the held push.
			close(stop)
			select {
			case ok := <-done:
				if ok {
					t.Fatal("a push released by stop queued its message")
				}
			case <-time.After(time.Second):
				t.Fatal("stop did not release the held push")
			}
			if n := q.len(); n != 2 {
				t.Fatalf("queue holds %d after stop, want 2", n)
			}
		})
	}
}

// TestQueueBoundsAFloodAtQoS1 floods a private Mosquitto at QoS 1 faster
// than a slow pipeline takes messages. Mosquitto's in-flight window
// (max_inflight_messages 20) does not hold once acknowledgements flow, so
// without the queue's own bound the input read the whole flood into memory;
// with it, no more than max_unacked messages ever wait, nothing is lost, and
// the connection stays up.
func TestQueueBoundsAFloodAtQoS1(t *testing.T) {
	b := newMosquitto(t)
	const (
		n          = 6000
		maxUnacked = 50
	)
	rec := newReceived()
	ts := startStream(t, fmt.Sprintf(`urls: [ %q ]
client_id: flood-%s
clean_session: false
max_unacked: %d
topic_mappings:
  - { mqtt_topic: "flood/+", danube_topic: /default/flood, qos: 1 }
`, b.url(), runID(t), maxUnacked), func(ctx context.Context, m *service.Message) error {
		time.Sleep(100 * time.Microsecond) // a pipeline slower than the flood
		rec.add(m)
		return nil
	})
	ts.waitConnected(t)

	var maxQueued int
	sampled := make(chan struct{})
	stopSampling := make(chan struct{})
	go func() {
		defer close(sampled)
		tk := time.NewTicker(2 * time.Millisecond)
		defer tk.Stop()
		for {
			select {
			case <-stopSampling:
				return
			case <-tk.C:
				maxQueued = max(maxQueued, ts.in.q.len())
			}
		}
	}()
	var wg sync.WaitGroup
	want := make([]string, 0, n)
	for k := range 2 {
		ids := ids(fmt.Sprintf("p%d-", k), n/2)
		want = append(want, ids...)
		wg.Add(1)
		go func() {
			defer wg.Done()
			p := newPublisher(t, b.url(), fmt.Sprintf("flood-pub-%d-%s", k, runID(t)), true)
			toks := make([]paho.Token, 0, len(ids))
			for i, id := range ids {
				toks = append(toks, p.publish(t, fmt.Sprintf("flood/d%d", i%10), 1, id))
			}
			for _, tok := range toks {
				if !tok.WaitTimeout(60*time.Second) || tok.Error() != nil {
					t.Errorf("publish: %v", tok.Error())
					return
				}
			}
		}()
	}
	wg.Wait()
	deadline := time.Now().Add(60 * time.Second)
	for rec.unique() < n && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	close(stopSampling)
	<-sampled
	if missing, sample := rec.missing(want); missing > 0 {
		t.Fatalf("%d of %d missing, e.g. %v", missing, n, sample)
	}
	if maxQueued > maxUnacked {
		t.Errorf("up to %d messages waited in the input, more than max_unacked (%d): the queue is not bounded", maxQueued, maxUnacked)
	}
	if lost := ts.metrics.counter(metricReconnects); lost > 0 {
		t.Errorf("%d reconnects during the flood", lost)
	}
	t.Logf("at most %d messages waited in the input (max_unacked %d)", maxQueued, maxUnacked)
}

// TestQueueWakesAtLowWater: a push waiting on a full queue is woken once the
// pipeline took half of it, not for every message taken (the pipeline never
// runs dry meanwhile: half the queue still waits for it). A pipeline that
// took something is not stalled: when the push's maxBlock passes, it queues
// its message, QoS 0 included.
func TestQueueWakesAtLowWater(t *testing.T) {
	fill := func(t *testing.T, maxBlock time.Duration) (*queue, chan struct{}) {
		t.Helper()
		q := newQueue(4, maxBlock)
		stop := make(chan struct{})
		for range 4 {
			if !q.push(qosMsg{}, 0, stop) {
				t.Fatal("push into a queue with room failed")
			}
		}
		return q, stop
	}
	t.Run("woken at half", func(t *testing.T) {
		q, stop := fill(t, 10*time.Second)
		done := pushAsync(q, qosMsg{}, stop)
		time.Sleep(20 * time.Millisecond)
		q.pop() // 3 left: above the low-water mark of 2
		select {
		case <-done:
			t.Fatal("the push was woken above the low-water mark")
		case <-time.After(100 * time.Millisecond):
		}
		q.pop() // 2 left
		select {
		case ok := <-done:
			if !ok {
				t.Fatal("the push lost its message")
			}
		case <-time.After(time.Second):
			t.Fatal("the push was not woken at the low-water mark")
		}
	})
	t.Run("progress is not a stall", func(t *testing.T) {
		q, stop := fill(t, 200*time.Millisecond)
		start := time.Now()
		done := pushAsync(q, qosMsg{}, stop)
		time.Sleep(50 * time.Millisecond)
		q.pop()
		select {
		case ok := <-done:
			if !ok {
				t.Fatal("a QoS 0 push was dropped although the pipeline took a message")
			}
			if d := time.Since(start); d < q.maxBlock {
				t.Fatalf("released after %v, before maxBlock and above the low-water mark", d)
			}
		case <-time.After(time.Second):
			t.Fatal("the push was not released when its maxBlock passed")
		}
		if q.stalled {
			t.Fatal("the queue counts as stalled")
		}
	})
}

// TestMaxBlockFollowsThePinger: the reader is never held for as long as the
// transport waits for a PINGRESP (paho.mqtt.golang: 10 s; paho.golang: one
// keep-alive interval).
func TestMaxBlockFollowsThePinger(t *testing.T) {
	for _, tc := range []struct {
		protocol  string
		keepalive time.Duration
		want      time.Duration
	}{
		{protocol311, 3 * time.Second, qos0MaxBlock},
		{protocol311, 30 * time.Second, qos0MaxBlock},
		{protocol5, 3 * time.Second, 1500 * time.Millisecond},
		{protocol5, 30 * time.Second, qos0MaxBlock},
		{protocol5, 0, qos0MaxBlock},
	} {
		if got := maxBlockFor(&config{protocol: tc.protocol, keepalive: tc.keepalive}); got != tc.want {
			t.Errorf("MQTT %s, keepalive %v: %v, want %v", tc.protocol, tc.keepalive, got, tc.want)
		}
	}
}
