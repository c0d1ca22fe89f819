package mqttout

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/benthos-danube/benthos-danube/input/mqtt/topicmatch"
	"github.com/benthos-danube/benthos-danube/internal/deadletter"
)

// Dead-letter reasons of the mqtt output (internal/deadletter).
const (
	reasonInvalidTopic   = deadletter.ReasonInvalidTopic
	reasonInvalidMessage = deadletter.ReasonInvalidMessage
	reasonRefused        = deadletter.ReasonRejected
)

// dlCause says why one message can never be published.
type dlCause struct {
	reason string
	err    string
	topic  string // the MQTT topic it was meant for, "" if none could be formed
}

// validTopic checks a resolved topic name: the MQTT topic name rules.
func validTopic(topic string) error { return topicmatch.ValidateTopicName(topic) }

// refusalReason maps a broker's refusal (MQTT 5 reason codes) to a
// dead-letter reason.
func refusalReason(r *refusedError) string {
	switch r.code {
	case 0x87: // not authorized
		return deadletter.ReasonPermissionDenied
	case 0x90: // topic name invalid
		return deadletter.ReasonInvalidTopic
	case 0x95: // packet too large
		return deadletter.ReasonTooLarge
	}
	return deadletter.ReasonRejected
}

// causeFromMeta returns the cause a pipeline set in the message's metadata
// (dead_letter_reason), or nil.
func causeFromMeta(msg *service.Message, topic string) *dlCause {
	reason, ok := msg.MetaGet(deadletter.Reason)
	if !ok || reason == "" {
		return nil
	}
	c := &dlCause{reason: reason, topic: topic}
	c.err, _ = msg.MetaGet(deadletter.Error)
	if c.err == "" {
		if e := msg.GetError(); e != nil {
			c.err = e.Error()
		} else {
			c.err = "marked for the dead-letter destination by the pipeline (" + deadletter.Reason + ")"
		}
	}
	return c
}

// deadLetters writes messages that can never be published to
// dead_letter.output.
type deadLetters struct {
	out     *service.OwnedOutput // nil: no destination, the message fails
	log     *service.Logger
	mCount  *service.MetricCounter
	mFailed *service.MetricCounter

	mu      sync.Mutex
	lastLog map[string]time.Time // per reason, rate-limits the log line
}

func parseDeadLetters(conf *service.ParsedConfig, mgr *service.Resources) (*deadLetters, error) {
	dl := &deadLetters{log: mgr.Logger(), lastLog: map[string]time.Time{}}
	if conf.Contains(fieldDeadLetter, fieldDLOutput) {
		var err error
		if dl.out, err = conf.FieldOutput(fieldDeadLetter, fieldDLOutput); err != nil {
			return nil, fmt.Errorf("mqtt output: field %s.%s: %w", fieldDeadLetter, fieldDLOutput, err)
		}
		// Started now: an OwnedOutput never written to is only started by
		// its first write, and its Close would then wait for ever.
		if err := dl.out.Prime(); err != nil {
			return nil, fmt.Errorf("mqtt output: field %s.%s: %w", fieldDeadLetter, fieldDLOutput, err)
		}
	}
	m := mgr.Metrics()
	dl.mCount = m.NewCounter(metricDeadLettered, "reason")
	dl.mFailed = m.NewCounter(metricDeadLetterFailure)
	dl.mFailed.Incr(0)
	return dl, nil
}

// logf logs at most one line per reason per logEvery.
func (dl *deadLetters) logf(reason string, warn bool, format string, args ...any) {
	dl.mu.Lock()
	now := time.Now()
	if t, ok := dl.lastLog[reason]; ok && now.Sub(t) < logEvery {
		dl.mu.Unlock()
		return
	}
	dl.lastLog[reason] = now
	dl.mu.Unlock()
	if warn {
		dl.log.Warnf(format, args...)
	} else {
		dl.log.Errorf(format, args...)
	}
}

// write sends the record of msg to the dead-letter output. It returns nil
// once the destination has it (the message may be acknowledged), or the
// error to fail the message with.
func (dl *deadLetters) write(ctx context.Context, msg *service.Message, payload []byte, c *dlCause) error {
	if dl.out == nil {
		dl.logf(c.reason, false, "A message for MQTT topic %q can never be published (%s: %s) and there is no dead_letter.output: it fails and is retried", c.topic, c.reason, c.err)
		return fmt.Errorf("%s (%s; set dead_letter.output to keep such messages and let the others pass)", c.err, c.reason)
	}
	if payload == nil {
		payload, _ = msg.AsBytes()
	}
	rec := msg.Copy()
	rec.SetBytes(payload)
	rec.MetaDelete(metaSeq)
	rec.MetaSetMut(deadletter.Reason, c.reason)
	rec.MetaSetMut(deadletter.Error, c.err)
	rec.MetaSetMut(deadletter.MQTTTopic, c.topic)
	rec.MetaSetMut(deadletter.Time, time.Now().UTC().Format(time.RFC3339Nano))
	if err := dl.out.Write(ctx, rec); err != nil {
		dl.mFailed.Incr(1)
		dl.logf("\x00failure", false, "DEAD-LETTER OUTPUT FAILING, messages that can never be published are held and retried: %v (message for MQTT topic %q, %s: %s)", err, c.topic, c.reason, c.err)
		return fmt.Errorf("message can never be published (%s: %s) and the dead_letter output failed: %w", c.reason, c.err, err)
	}
	dl.mCount.Incr(1, c.reason)
	dl.logf(c.reason, true, "Dead-lettered a message for MQTT topic %q, reason %s: %s", c.topic, c.reason, c.err)
	return nil
}

// closeTimeout bounds the dead-letter output's Close (Benthos closes the
// mqtt output with a context without deadline).
const closeTimeout = 10 * time.Second

func (dl *deadLetters) close(ctx context.Context) error {
	if dl.out == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, closeTimeout)
	defer cancel()
	if err := dl.out.Close(ctx); err != nil {
		return fmt.Errorf("mqtt output: closing the dead_letter output: %w", err)
	}
	return nil
}
