package danubein

import (
	"context"
	"log/slog"
	"slices"

	"github.com/redpanda-data/benthos/v4/public/service"
)

// slogHandler writes the Danube client's log records (resubscribes, lost
// streams) to the input's Benthos logger, with the record's attributes as
// fields.
type slogHandler struct {
	log   *service.Logger
	attrs []any
}

func newSlogLogger(l *service.Logger) *slog.Logger { return slog.New(slogHandler{log: l}) }

func (h slogHandler) Enabled(context.Context, slog.Level) bool { return h.log != nil }

func (h slogHandler) Handle(_ context.Context, r slog.Record) error {
	kv := slices.Clone(h.attrs)
	r.Attrs(func(a slog.Attr) bool {
		kv = append(kv, a.Key, a.Value.String())
		return true
	})
	l := h.log
	if len(kv) > 0 {
		l = l.With(kv...)
	}
	switch {
	case r.Level >= slog.LevelError:
		l.Error(r.Message)
	case r.Level >= slog.LevelWarn:
		l.Warn(r.Message)
	case r.Level >= slog.LevelInfo:
		l.Info(r.Message)
	default:
		l.Debug(r.Message)
	}
	return nil
}

func (h slogHandler) WithAttrs(as []slog.Attr) slog.Handler {
	n := slogHandler{log: h.log, attrs: slices.Clone(h.attrs)}
	for _, a := range as {
		n.attrs = append(n.attrs, a.Key, a.Value.String())
	}
	return n
}

func (h slogHandler) WithGroup(string) slog.Handler { return h }
