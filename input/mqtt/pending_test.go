package mqtt

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestCloseReportsPendingMessages stalls the pipeline (messages read and
// never acknowledged, more waiting behind max_unacked), closes the input and
// checks the warning: how many were left where, and what the broker does
// with them, which depends on the session and the QoS.
func TestCloseReportsPendingMessages(t *testing.T) {
	tests := []struct {
		name  string
		clean bool
		want  []string
	}{
		{"persistent session", false, []string{
			"Closing with 7 messages unacknowledged to the MQTT broker (4 in the pipeline, not confirmed by the output, 3 waiting in the input).",
			"QoS 1/2: 5, kept by the broker in the persistent session of client_id",
			"QoS 0: 2, lost (the broker never redelivers QoS 0 messages).",
		}},
		{"clean session", true, []string{
			"Closing with 7 messages unacknowledged to the MQTT broker (4 in the pipeline, not confirmed by the output, 3 waiting in the input).",
			"They are lost: with clean_session: true the broker discards the session on disconnect, QoS 1/2 messages included",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newTestBroker(t, !tt.clean)
			id := runID(t)
			in, logs, err := newLoggedInput(t, fmt.Sprintf(`
urls: [ %s ]
client_id: %s-bridge
clean_session: %v
max_unacked: 4
topic_mappings:
  - {mqtt_topic: "%[2]s/one/#", danube_topic: /t/one, qos: 1}
  - {mqtt_topic: "%[2]s/zero/#", danube_topic: /t/zero, qos: 0}
`, b.url(), id, tt.clean))
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := in.Connect(ctx); err != nil {
				t.Fatal(err)
			}
			pub := newPublisher(t, b.url(), id+"-pub", true)
			for i := range 5 {
				pub.publishWait(t, fmt.Sprintf("%s/one/%d", id, i), 1, "x")
			}
			for i := range 2 {
				pub.publishWait(t, fmt.Sprintf("%s/zero/%d", id, i), 0, "x")
			}
			// max_unacked wait in the input; the others wait behind them.
			waitFor(t, 10*time.Second, "4 messages in the input", func() bool { return in.q.len() == 4 })
			// One natural batch of max_unacked messages, read and never
			// acknowledged: the output is stuck. The other 3 follow into
			// the input.
			if batch, _, err := in.ReadBatch(ctx); err != nil || len(batch) != 4 {
				t.Fatalf("read %d messages (want 4): %v", len(batch), err)
			}
			waitFor(t, 10*time.Second, "3 more messages in the input", func() bool { return in.q.len() == 3 })
			if err := in.Close(ctx); err != nil {
				t.Fatal(err)
			}
			out := logs.String()
			for _, w := range tt.want {
				if !strings.Contains(out, w) {
					t.Errorf("no %q in the logs:\n%s", w, out)
				}
			}
			if n := strings.Count(out, "Closing with"); n != 1 {
				t.Errorf("%d reports, want 1", n)
			}
			_ = in.Close(ctx)
			if n := strings.Count(logs.String(), "Closing with"); n != 1 {
				t.Errorf("a second Close reported again")
			}
		})
	}
}

// TestPendingReportWording covers what the broker-level test cannot set up
// easily: nothing pending, one message, and acknowledgements held back by
// ordered_acks (confirmed by the output, still unacknowledged to the broker).
func TestPendingReportWording(t *testing.T) {
	newIn := func(clean bool) *input {
		return &input{cfg: &config{clientID: "bridge-1", cleanSession: clean}, q: newQueue(10, qos0MaxBlock)}
	}
	if r := newIn(false).pendingReport(nil); r != "" {
		t.Errorf("nothing pending: %q", r)
	}

	in := newIn(false)
	in.unacked.Store(1)
	if r := in.pendingReport(nil); !strings.Contains(r, "Closing with 1 message unacknowledged to the MQTT broker (1 in the pipeline, not confirmed by the output).") ||
		!strings.Contains(r, `QoS 1/2: 1, kept by the broker in the persistent session of client_id "bridge-1"`) || strings.Contains(r, "QoS 0") {
		t.Errorf("one QoS 1 message: %q", r)
	}

	in = newIn(false)
	c := &connection{acks: newAckReleaser(nil)}
	c.acks.done[5] = nil // acknowledged by the pipeline, waiting for seq 0..4
	c.acks.done[6] = nil
	in.unacked.Store(1)
	in.nRetries.Store(1) // nacked, waiting for its replay
	if r := in.pendingReport(c); !strings.Contains(r, "Closing with 3 messages unacknowledged to the MQTT broker (1 waiting in the input, 2 confirmed by the output whose acknowledgement waited for an earlier message (ordered_acks)).") ||
		!strings.Contains(r, "QoS 1/2: 3,") {
		t.Errorf("held acknowledgements: %q", r)
	}
}
