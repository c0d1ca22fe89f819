package demo

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/benthos-danube/benthos-danube/internal/danube/danubetest"
)

// view draws what arrived in the Danube test broker.
type view struct {
	out        io.Writer
	clear      bool
	srv        *danubetest.Server
	fleet      *fleet
	logs       *logRing
	started    time.Time
	mqttURL    string
	danubeURL  string
	configName string

	counts map[string]int // per topic or partition name, at the last draw
	latest *danubetest.Message

	downlink *downlink // the command round trip, nil when not running
}

// splitPartition splits "<base>-part-<n>" into base and n; n is -1 for a
// topic that is not a partition.
func splitPartition(name string) (string, int) {
	i := strings.LastIndex(name, "-part-")
	if i < 0 {
		return name, -1
	}
	n, err := strconv.Atoi(name[i+len("-part-"):])
	if err != nil {
		return name, -1
	}
	return name[:i], n
}

func (v *view) draw() {
	type row struct {
		topic     string
		partition int
		count     int
	}
	var rows []row
	total := 0
	partitioned := map[string]bool{}
	names := v.srv.Topics()
	for _, name := range names {
		if base, p := splitPartition(name); p >= 0 {
			partitioned[base] = true
		}
	}
	for _, name := range names {
		base, p := splitPartition(name)
		n := v.srv.MessageCount(name)
		if p < 0 && partitioned[base] && n == 0 {
			continue // the parent of a partitioned topic holds no messages
		}
		rows = append(rows, row{base, p, n})
		total += n
		if n > v.counts[name] {
			// Something new arrived here: the newest of these is the latest.
			if msgs := v.srv.Messages(name); len(msgs) > 0 {
				m := msgs[len(msgs)-1]
				if v.latest == nil || m.PublishTime >= v.latest.PublishTime {
					v.latest = &m
				}
			}
		}
		v.counts[name] = n
	}

	var b strings.Builder
	if v.clear {
		b.WriteString("\x1b[H\x1b[2J")
	}
	fmt.Fprintf(&b, "benthos-danube demo — %s   (Ctrl-C to stop)\n", v.configName)
	fmt.Fprintf(&b, "MQTT broker (mochi) %s  ->  pipeline  ->  Danube test broker %s\n", v.mqttURL, v.danubeURL)
	fmt.Fprintf(&b, "uptime %s   published by the fleet: %d   arrived in Danube: %d\n\n",
		time.Since(v.started).Round(time.Second), v.fleet.published.Load(), total)

	if len(rows) == 0 {
		b.WriteString("Waiting for the first messages to arrive in Danube...\n")
	} else {
		tw := tabwriter.NewWriter(&b, 0, 0, 3, ' ', 0)
		fmt.Fprintln(tw, "Danube topic\tpartition\tmessages\t")
		for _, r := range rows {
			p := "-"
			if r.partition >= 0 {
				p = strconv.Itoa(r.partition)
			}
			fmt.Fprintf(tw, "%s\t%s\t%d\t\n", r.topic, p, r.count)
		}
		_ = tw.Flush()
	}
	if m := v.latest; m != nil {
		fmt.Fprintf(&b, "\nLatest message on %s (offset %d, producer %s)\n", m.Topic, m.Offset, m.ProducerName)
		if m.HasRoutingKey {
			fmt.Fprintf(&b, "  key:        %s\n", m.RoutingKey)
		}
		fmt.Fprintf(&b, "  payload:    %s\n", printable(m.Payload, 120))
		fmt.Fprintf(&b, "  attributes:")
		for _, k := range slices.Sorted(maps.Keys(m.Attributes)) {
			fmt.Fprintf(&b, " %s=%s", k, m.Attributes[k])
		}
		b.WriteString("\n")
	}
	if v.downlink != nil {
		b.WriteString("\n")
		for _, l := range v.downlink.lines(v.srv) {
			b.WriteString(l + "\n")
		}
	}
	if recent := v.logs.lines(); len(recent) > 0 {
		b.WriteString("\nRecent pipeline warnings:\n")
		for _, l := range recent {
			fmt.Fprintf(&b, "  %s\n", l)
		}
	}
	if !v.clear {
		b.WriteString("\n")
	}
	_, _ = io.WriteString(v.out, b.String())
}

// printable renders a payload as text, or as hex when it is not UTF-8,
// cut to max runes.
func printable(p []byte, limit int) string {
	if !utf8.Valid(p) {
		s := fmt.Sprintf("%x", p)
		if len(s) > limit {
			s = s[:limit] + "..."
		}
		return "0x" + s
	}
	s := string(p)
	if utf8.RuneCountInString(s) > limit {
		s = string([]rune(s)[:limit]) + "..."
	}
	return s
}

// logRing is a slog.Handler that keeps the last few records at WARN or
// above, for the view.
type logRing struct {
	mu  sync.Mutex
	max int
	buf []string
}

func newLogRing(n int) *logRing { return &logRing{max: n} }

// Enabled implements slog.Handler: WARN and above.
func (r *logRing) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelWarn }

// Handle implements slog.Handler.
func (r *logRing) Handle(_ context.Context, rec slog.Record) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s %s", rec.Time.Format("15:04:05"), rec.Level, rec.Message)
	rec.Attrs(func(a slog.Attr) bool {
		fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
		return true
	})
	r.mu.Lock()
	defer r.mu.Unlock()
	r.buf = append(r.buf, b.String())
	if len(r.buf) > r.max {
		r.buf = r.buf[len(r.buf)-r.max:]
	}
	return nil
}

// WithAttrs implements slog.Handler; the attributes are shared with r's ring.
func (r *logRing) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &ringView{r: r, attrs: attrs}
}

// WithGroup implements slog.Handler; groups are flattened.
func (r *logRing) WithGroup(string) slog.Handler { return r }

func (r *logRing) lines() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.buf)
}

// ringView is a logRing with extra attributes.
type ringView struct {
	r     *logRing
	attrs []slog.Attr
}

// Enabled implements slog.Handler.
func (v *ringView) Enabled(ctx context.Context, l slog.Level) bool { return v.r.Enabled(ctx, l) }

// Handle implements slog.Handler.
func (v *ringView) Handle(ctx context.Context, rec slog.Record) error {
	rec = rec.Clone()
	rec.AddAttrs(v.attrs...)
	return v.r.Handle(ctx, rec)
}

// WithAttrs implements slog.Handler.
func (v *ringView) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &ringView{r: v.r, attrs: append(slices.Clone(v.attrs), attrs...)}
}

// WithGroup implements slog.Handler; groups are flattened.
func (v *ringView) WithGroup(string) slog.Handler { return v }
