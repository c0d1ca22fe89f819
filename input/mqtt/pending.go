package mqtt

import (
	"fmt"
	"strings"
)

// take counts m as handed to the pipeline and not yet acknowledged; release
// undoes it once the pipeline acknowledged m for good. QoS 0 messages are
// counted apart so that Close can say which ones the broker will redeliver.
func (in *input) take(m message) {
	in.unacked.Add(1)
	if m.Qos() == 0 {
		in.unacked0.Add(1)
	}
}

func (in *input) release(m message) {
	in.unacked.Add(-1)
	if m.Qos() == 0 {
		in.unacked0.Add(-1)
	}
}

// counts returns the number of waiting messages and how many are QoS 0.
func (q *queue) counts() (n, qos0 int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.items) - q.head, q.qos0
}

// pendingReport describes the messages the broker sent and that were not
// acknowledged when the input closes, or "" when there are none. c is the
// current connection (nil if none), whose ordered acknowledgements may hold
// back messages the output already confirmed.
func (in *input) pendingReport(c *connection) string {
	unacked, unacked0 := in.unacked.Load(), in.unacked0.Load()
	retries := in.nRetries.Load()
	queued, queued0 := in.q.counts()
	held := 0
	if c != nil && c.acks != nil {
		held = c.acks.waiting()
	}
	total := unacked + int64(queued) + int64(held)
	if total <= 0 {
		return ""
	}
	qos0 := unacked0 + int64(queued0)
	qos12 := total - qos0

	var parts []string
	if n := unacked - retries; n > 0 {
		parts = append(parts, fmt.Sprintf("%d in the pipeline, not confirmed by the output", n))
	}
	if n := int64(queued) + retries; n > 0 {
		parts = append(parts, fmt.Sprintf("%d waiting in the input", n))
	}
	if held > 0 {
		parts = append(parts, fmt.Sprintf("%d confirmed by the output whose acknowledgement waited for an earlier message (ordered_acks)", held))
	}
	var b strings.Builder
	fmt.Fprintf(&b, "Closing with %s unacknowledged to the MQTT broker (%s). ", plural(total, "message"), strings.Join(parts, ", "))
	if in.cfg.cleanSession {
		fmt.Fprintf(&b, "They are lost: with %s: true the broker discards the session on disconnect, QoS 1/2 messages included; set %s: false and a stable %s to have QoS 1/2 messages redelivered after a restart.",
			fieldCleanSession, fieldCleanSession, fieldClientID)
		return b.String()
	}
	if qos12 > 0 {
		fmt.Fprintf(&b, "QoS 1/2: %d, kept by the broker in the persistent session of client_id %q and redelivered when it reconnects (any the output had already delivered arrive twice).", qos12, in.cfg.clientID)
	}
	if qos0 > 0 {
		if qos12 > 0 {
			b.WriteString(" ")
		}
		fmt.Fprintf(&b, "QoS 0: %d, lost (the broker never redelivers QoS 0 messages).", qos0)
	}
	return b.String()
}

func plural(n int64, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}
