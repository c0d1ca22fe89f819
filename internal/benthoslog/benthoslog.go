// Package benthoslog adapts Benthos' logger to log/slog, so that code free of
// Benthos types (the Danube client) can log through a component's logger.
package benthoslog

import (
	"context"
	"log/slog"
	"slices"

	"github.com/redpanda-data/benthos/v4/public/service"
)

// New returns a slog.Logger writing to l. A nil l gives a logger that
// discards everything.
func New(l *service.Logger) *slog.Logger {
	if l == nil {
		return slog.New(slog.DiscardHandler)
	}
	return slog.New(Handler{log: l})
}

// Handler is a slog.Handler writing each record to a Benthos logger at the
// matching level (Debug, Info, Warn, Error), the record's attributes as
// fields. Benthos filters by its own level, so every level is enabled here.
// Attributes in groups are flattened to "group.key".
type Handler struct {
	log    *service.Logger
	attrs  []any // key, value pairs added by WithAttrs
	prefix string
}

// Enabled implements slog.Handler.
func (h Handler) Enabled(context.Context, slog.Level) bool { return h.log != nil }

// Handle implements slog.Handler.
func (h Handler) Handle(_ context.Context, r slog.Record) error {
	if h.log == nil {
		return nil
	}
	kv := slices.Clone(h.attrs)
	r.Attrs(func(a slog.Attr) bool {
		kv = appendAttr(kv, h.prefix, a)
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

// WithAttrs implements slog.Handler.
func (h Handler) WithAttrs(as []slog.Attr) slog.Handler {
	n := h
	n.attrs = slices.Clone(h.attrs)
	for _, a := range as {
		n.attrs = appendAttr(n.attrs, h.prefix, a)
	}
	return n
}

// WithGroup implements slog.Handler.
func (h Handler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	n := h
	n.prefix = h.prefix + name + "."
	return n
}

// appendAttr appends a's key (with prefix) and value as a string, flattening
// groups; empty attributes are dropped, as slog's handlers do.
func appendAttr(kv []any, prefix string, a slog.Attr) []any {
	a.Value = a.Value.Resolve()
	if a.Equal(slog.Attr{}) {
		return kv
	}
	if a.Value.Kind() == slog.KindGroup {
		p := prefix
		if a.Key != "" {
			p += a.Key + "."
		}
		for _, g := range a.Value.Group() {
			kv = appendAttr(kv, p, g)
		}
		return kv
	}
	return append(kv, prefix+a.Key, a.Value.String())
}
