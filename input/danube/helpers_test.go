package danubein

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	_ "github.com/redpanda-data/benthos/v4/public/components/pure"
	"github.com/redpanda-data/benthos/v4/public/service"
	"go.uber.org/goleak"

	"github.com/benthos-danube/benthos-danube/internal/componenttest"
	"github.com/benthos-danube/benthos-danube/internal/danube"
	"github.com/benthos-danube/benthos-danube/internal/danube/clienttest"
	"github.com/benthos-danube/benthos-danube/internal/danube/danubetest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// producer returns a reliable producer on topic, closed at the end of the
// test, after creating the topic (Danube never creates topics for
// consumers).
func producer(tb testing.TB, srv *danubetest.Server, topic string, partitions int) (*danube.Client, *danube.Producer) {
	tb.Helper()
	c, err := danube.NewClient(srv.URL())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = c.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	p, err := c.NewProducer(ctx, danube.ProducerConfig{Topic: topic, Name: "cmd-producer", Partitions: partitions,
		Dispatch: danube.DispatchReliable, BaseBackoff: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond})
	if err != nil {
		tb.Fatalf("NewProducer(%s): %v", topic, err)
	}
	tb.Cleanup(func() { _ = p.Close() })
	return c, p
}

func sendN(tb testing.TB, p *danube.Producer, from, to int) {
	tb.Helper()
	for i := from; i < to; i++ {
		send(tb, p, danube.Message{Payload: []byte(fmt.Sprintf("m%d", i))})
	}
}

func send(tb testing.TB, p *danube.Producer, m danube.Message) {
	tb.Helper()
	clienttest.Send(tb, p, m)
}

// inputYAML is a danube input config for srv; extra is appended verbatim.
func inputYAML(srv *danubetest.Server, topics, extra string) string {
	return fmt.Sprintf("url: %s\ntopics: %s\nsubscription: sub\n%s", srv.URL(), topics, extra)
}

// newTestInput builds, connects and (at cleanup) closes an input directly,
// without a stream.
func newTestInput(tb testing.TB, yaml string) *input {
	tb.Helper()
	conf, err := Spec().ParseYAML(yaml, service.NewEnvironment())
	if err != nil {
		tb.Fatalf("parse: %v", err)
	}
	in, err := newInput(conf, service.MockResources())
	if err != nil {
		tb.Fatalf("newInput: %v", err)
	}
	tb.Cleanup(func() { _ = in.Close(context.Background()) })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := in.Connect(ctx); err != nil {
		tb.Fatalf("Connect: %v", err)
	}
	return in
}

// read calls ReadBatch with a timeout. Like Benthos, it calls Connect
// until it succeeds after ReadBatch reported the connection lost.
func read(tb testing.TB, in *input, within time.Duration) (service.MessageBatch, service.AckFunc) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	for {
		b, ack, err := in.ReadBatch(ctx)
		if errors.Is(err, service.ErrNotConnected) {
			for in.Connect(ctx) != nil {
				if ctx.Err() != nil {
					tb.Fatalf("ReadBatch: not connected, and Connect failed until the timeout")
				}
				time.Sleep(20 * time.Millisecond)
			}
			continue
		}
		if err != nil {
			tb.Fatalf("ReadBatch: %v", err)
		}
		return b, ack
	}
}

// readN reads batches until it has n messages; it returns them with one
// AckFunc per message index (the batch's).
func readN(tb testing.TB, in *input, n int, within time.Duration) ([]*service.Message, []service.AckFunc) {
	tb.Helper()
	var ms []*service.Message
	var acks []service.AckFunc
	deadline := time.Now().Add(within)
	for len(ms) < n {
		left := time.Until(deadline)
		if left <= 0 {
			tb.Fatalf("read %d of %d messages", len(ms), n)
		}
		b, ack := read(tb, in, left)
		for _, m := range b {
			ms = append(ms, m)
			acks = append(acks, ack)
		}
	}
	return ms, acks
}

func payloads(ms []*service.Message) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		b, _ := m.AsBytes()
		out[i] = string(b)
	}
	return out
}

func metaInt(tb testing.TB, m *service.Message, k string) uint64 {
	tb.Helper()
	v, ok := m.MetaGetMut(k)
	if !ok {
		tb.Fatalf("metadata %s missing", k)
	}
	switch x := v.(type) {
	case uint64:
		return x
	case int:
		return uint64(x)
	case uint32:
		return uint64(x)
	}
	tb.Fatalf("metadata %s = %T %v", k, v, v)
	return 0
}

// waitFor polls cond until it holds or the timeout passes.
func waitFor(tb testing.TB, within time.Duration, what string, cond func() bool) {
	tb.Helper()
	componenttest.WaitFor(tb, within, what, cond)
}
