package danubeout

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"
	"google.golang.org/grpc/codes"

	"github.com/benthos-danube/benthos-danube/internal/danube"
	"github.com/benthos-danube/benthos-danube/internal/deadletter"
)

// Dead-letter metrics.
const (
	metricDeadLettered      = "danube_output_dead_lettered"
	metricDeadLetterFailure = "danube_output_dead_letter_failures"
)

// reasonInvalidMessage: the pipeline produced a message the output cannot
// send (its key or routing metadata cannot be read).
const reasonInvalidMessage = deadletter.ReasonInvalidMessage

// dlCause says why one message can never be delivered.
type dlCause struct {
	reason  string
	err     string
	topic   string // intended Danube topic, "" if none could be formed
	mapping string // input mapping, "" when unknown
}

// deadLetters writes undeliverable messages to the dead-letter destination.
type deadLetters struct {
	enabled    bool
	topic      string
	out        *service.OwnedOutput // nil: write to topic
	spool      *deadletter.Spool
	maxPayload int

	mCount  *service.MetricCounter
	mFailed *service.MetricCounter
	log     *service.Logger
	warns   rateLimiter // one "dead-lettered" warning per reason per period
	errs    rateLimiter // one "destination failed" error per period
}

func parseDeadLetters(conf *service.ParsedConfig, mgr *service.Resources) (*deadLetters, error) {
	dl := &deadLetters{log: mgr.Logger()}
	var err error
	if dl.enabled, err = conf.FieldBool(fieldDLEnabled); err != nil {
		return nil, err
	}
	if dl.topic, err = conf.FieldString(fieldDLTopic); err != nil {
		return nil, err
	}
	dir, err := conf.FieldString(fieldDLSpoolDir)
	if err != nil {
		return nil, err
	}
	if dl.maxPayload, err = conf.FieldInt(fieldDLMaxPayload); err != nil {
		return nil, err
	}
	if conf.Contains(fieldDLOutput) {
		if dl.out, err = conf.FieldOutput(fieldDLOutput); err != nil {
			return nil, fmt.Errorf("field %s.%s: %w", fieldDeadLetter, fieldDLOutput, err)
		}
		// Started now: an OwnedOutput never written to is only started by
		// its first write, and its Close would then wait until Close's own
		// deadline.
		if err := dl.out.Prime(); err != nil {
			return nil, fmt.Errorf("field %s.%s: %w", fieldDeadLetter, fieldDLOutput, err)
		}
	}
	dl.spool = deadletter.NewSpool(dir)
	m := mgr.Metrics()
	dl.mCount = m.NewCounter(metricDeadLettered, "reason", "mapping")
	dl.mFailed = m.NewCounter(metricDeadLetterFailure)
	dl.mFailed.Incr(0)
	return dl, nil
}

// destination names where records go, for logs.
func (dl *deadLetters) destination() string {
	if dl.out != nil {
		return "the dead_letter output"
	}
	return "Danube topic " + dl.topic
}

// causeOf classifies a send error: a non-nil cause means the message can
// never be delivered as it is; nil means the failure is transient (retry and
// hold the ack).
func causeOf(err error, topic string) *dlCause {
	if err == nil || errors.Is(err, danube.ErrClosed) || errors.Is(err, errClosed) ||
		errors.Is(err, service.ErrNotConnected) {
		return nil
	}
	c := &dlCause{err: err.Error(), topic: topic}
	switch {
	case errors.Is(err, danube.ErrMessageTooLarge):
		c.reason = deadletter.ReasonTooLarge
		return c
	case errors.Is(err, danube.ErrNamespaceNotFound):
		c.reason = deadletter.ReasonNamespaceMissing
		return c
	}
	if !danube.IsPermanent(err) {
		return nil
	}
	var de *danube.Error
	code, rpc := codes.Unknown, ""
	if errors.As(err, &de) {
		code, rpc = de.Code, de.RPC
	}
	switch {
	case code == codes.Unauthenticated:
		// A refused token refuses every message: an outage to fix (the
		// token file is re-read), not a property of this message.
		return nil
	case danube.IsSchemaRefusal(err):
		c.reason = deadletter.ReasonSchemaRejected
	case code == codes.OutOfRange:
		c.reason = deadletter.ReasonTooLarge
	case code == codes.InvalidArgument && rpc == "SendMessage" && strings.Contains(err.Error(), "exceeds maximum allowed"):
		c.reason = deadletter.ReasonTooLarge
	case code == codes.InvalidArgument && rpc != "SendMessage":
		c.reason = deadletter.ReasonInvalidTopic
	case code == codes.NotFound:
		c.reason = deadletter.ReasonTopicMissing
	case code == codes.PermissionDenied:
		c.reason = deadletter.ReasonPermissionDenied
	default:
		c.reason = deadletter.ReasonRejected
	}
	return c
}

// causeFromMeta returns the cause a pipeline (or the mqtt input) set in the
// message's metadata, or nil.
func causeFromMeta(msg *service.Message) *dlCause {
	reason, ok := msg.MetaGet(deadletter.Reason)
	if !ok || reason == "" {
		return nil
	}
	c := &dlCause{reason: reason}
	c.err, _ = msg.MetaGet(deadletter.Error)
	if c.err == "" {
		if e := msg.GetError(); e != nil {
			c.err = e.Error()
		} else {
			c.err = "marked for the dead-letter destination by the pipeline (" + deadletter.Reason + ")"
		}
	}
	c.topic, _ = msg.MetaGet(deadletter.Topic)
	c.mapping, _ = msg.MetaGet(deadletter.Mapping)
	return c
}

