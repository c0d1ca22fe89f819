package danube

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// MaxRequestBytes is the largest encoded request message a Danube broker
// accepts (tonic's default decode limit). A StreamMessage above it is rejected
// client-side with ErrMessageTooLarge.
const MaxRequestBytes = 4194304

// ErrMessageTooLarge is returned (wrapped in *Error, code OutOfRange) when the
// encoded StreamMessage of a send exceeds MaxRequestBytes. It is never retried.
var ErrMessageTooLarge = errors.New("message too large: encoded request exceeds the broker limit of 4194304 bytes (4 MiB)")

// ErrNamespaceNotFound is wrapped by the permanent error CreateProducer
// returns when the topic's namespace does not exist (producers never create
// namespaces).
var ErrNamespaceNotFound = errors.New("namespace does not exist")

// ErrClosed is returned by operations on a closed Client, Producer or Consumer.
var ErrClosed = errors.New("danube: closed")

// Error is the error type returned by the client. It records the topic, the
// RPC that failed and the gRPC status code.
type Error struct {
	// Topic is the topic or partition the call was about ("" if none).
	Topic string
	// RPC is the gRPC method name, e.g. "SendMessage" or "CreateProducer".
	RPC string
	// Code is the gRPC status code of the failure.
	Code codes.Code
	// Err is the underlying error.
	Err error

	permanent bool
}

// Error implements error: "danube <RPC> on <topic>: <code>: <msg>".
func (e *Error) Error() string {
	msg := ""
	if e.Err != nil {
		if s, ok := status.FromError(e.Err); ok && s.Code() != codes.Unknown {
			msg = s.Message()
		} else {
			msg = e.Err.Error()
		}
	}
	topic := e.Topic
	if topic == "" {
		topic = "-"
	}
	return "danube " + e.RPC + " on " + topic + ": " + e.Code.String() + ": " + msg
}

// Unwrap returns the underlying error.
func (e *Error) Unwrap() error { return e.Err }

// newError wraps err (usually a gRPC status error) into *Error.
func newError(topic, rpc string, err error) *Error {
	if err == nil {
		return nil
	}
	var de *Error
	if errors.As(err, &de) {
		return de
	}
	return &Error{Topic: topic, RPC: rpc, Code: codeOf(err), Err: err}
}

// codeOf returns the gRPC code of err, mapping context errors.
func codeOf(err error) codes.Code {
	if err == nil {
		return codes.OK
	}
	var de *Error
	if errors.As(err, &de) {
		return de.Code
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return codes.DeadlineExceeded
	}
	if errors.Is(err, context.Canceled) {
		return codes.Canceled
	}
	return status.Code(err)
}

func messageOf(err error) string {
	if s, ok := status.FromError(err); ok {
		return s.Message()
	}
	return err.Error()
}

// isDraining reports whether err is the broker's "topic draining or closed"
// PermissionDenied, which means the topic moved and a lookup is needed.
func isDraining(err error) bool {
	return codeOf(err) == codes.PermissionDenied && strings.Contains(messageOf(err), "draining or closed")
}

// isNamespaceMissing reports whether err is the broker's Unavailable answer
// for a topic in a namespace that does not exist.
func isNamespaceMissing(err error) bool {
	return codeOf(err) == codes.Unavailable && strings.Contains(messageOf(err), "Unable to find the namespace")
}

// isPlacement reports whether err is a SendMessage PermissionDenied
// "Unable to publish the message: <reason>" whose reason is where the topic
// lives (not loaded on this broker, producer not attached, draining) or the
// broker's storage, rather than the message itself (its schema): a lookup and
// a fresh producer can cure it.
func isPlacement(err error) bool {
	if codeOf(err) != codes.PermissionDenied {
		return false
	}
	msg := messageOf(err)
	return strings.Contains(msg, "Unable to publish the message") && !IsSchemaRefusal(err)
}

