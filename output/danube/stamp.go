package danubeout

import (
	"context"
	"fmt"
	"sync/atomic"

	"github.com/redpanda-data/benthos/v4/public/service"
)

// stampProcessorName is the batch processor the output appends to its
// batching policy to stamp pipeline order (see orderedBatchPolicy). It is
// registered for that use only.
const stampProcessorName = "danube_output_order_stamp"

// registerStamper registers the stamp processor on env, where the output's
// batching policy is parsed.
func registerStamper(env *service.Environment) error {
	spec := service.NewConfigSpec().
		Categories("Utility").
		Summary("Used by the `danube` output's ordering stage: stamps each message with a sequence number in pipeline order. Not meant for pipelines.").
		Field(service.NewStringField("key").Default(metaSeq))
	err := env.RegisterBatchProcessor(stampProcessorName, spec, func(conf *service.ParsedConfig, _ *service.Resources) (service.BatchProcessor, error) {
		key, err := conf.FieldString("key")
		if err != nil {
			return nil, err
		}
		return &stamper{key: key}, nil
	})
	if err != nil {
		return fmt.Errorf("registering the %s processor: %w", stampProcessorName, err)
	}
	return nil
}

// stamper numbers messages 1, 2, 3... in the order Benthos' single batching
// goroutine sees them. It replaces a Bloblang mutation (`counter()`), which
// also made Benthos parse every payload as JSON.
type stamper struct {
	key string
	n   atomic.Int64
}

func (s *stamper) ProcessBatch(_ context.Context, b service.MessageBatch) ([]service.MessageBatch, error) {
	for _, m := range b {
		m.MetaSetMut(s.key, s.n.Add(1))
	}
	return []service.MessageBatch{b}, nil
}

func (s *stamper) Close(context.Context) error { return nil }
