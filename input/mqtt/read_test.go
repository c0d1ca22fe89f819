package mqtt

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"
)

// TestNaturalBatchesRetryOnlyFailed: messages that arrive while the pipeline
// is busy come as one batch; when the output fails some messages of a batch,
// only those are delivered again, and every message is acknowledged to the
// broker once delivered.
func TestNaturalBatchesRetryOnlyFailed(t *testing.T) {
	b := newTestBroker(t, false)
	id := runID(t)
	const n = 50
	release := make(chan struct{})
	var mu sync.Mutex
	attempts := map[int]int{}
	var sizes []int
	ts := startStreamWith(t, fmt.Sprintf(`
urls: [ %s ]
client_id: %s-bridge
max_unacked: 100
topic_mappings:
  - mqtt_topic: %[2]s/#
    danube_topic: /t/x
    qos: 1
`, b.url(), id), nil, func(_ *service.Environment, sb *service.StreamBuilder) {
		err := sb.AddBatchConsumerFunc(func(ctx context.Context, batch service.MessageBatch) error {
			select {
			case <-release:
			case <-ctx.Done():
				return ctx.Err()
			}
			mu.Lock()
			defer mu.Unlock()
			sizes = append(sizes, len(batch))
			var bErr *service.BatchError
			for i, m := range batch {
				body, _ := m.AsBytes()
				k, _ := strconv.Atoi(strings.TrimPrefix(string(body), "m"))
				attempts[k]++
				if k%5 == 0 && attempts[k] == 1 {
					if bErr == nil {
						bErr = service.NewBatchError(batch, errors.New("some failed"))
					}
					bErr.Failed(i, errors.New("output refused it"))
				}
			}
			if bErr != nil {
				return bErr
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	})
	ts.waitConnected(t)
	pub := newPublisher(t, b.url(), id+"-pub", true)
	for i := range n {
		pub.publishWait(t, id+"/d", 1, fmt.Sprintf("m%d", i))
	}
	waitFor(t, 10*time.Second, "all messages in the input", func() bool { return ts.in.unacked.Load()+int64(ts.in.q.len()) == n })
	close(release)
	waitFor(t, 20*time.Second, "every message delivered", func() bool {
		mu.Lock()
		defer mu.Unlock()
		if len(attempts) < n {
			return false
		}
		for k := range n {
			want := 1
			if k%5 == 0 {
				want = 2
			}
			if attempts[k] < want {
				return false
			}
		}
		return true
	})
	waitFor(t, 10*time.Second, "every PUBACK", func() bool { return b.obs.totalAcks(id+"-bridge") >= n })
	mu.Lock()
	defer mu.Unlock()
	for k := range n {
		want := 1
		if k%5 == 0 {
			want = 2
		}
		if attempts[k] != want {
			t.Errorf("m%d: %d deliveries, want %d", k, attempts[k], want)
		}
	}
	biggest := 0
	for _, s := range sizes {
		biggest = max(biggest, s)
	}
	if biggest < 10 {
		t.Errorf("batch sizes %v: the messages that waited did not come as one natural batch", sizes)
	}
	t.Logf("batch sizes %v", sizes)
}

func TestDueRetries(t *testing.T) {
	in := &input{retryNotify: make(chan struct{}, 1)}
	now := time.Now()
	for i := range 5 {
		in.retries = append(in.retries, &delivery{at: int64(i), due: now.Add(time.Duration(i-2) * time.Second)})
	}
	in.nRetries.Store(5)
	due, wait := in.dueRetries(now, 2)
	if len(due) != 2 || due[0].at != 0 || due[1].at != 1 {
		t.Fatalf("due %v", due)
	}
	if wait != time.Millisecond {
		t.Fatalf("wait %v: a due retry is left, want 1ms", wait)
	}
	due, wait = in.dueRetries(now, 10)
	if len(due) != 1 || due[0].at != 2 || wait != time.Second || in.nRetries.Load() != 2 || len(in.retries) != 2 {
		t.Fatalf("due %d, wait %v, left %d/%d", len(due), wait, in.nRetries.Load(), len(in.retries))
	}
}
