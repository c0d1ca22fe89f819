package danube_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/benthos-danube/benthos-danube/internal/danube"
	"github.com/benthos-danube/benthos-danube/internal/danube/danubetest"
)

// BenchmarkProducerSend measures messages per second from one producer
// sending 256-byte messages with 1, 8 and 64 sends in flight against the
// in-memory test broker on loopback.
func BenchmarkProducerSend(b *testing.B) {
	srv := danubetest.NewTestServer(b)
	c := newClient(b, srv.URL())
	payload := make([]byte, 256)
	for _, inflight := range []int{1, 8, 64} {
		b.Run(fmt.Sprintf("inflight_%d", inflight), func(b *testing.B) {
			p := newProducer(b, c, danube.ProducerConfig{Topic: fmt.Sprintf("/default/bench-%d-%d", inflight, b.N), Name: "bench"})
			ctx := context.Background()
			var next atomic.Int64
			var wg sync.WaitGroup
			var failed atomic.Value
			b.SetBytes(int64(len(payload)))
			b.ResetTimer()
			start := time.Now()
			for w := 0; w < inflight; w++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for next.Add(1) <= int64(b.N) {
						if err := p.Send(ctx, danube.Message{Payload: payload}); err != nil {
							failed.Store(err)
							return
						}
					}
				}()
			}
			wg.Wait()
			elapsed := time.Since(start)
			b.StopTimer()
			if err, _ := failed.Load().(error); err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs/s")
		})
	}
}
