package danubeout_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"
	"github.com/stretchr/testify/require"

	"github.com/benthos-danube/benthos-danube/internal/danube"
	"github.com/benthos-danube/benthos-danube/internal/danube/danubetest"
)

// BenchmarkOutputVsClient measures, in one run, the throughput of the raw
// client (64 sends in flight, 256-byte messages) and of a generate → danube
// pipeline (256-byte messages, max_in_flight 64), both against the test broker
// over loopback gRPC, and reports their ratio (goal ≥ 0.8). ratio_key_off is
// the same pipeline with `key: ""`, which skips the ordering stage.
//
//	go test -run '^$' -bench BenchmarkOutputVsClient -benchtime 20000x ./output/danube/
func BenchmarkOutputVsClient(b *testing.B) {
	const inFlight = 64
	payload := strings.Repeat("x", 256)
	n := b.N
	ctx := context.Background()

	srv := danubetest.NewTestServer(b)
	b.ResetTimer()

	// Raw client.
	c, err := danube.NewClient(srv.URL())
	require.NoError(b, err)
	defer c.Close()
	p, err := c.NewProducer(ctx, danube.ProducerConfig{Topic: "/default/bench_raw", Name: "bench-raw"})
	require.NoError(b, err)
	body := []byte(payload)
	var next atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range inFlight {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(n) {
				if err := p.Send(ctx, danube.Message{Payload: body}); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	raw := time.Since(start)
	_ = p.Close()

	// Output.
	env := newEnv(b)
	start = time.Now()
	err = runPipeline(b, env, fmt.Sprintf(`
generate: { count: %d, interval: "", mapping: 'root = "%s"' }
`, n, payload), fmt.Sprintf(`
danube: { url: %s, topic: /default/bench_out, max_in_flight: %d }
`, srv.URL(), inFlight), 10*time.Minute)
	out := time.Since(start)
	require.NoError(b, err)
	require.Equal(b, n, srv.MessageCount("/default/bench_out"))

	// The same pipeline with `key: ""`: no ordering stage.
	start = time.Now()
	err = runPipeline(b, env, fmt.Sprintf(`
generate: { count: %d, interval: "", mapping: 'root = "%s"' }
`, n, payload), fmt.Sprintf(`
danube: { url: %s, topic: /default/bench_nokey, key: "", max_in_flight: %d }
`, srv.URL(), inFlight), 10*time.Minute)
	noKey := time.Since(start)
	require.NoError(b, err)
	require.Equal(b, n, srv.MessageCount("/default/bench_nokey"))

	// The floor of any Benthos output on this client: a bare plugin whose
	// WriteBatch only calls Producer.Send (no key, no ordering, no metadata,
	// no error handling). It shows what the framework costs by itself.
	bareEnv := newEnv(b)
	require.NoError(b, bareEnv.RegisterBatchOutput("bench_bare_danube", service.NewConfigSpec().Field(service.NewStringField("url")).Field(service.NewOutputMaxInFlightField()),
		func(conf *service.ParsedConfig, _ *service.Resources) (service.BatchOutput, service.BatchPolicy, int, error) {
			u, err := conf.FieldString("url")
			if err != nil {
				return nil, service.BatchPolicy{}, 0, err
			}
			mif, err := conf.FieldMaxInFlight()
			return &bareOutput{url: u}, service.BatchPolicy{}, mif, err
		}))
	start = time.Now()
	err = runPipeline(b, bareEnv, fmt.Sprintf(`
generate: { count: %d, interval: "", mapping: 'root = "%s"' }
`, n, payload), fmt.Sprintf(`
bench_bare_danube: { url: %s, max_in_flight: %d }
`, srv.URL(), inFlight), 10*time.Minute)
	bare := time.Since(start)
	require.NoError(b, err)
	require.Equal(b, n, srv.MessageCount("/default/bench_bare"))

	rawRate := float64(n) / raw.Seconds()
	outRate := float64(n) / out.Seconds()
	noKeyRate := float64(n) / noKey.Seconds()
	b.ReportMetric(rawRate, "client_msgs/s")
	b.ReportMetric(outRate, "output_msgs/s")
	b.ReportMetric(outRate/rawRate, "ratio")
	b.ReportMetric(noKeyRate/rawRate, "ratio_key_off")
	b.ReportMetric(float64(n)/bare.Seconds()/rawRate, "ratio_bare_plugin")
}

// bareOutput is the smallest possible Benthos output on our client, used as
// the framework's floor in BenchmarkOutputVsClient.
type bareOutput struct {
	url string
	c   *danube.Client
	p   *danube.Producer
}

func (o *bareOutput) Connect(ctx context.Context) error {
	c, err := danube.NewClient(o.url)
	if err != nil {
		return err
	}
	p, err := c.NewProducer(ctx, danube.ProducerConfig{Topic: "/default/bench_bare", Name: "bench-bare"})
	if err != nil {
		_ = c.Close()
		return err
	}
	o.c, o.p = c, p
	return nil
}

func (o *bareOutput) WriteBatch(ctx context.Context, batch service.MessageBatch) error {
	for _, m := range batch {
		body, err := m.AsBytes()
		if err != nil {
			return err
		}
		if err := o.p.Send(ctx, danube.Message{Payload: body}); err != nil {
			return err
		}
	}
	return nil
}

func (o *bareOutput) Close(context.Context) error {
	if o.c != nil {
		_ = o.p.Close()
		_ = o.c.Close()
	}
	return nil
}
