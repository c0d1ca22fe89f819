package benthoslog

import (
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/benthos-danube/benthos-danube/internal/syncbuf"
)

// benthosLogger returns a Benthos logger writing text lines at debug level
// into the returned buffer.
func benthosLogger(t *testing.T) (*service.Logger, *syncbuf.Buffer) {
	t.Helper()
	buf := &syncbuf.Buffer{}
	return service.NewLoggerFromSlog(slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug}))), buf
}

func TestHandler(t *testing.T) {
	for _, tc := range []struct {
		name string
		log  func(l *slog.Logger)
		want []string
	}{
		{"info with attrs", func(l *slog.Logger) { l.Info("danube producer recreated", "topic", "/default/t", "producer_id", 7) },
			[]string{"level=INFO", `msg="danube producer recreated"`, "topic=/default/t", "producer_id=7"}},
		{"debug", func(l *slog.Logger) { l.Debug("lookup failed") }, []string{"level=DEBUG", `msg="lookup failed"`}},
		{"warn", func(l *slog.Logger) { l.Warn("slow") }, []string{"level=WARN", "msg=slow"}},
		{"error value", func(l *slog.Logger) { l.Error("lost", "error", errors.New("boom")) }, []string{"level=ERROR", "msg=lost", "error=boom"}},
		{"with attrs", func(l *slog.Logger) { l.With("subscription", "s1").Info("resubscribed", "topic", "/a/b") },
			[]string{"subscription=s1", "topic=/a/b", "msg=resubscribed"}},
		{"group", func(l *slog.Logger) { l.WithGroup("g").Info("m", "k", "v", slog.Group("h", "x", 1)) },
			[]string{"g.k=v", "g.h.x=1"}},
		{"empty attr dropped", func(l *slog.Logger) { l.Info("m", slog.Attr{}) }, []string{"msg=m"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bl, buf := benthosLogger(t)
			tc.log(New(bl))
			out := buf.String()
			if strings.Count(out, "\n") != 1 {
				t.Fatalf("want one line, got %q", out)
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("missing %q in %q", w, out)
				}
			}
		})
	}
}

func TestNilLogger(t *testing.T) {
	l := New(nil)
	l.Info("dropped", "k", "v") // must not panic
	if l.Enabled(t.Context(), slog.LevelError) {
		t.Fatal("a nil Benthos logger is enabled")
	}
	var h Handler
	if err := h.Handle(t.Context(), slog.Record{}); err != nil {
		t.Fatal(err)
	}
}
