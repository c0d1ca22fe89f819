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
//
// Only the first message of a batch carries the stamp: the number of the
// batch's first message; message i has stamp+i (batchStamp). It is the last processor,
// so the batch reaches WriteBatch as stamped. Stamping every message would
// give each one a ninth metadata key: Benthos then copies the metadata map
// the input shares with the message (copy on write) and grows it past Go's
// small-map size, about a microsecond per message.
type stamper struct {
	key string
	n   atomic.Int64
}

func (s *stamper) ProcessBatch(_ context.Context, b service.MessageBatch) ([]service.MessageBatch, error) {
	if len(b) > 0 {
		n := int64(len(b))
		b[0].MetaSetMut(s.key, s.n.Add(n)-n+1)
	}
	return []service.MessageBatch{b}, nil
}

// batchStamp returns the stamp of the first message of a batch stamped by the
// stamper (0 when the batch is not stamped).
func batchStamp(batch service.MessageBatch) int64 {
	if len(batch) == 0 {
		return 0
	}
	v, ok := batch[0].MetaGetMut(metaSeq)
	if !ok {
		return 0
	}
	base, ok := toInt64(v)
	if !ok || base <= 0 {
		return 0
	}
	return base
}

func (s *stamper) Close(context.Context) error { return nil }