// IsSchemaRefusal reports whether err is the broker's refusal of a message
// or producer because of its schema (PermissionDenied or FailedPrecondition
// naming the schema).
func IsSchemaRefusal(err error) bool {
	c := codeOf(err)
	if c != codes.PermissionDenied && c != codes.FailedPrecondition {
		return false
	}
	return strings.Contains(strings.ToLower(messageOf(err)), "schema")
}

// producerLost reports whether a SendMessage error means the producer must
// be looked up and created again (broker restart, topic move or draining).
func producerLost(err error) bool {
	return codeOf(err) == codes.NotFound || isDraining(err) || isPlacement(err)
}

// transientCode reports codes that are retried with backoff against the same broker.
func transientCode(c codes.Code) bool {
	switch c {
	case codes.Unavailable, codes.DeadlineExceeded, codes.ResourceExhausted, codes.Aborted:
		return true
	}
	return false
}

// IsRetryable reports whether err is transient: retrying the operation later
// (possibly after a lookup and re-creation) can succeed. Unavailable,
// DeadlineExceeded, ResourceExhausted, Aborted, NotFound from SendMessage or
// ReceiveMessages (producer/consumer lost) and PermissionDenied "draining or
// closed" are retryable. ErrMessageTooLarge never is.
func IsRetryable(err error) bool {
	if err == nil || errors.Is(err, ErrMessageTooLarge) {
		return false
	}
	var de *Error
	if errors.As(err, &de) && de.permanent {
		return false
	}
	c := codeOf(err)
	if transientCode(c) {
		return true
	}
	if c == codes.NotFound && de != nil {
		switch de.RPC {
		case "SendMessage", "ReceiveMessages", "HealthCheck":
			return true
		}
		return false
	}
	return isDraining(err) || isPlacement(err)
}

// IsPermanent reports whether err will not go away by retrying the same
// request: InvalidArgument, OutOfRange (message too large), FailedPrecondition,
// Unauthenticated, AlreadyExists, Unimplemented, PermissionDenied (other than
// draining), NotFound outside the producer-lost case, and errors the client
// itself marked permanent (e.g. a missing namespace after retries).
func IsPermanent(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, ErrMessageTooLarge) {
		return true
	}
	var de *Error
	if errors.As(err, &de) && de.permanent {
		return true
	}
	if IsRetryable(err) {
		return false
	}
	switch codeOf(err) {
	case codes.InvalidArgument, codes.OutOfRange, codes.FailedPrecondition, codes.Unauthenticated,
		codes.AlreadyExists, codes.Unimplemented, codes.PermissionDenied, codes.NotFound:
		return true
	}
	return false
}

// IsConnectionError reports whether err means the broker could not be
// reached at transport level (Unavailable that is not one of the broker's own
// Unavailable answers such as "redo the lookup" or a missing namespace).
func IsConnectionError(err error) bool {
	if err == nil || codeOf(err) != codes.Unavailable {
		return false
	}
	var de *Error
	if errors.As(err, &de) && de.permanent {
		return false
	}
	msg := messageOf(err)
	for _, s := range []string{"redo the", "Unable to find the namespace", "topic metadata was created", "served by another broker"} {
		if strings.Contains(msg, s) {
			return false
		}
	}
	return true
}

// GRPCStatus lets status.Code and status.FromError see the gRPC code of an *Error.
func (e *Error) GRPCStatus() *status.Status { return status.New(e.Code, e.Error()) }

// ctxError reports that ctx ended while retrying; it keeps the code of the
// last failure (so a dead broker still classifies as a connection error) and
// wraps the context error.
func ctxError(ctx context.Context, topic, rpc string, last error) error {
	cerr := context.Cause(ctx)
	if cerr == nil {
		cerr = ctx.Err()
	}
	if last == nil {
		return &Error{Topic: topic, RPC: rpc, Code: codeOf(ctx.Err()), Err: cerr}
	}
	var de *Error
	if errors.As(last, &de) {
		rpc = de.RPC
	}
	return &Error{Topic: topic, RPC: rpc, Code: codeOf(last), Err: fmt.Errorf("%w (last error: %s)", cerr, messageOf(last))}
}
