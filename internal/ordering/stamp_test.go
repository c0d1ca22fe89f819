package ordering

import (
	"context"
	"testing"

	"github.com/redpanda-data/benthos/v4/public/service"
)

// testKey is the stamp key of these tests.
const testKey = "test_output_seq"

func TestStamperNumbersBatches(t *testing.T) {
	s := &stamper{key: testKey}
	for _, tc := range []struct {
		size int
		want int64
	}{{3, 1}, {1, 4}, {5, 5}, {0, 0}, {2, 10}} {
		b := make(service.MessageBatch, tc.size)
		for i := range b {
			b[i] = service.NewMessage(nil)
		}
		out, err := s.ProcessBatch(context.Background(), b)
		if err != nil || len(out) != 1 || len(out[0]) != tc.size {
			t.Fatalf("ProcessBatch(%d messages) = %v, %v", tc.size, out, err)
		}
		if got := BatchStamp(out[0], testKey); got != tc.want {
			t.Fatalf("batch of %d: stamp %d, want %d", tc.size, got, tc.want)
		}
		for i := 1; i < tc.size; i++ {
			if _, ok := b[i].MetaGetMut(testKey); ok {
				t.Fatalf("message %d of a batch carries a stamp; only the first should", i)
			}
		}
	}
}

// BenchmarkStamp compares stamping the first message of a batch with
// stamping every message, on messages that share their metadata with the
// input's copy (as Benthos' messages do after the input) and already carry
// the mqtt input's eight keys.
func BenchmarkStamp(b *testing.B) {
	batch := func() service.MessageBatch {
		mb := make(service.MessageBatch, 64)
		for i := range mb {
			m := service.NewMessage([]byte("x"))
			for _, k := range []string{"mqtt_topic", "mqtt_qos", "mqtt_retained", "mqtt_duplicate", "mqtt_message_id", "danube_topic", "danube_partitions", "danube_reliable_dispatch"} {
				m.MetaSetMut(k, 1)
			}
			mb[i] = m.Copy()
		}
		return mb
	}
	b.Run("first_message", func(b *testing.B) {
		s := &stamper{key: testKey}
		for b.Loop() {
			b.StopTimer()
			mb := batch()
			b.StartTimer()
			_, _ = s.ProcessBatch(context.Background(), mb)
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*64), "ns/msg")
	})
	b.Run("every_message", func(b *testing.B) {
		var n int64
		for b.Loop() {
			b.StopTimer()
			mb := batch()
			b.StartTimer()
			for _, m := range mb {
				n++
				m.MetaSetMut(testKey, n)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*64), "ns/msg")
	})
}
