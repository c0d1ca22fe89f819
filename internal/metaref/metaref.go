// Package metaref evaluates, without Bloblang, the interpolated strings that
// only read one metadata key: `${! @name }` and `${! @name.or("") }`, the
// forms of the danube output's default topic and key. Benthos' interpolation
// costs about eight allocations and a Bloblang evaluation per message and
// field; reading the key directly costs none. Any other form, and any value
// that is not a string, goes through Benthos' own interpolation, so the
// result is always exactly what Benthos gives.
package metaref

import (
	"regexp"

	"github.com/redpanda-data/benthos/v4/public/service"
)

// Field is an interpolated string field with its fast path, if it has one.
type Field struct {
	ex      *service.InterpolatedString
	key     string // the metadata key read; "" when there is no fast path
	missing string // the result when the key is absent
}

var (
	plainRef = regexp.MustCompile(`^\$\{!\s*@([A-Za-z0-9_]+)\s*\}$`)
	orEmpty  = regexp.MustCompile(`^\$\{!\s*@([A-Za-z0-9_]+)\.or\(""\)\s*\}$`)
)

// New returns the field of the raw config string raw, which ex was parsed
// from.
func New(raw string, ex *service.InterpolatedString) Field {
	f := Field{ex: ex}
	if m := plainRef.FindStringSubmatch(raw); m != nil {
		// Bloblang renders a missing metadata key as null.
		f.key, f.missing = m[1], "null"
	} else if m := orEmpty.FindStringSubmatch(raw); m != nil {
		f.key, f.missing = m[1], ""
	}
	return f
}

// Fast reports whether the field reads one metadata key directly.
func (f *Field) Fast() bool { return f.key != "" }

// For returns the field's resolver over batch.
func (f *Field) For(batch service.MessageBatch) Resolver {
	return Resolver{f: f, batch: batch}
}

// Resolver resolves a field for the messages of one batch. Benthos'
// executor, needed only off the fast path, is created on first use.
type Resolver struct {
	f     *Field
	batch service.MessageBatch
	ex    *service.MessageBatchInterpolationExecutor
}

// String resolves the field for message i of the batch.
func (r *Resolver) String(i int) (string, error) {
	if r.f.key != "" {
		v, ok := r.batch[i].MetaGetMut(r.f.key)
		if !ok {
			return r.f.missing, nil
		}
		if s, ok := v.(string); ok {
			return s, nil
		}
	}
	if r.ex == nil {
		r.ex = r.batch.InterpolationExecutor(r.f.ex)
	}
	return r.ex.TryString(i)
}
