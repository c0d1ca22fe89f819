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

// outputBenchRounds is how many times BenchmarkOutputVsClient runs every
// variant, rotating their order, so that a noisy neighbour does not land on
// one variant only.
const outputBenchRounds = 3

// BenchmarkOutputVsClient measures, in one run, the throughput of the raw
// client (64 sends in flight, 256-byte messages) and of generate → danube
// pipelines (256-byte messages, max_in_flight 64), all against one test
// broker over loopback gRPC, and reports each as a ratio to the client:
//
//   - ratio: the danube output as configured by default (goal ≥ 0.8);
//   - ratio_batched_input: the same fed batches of 64 (generate batch_size),
//     as the mqtt input's natural batches arrive under load (goal ≥ 0.9);
//   - ratio_batched: the same with `batching: {count: 64, period: 1ms}`, which
//     runs the ordering stage once per batch instead of once per message;
//   - ratio_key_off: the same with `key: ""`, which skips the ordering stage;
//   - ratio_bare_plugin: the smallest possible Benthos output on the client
//     (WriteBatch only calls Producer.Send), the framework's own floor;
//   - ratio_bare_stamped: that bare output with the batch stage the ordering
//     needs (batching count 1 and one batch processor stamping a counter),
//     the floor of any output that keeps per-key order under max_in_flight.
//
// Every variant runs outputBenchRounds times with b.N messages; rates are
// totals over the rounds.
//
//	go test -run '^$' -bench BenchmarkOutputVsClient -benchtime 30000x -count 3 ./output/danube/
func BenchmarkOutputVsClient(b *testing.B) {
	const inFlight = 64
	payload := strings.Repeat("x", 256)
	// At least 1000: with b.N = 1 (the first, calibrating call) a batching
	// variant can end before its 1 ms period flushes the only message.
	n := max(b.N, 1000)
	ctx := context.Background()
	srv := danubetest.NewTestServer(b)

	c, err := danube.NewClient(srv.URL())
	require.NoError(b, err)
	defer func() { _ = c.Close() }()
	p, err := c.NewProducer(ctx, danube.ProducerConfig{Topic: "/default/bench_raw", Name: "bench-raw"})
	require.NoError(b, err)
	defer func() { _ = p.Close() }()
	body := []byte(payload)
	client := func() {
		var next atomic.Int64
		var wg sync.WaitGroup
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
	}

	env := newEnv(b)
	require.NoError(b, env.RegisterBatchOutput("bench_bare_danube", service.NewConfigSpec().
		Field(service.NewStringField("url")).
		Field(service.NewStringField("topic")).
		Field(service.NewOutputMaxInFlightField()).
		Field(service.NewBatchPolicyField("batching")),
		func(conf *service.ParsedConfig, _ *service.Resources) (service.BatchOutput, service.BatchPolicy, int, error) {
			u, err := conf.FieldString("url")
			if err != nil {
				return nil, service.BatchPolicy{}, 0, err
			}
			topic, err := conf.FieldString("topic")
			if err != nil {
				return nil, service.BatchPolicy{}, 0, err
			}
			pol, err := conf.FieldBatchPolicy("batching")
			if err != nil {
				return nil, service.BatchPolicy{}, 0, err
			}
			mif, err := conf.FieldMaxInFlight()
			return &bareOutput{url: u, topic: topic}, pol, mif, err
		}))
	generate := fmt.Sprintf(`
generate: { count: %d, interval: "", mapping: 'root = "%s"' }
`, n, payload)
	// Natural batches, as the mqtt input hands them over under load.
	generateBatched := fmt.Sprintf(`
generate: { count: %d, batch_size: 64, interval: "", mapping: 'root = "%s"' }
`, n, payload)
	pipelineFrom := func(input, topic, outYAML string) func() {
		want := 0 // each run adds n messages to its variant's topic
		return func() {
			require.NoError(b, runPipeline(b, env, input, outYAML, 10*time.Minute))
			want += n
			require.Equal(b, want, srv.MessageCount(topic), "messages on %s; topics %v, dead letters %d", topic, srv.Topics(), srv.MessageCount("/default/dead_letter"))
		}
	}
	pipeline := func(topic, outYAML string) func() { return pipelineFrom(generate, topic, outYAML) }
	variants := []struct {
		name string
		run  func()
	}{
		{"client", client},
		{"ratio", pipeline("/default/bench_out", fmt.Sprintf(`
danube: { url: %s, topic: /default/bench_out, max_in_flight: %d }
`, srv.URL(), inFlight))},
		{"ratio_batched_input", pipelineFrom(generateBatched, "/default/bench_natural", fmt.Sprintf(`
danube: { url: %s, topic: /default/bench_natural, max_in_flight: %d }
`, srv.URL(), inFlight))},
		{"ratio_batched", pipeline("/default/bench_batched", fmt.Sprintf(`
danube: { url: %s, topic: /default/bench_batched, max_in_flight: %d, batching: { count: 64, period: 1ms } }
`, srv.URL(), inFlight))},
		{"ratio_key_off", pipeline("/default/bench_nokey", fmt.Sprintf(`
danube: { url: %s, topic: /default/bench_nokey, key: "", max_in_flight: %d }
`, srv.URL(), inFlight))},
		{"ratio_bare_plugin", pipeline("/default/bench_bare", fmt.Sprintf(`
bench_bare_danube: { url: %s, topic: /default/bench_bare, max_in_flight: %d }
`, srv.URL(), inFlight))},
		{"ratio_bare_stamped", pipeline("/default/bench_stamped", fmt.Sprintf(`
bench_bare_danube:
  url: %s
  topic: /default/bench_stamped
  max_in_flight: %d
  batching: { count: 1, processors: [ { mutation: "meta seq = counter()" } ] }
`, srv.URL(), inFlight))},
	}
	took := make([]time.Duration, len(variants))
	b.ResetTimer()
	for round := range outputBenchRounds {
		for k := range variants {
			i := (k + round) % len(variants)
			start := time.Now()
			variants[i].run()
			took[i] += time.Since(start)
		}
	}
	b.StopTimer()
	total := float64(outputBenchRounds * n)
	clientRate := total / took[0].Seconds()
	b.ReportMetric(clientRate, "client_msgs/s")
	for i := 1; i < len(variants); i++ {
		b.ReportMetric(total/took[i].Seconds()/clientRate, variants[i].name)
	}
	b.ReportMetric(total/took[1].Seconds(), "output_msgs/s")
}

// bareOutput is the smallest possible Benthos output on our client, used as
// the framework's floor in BenchmarkOutputVsClient.
type bareOutput struct {
	url, topic string
	c          *danube.Client
	p          *danube.Producer
}

func (o *bareOutput) Connect(ctx context.Context) error {
	c, err := danube.NewClient(o.url)
	if err != nil {
		return err
	}
	p, err := c.NewProducer(ctx, danube.ProducerConfig{Topic: o.topic, Name: "bench-bare"})
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