// writeDeadLetter sends one dead-letter record for msg and returns nil once the
// destination has it.
func (o *output) writeDeadLetter(ctx context.Context, msg *service.Message, payload []byte, c *dlCause) error {
	dl := o.dl
	now := time.Now().UTC()
	attrs := o.attributes(msg)
	if attrs == nil {
		attrs = map[string]string{}
	}
	_ = msg.MetaWalkMut(func(k string, v any) error {
		if strings.HasPrefix(k, "mqtt_") {
			attrs[k] = metaString(msg, k, v)
		}
		return nil
	})
	attrs[deadletter.Reason] = c.reason
	attrs[deadletter.Error] = c.err
	attrs[deadletter.Topic] = c.topic
	attrs[deadletter.Time] = now.Format(time.RFC3339Nano)
	if c.mapping != "" {
		attrs[deadletter.Mapping] = c.mapping
	}

	if dl.out != nil {
		rec := service.NewMessage(payload)
		for k, v := range attrs {
			rec.MetaSetMut(k, v)
		}
		if c.reason == deadletter.ReasonTooLarge {
			rec.MetaSetMut(deadletter.Size, strconv.Itoa(len(payload)))
			rec.MetaSetMut(deadletter.SHA256, deadletter.Digest(payload))
		}
		if err := dl.out.Write(ctx, rec); err != nil {
			return fmt.Errorf("writing to the dead_letter output: %w", err)
		}
		return nil
	}

	body := payload
	if c.reason == deadletter.ReasonTooLarge || len(payload) > danube.MaxRequestBytes-64*1024 {
		attrs[deadletter.Size] = strconv.Itoa(len(payload))
		attrs[deadletter.SHA256] = deadletter.Digest(payload)
		path, err := dl.spool.Write(payload, attrs, now)
		if err != nil {
			return err
		}
		attrs[deadletter.SpoolFile] = path
		if len(body) > dl.maxPayload {
			body = body[:dl.maxPayload]
			attrs[deadletter.Truncated] = "true"
		}
	}
	e, err := o.cache.acquire(ctx, producerKey{topic: dl.topic, reliable: true})
	if err != nil {
		return fmt.Errorf("dead-letter topic %s: %w", dl.topic, err)
	}
	defer o.cache.release(e)
	err = e.producer.Send(ctx, danube.Message{Payload: body, Attributes: attrs})
	if errors.Is(err, danube.ErrMessageTooLarge) {
		// The message's own attributes are too large: keep only ours.
		slim := map[string]string{}
		for k, v := range attrs {
			if strings.HasPrefix(k, "dead_letter_") || (strings.HasPrefix(k, "mqtt_") && len(v) < 1024) {
				slim[k] = v
			}
		}
		err = e.producer.Send(ctx, danube.Message{Payload: body, Attributes: slim})
	}
	if err != nil {
		return fmt.Errorf("dead-letter topic %s: %w", dl.topic, err)
	}
	return nil
}

// deadLetter handles one undeliverable message. It returns nil when the
// message may be acknowledged, or the error to nack it with.
func (o *output) deadLetter(msg *service.Message, payload []byte, c *dlCause) error {
	dl := o.dl
	if !dl.enabled {
		return fmt.Errorf("%s (%s; dead_letter.enabled is false, so it is retried for ever)", c.err, c.reason)
	}
	if payload == nil {
		var err error
		if payload, err = msg.AsBytes(); err != nil {
			payload = nil
		}
	}
	ctx, cancel := context.WithTimeout(o.closeCtx, o.sendTimeout)
	defer cancel()
	mqttTopic, _ := msg.MetaGet("mqtt_topic")
	if err := o.writeDeadLetter(ctx, msg, payload, c); err != nil {
		dl.mFailed.Incr(1)
		dl.errs.do("", func(suppressed int) {
			dl.log.Errorf("DEAD-LETTER DESTINATION FAILING, messages that cannot be delivered are held and retried (the flow behind them stops until it recovers): %v; message from MQTT topic %q, reason %s: %s%s", err, mqttTopic, c.reason, c.err, suppressedNote(suppressed))
		})
		return fmt.Errorf("message cannot be delivered (%s: %s) and the dead-letter destination failed: %w", c.reason, c.err, err)
	}
	mapping := c.mapping
	if mapping == "" {
		mapping = c.topic
	}
	dl.mCount.Incr(1, c.reason, mapping)
	dl.warns.do(c.reason, func(suppressed int) {
		dl.log.Warnf("Dead-lettered a message from MQTT topic %q to %s, reason %s: %s%s", mqttTopic, dl.destination(), c.reason, c.err, suppressedNote(suppressed))
	})
	return nil
}

func suppressedNote(n int) string {
	if n == 0 {
		return ""
	}
	return fmt.Sprintf(" (%d more like it since the last such line)", n)
}

// rateLimiter runs at most one action per key per period and counts the
// ones it suppressed.
type rateLimiter struct {
	mu    sync.Mutex
	every time.Duration
	last  map[string]time.Time
	count map[string]int
}

func (r *rateLimiter) do(key string, f func(suppressed int)) {
	r.mu.Lock()
	if r.last == nil {
		r.last, r.count = map[string]time.Time{}, map[string]int{}
	}
	every := r.every
	if every == 0 {
		every = unreachableLogEvery
	}
	now := time.Now()
	if t, ok := r.last[key]; ok && now.Sub(t) < every {
		r.count[key]++
		r.mu.Unlock()
		return
	}
	n := r.count[key]
	r.last[key], r.count[key] = now, 0
	r.mu.Unlock()
	f(n)
}
