package ordering

import (
	"context"
	"encoding/json"
	"fmt"
	"sync/atomic"

	"github.com/redpanda-data/benthos/v4/public/service"
)

// RegisterStamper registers, under name, the batch processor an output
// appends to its batching policy (see BatchPolicy). Each output registers
// its own name on the environment its batching policy is parsed in; the
// processor is meant for that use only.
func RegisterStamper(env *service.Environment, name, component string) error {
	spec := service.NewConfigSpec().
		Categories("Utility").
		Summary(fmt.Sprintf("Used by the `%s` output's ordering stage: stamps each message with a sequence number in pipeline order. Not meant for pipelines.", component)).
		Field(service.NewStringField("key"))
	err := env.RegisterBatchProcessor(name, spec, func(conf *service.ParsedConfig, _ *service.Resources) (service.BatchProcessor, error) {
		key, err := conf.FieldString("key")
		if err != nil {
			return nil, err
		}
		return &stamper{key: key}, nil
	})
	if err != nil {
		return fmt.Errorf("registering the %s processor: %w", name, err)
	}
	return nil
}

// stamper numbers messages 1, 2, 3... in the order Benthos' single batching
// goroutine sees them. It replaces a Bloblang mutation (`counter()`), which
// also made Benthos parse every payload as JSON.
//
// Only the first message of a batch carries the stamp: the number of the
// batch's first message; message i has stamp+i (BatchStamp). It is the last
// processor, so the batch reaches WriteBatch as stamped. Stamping every
// message would give each one a ninth metadata key: Benthos then copies the
// metadata map the input shares with the message (copy on write) and grows
// it past Go's small-map size, about a microsecond per message.
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

func (s *stamper) Close(context.Context) error { return nil }

// BatchPolicy returns the batching policy of field in conf with one more
// batch processor appended: the stamper registered as processor, numbering
// metadata key. Benthos runs batch processors in the output's single
// batching goroutine, before the max_in_flight writer goroutines race each
// other, so the stamp is the order in which the pipeline emitted the
// messages. A no-op policy becomes count 1, which flushes every message
// immediately, and an upstream batch whole (the batcher adds all of a
// transaction's messages before it flushes).
func BatchPolicy(env *service.Environment, conf *service.ParsedConfig, field, processor, key string) (service.BatchPolicy, error) {
	user, err := conf.FieldBatchPolicy(field)
	if err != nil {
		return service.BatchPolicy{}, err
	}
	raw, err := conf.FieldAny(field)
	if err != nil {
		return service.BatchPolicy{}, err
	}
	m := map[string]any{}
	if rm, ok := raw.(map[string]any); ok {
		for k, v := range rm {
			m[k] = v
		}
	}
	if user.IsNoop() {
		m["count"] = 1
	}
	var procs []any
	if p, ok := m["processors"].([]any); ok {
		procs = append(procs, p...)
	}
	procs = append(procs, map[string]any{processor: map[string]any{"key": key}})
	m["processors"] = procs
	js, err := json.Marshal(map[string]any{field: m})
	if err != nil {
		return service.BatchPolicy{}, err
	}
	spec := service.NewConfigSpec().Field(service.NewBatchPolicyField(field))
	pc, err := spec.ParseYAML(string(js), env)
	if err != nil {
		return service.BatchPolicy{}, err
	}
	return pc.FieldBatchPolicy(field)
}

// BatchStamp returns the stamp of the first message of a batch the stamper
// numbered under key (0 when the batch is not stamped); message i of the
// batch has BatchStamp+i.
func BatchStamp(batch service.MessageBatch, key string) int64 {
	if len(batch) == 0 {
		return 0
	}
	v, ok := batch[0].MetaGetMut(key)
	if !ok {
		return 0
	}
	switch t := v.(type) {
	case int64:
		if t > 0 {
			return t
		}
	case int:
		if t > 0 {
			return int64(t)
		}
	}
	return 0
}
