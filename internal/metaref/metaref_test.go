package metaref

import (
	"testing"

	"github.com/redpanda-data/benthos/v4/public/service"
)

// TestSameAsBenthos resolves every form against Benthos' own interpolation
// for every kind of metadata value: the results must be identical.
func TestSameAsBenthos(t *testing.T) {
	values := map[string]any{
		"string":       "sensors/d1",
		"empty string": "",
		"int":          42,
		"int64":        int64(-7),
		"bool":         true,
		"bytes":        []byte("raw"),
		"map":          map[string]any{"a": 1},
		"absent":       nil,
	}
	forms := []struct {
		raw  string
		fast bool
	}{
		{`${! @k }`, true},
		{`${!@k}`, true},
		{`${! @k.or("") }`, true},
		{`${! @k.or("x") }`, false},
		{`${! meta("k") }`, false},
		{`prefix-${! @k }`, false},
		{`static`, false},
	}
	for _, form := range forms {
		ex, err := service.NewInterpolatedString(form.raw)
		if err != nil {
			t.Fatalf("%s: %v", form.raw, err)
		}
		f := New(form.raw, ex)
		if f.Fast() != form.fast {
			t.Errorf("%s: fast path %v, want %v", form.raw, f.Fast(), form.fast)
		}
		for name, v := range values {
			msg := service.NewMessage([]byte("payload"))
			if v != nil {
				msg.MetaSetMut("k", v)
			}
			batch := service.MessageBatch{service.NewMessage(nil), msg}
			want, wantErr := batch.InterpolationExecutor(ex).TryString(1)
			r := f.For(batch)
			got, err := r.String(1)
			if got != want || (err == nil) != (wantErr == nil) {
				t.Errorf("%s with %s metadata: got %q (%v), Benthos gives %q (%v)", form.raw, name, got, err, want, wantErr)
			}
		}
	}
}

func BenchmarkResolve(b *testing.B) {
	for _, raw := range []string{`${! @k.or("") }`, `${! @k.or("x") }`} {
		ex, err := service.NewInterpolatedString(raw)
		if err != nil {
			b.Fatal(err)
		}
		f := New(raw, ex)
		msg := service.NewMessage([]byte("payload"))
		msg.MetaSetMut("k", "sensors/d1")
		batch := service.MessageBatch{msg}
		b.Run(raw, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				r := f.For(batch)
				if _, err := r.String(0); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
