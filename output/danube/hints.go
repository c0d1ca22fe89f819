package danubeout

import (
	"errors"
	"fmt"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/benthos-danube/benthos-danube/internal/danube"
	"github.com/benthos-danube/benthos-danube/internal/danube/topicname"
	"github.com/benthos-danube/benthos-danube/internal/danubeconn"
)

// This file holds the advice attached to Danube errors, in one place so that
// connection errors, message errors and dead-letter reasons say the same
// thing. hint knows only the error; (*output).hint adds what the
// configuration explains (an https:// url without tls.enabled).
// danubeconn holds the advice the danube input gives too.

// hint returns what to do about err, an error of the Danube client, or ""
// when there is nothing specific to say: a missing topic here, the address,
// TLS and credentials in danubeconn.
func hint(err error) string {
	if h := missingTopicHint(err); h != "" {
		return h
	}
	return danubeconn.Hint(err)
}

// missingTopicHint is the advice for a topic the broker does not have.
func missingTopicHint(err error) string {
	if status.Code(err) != codes.NotFound || !strings.Contains(err.Error(), "Unable to find the topic") {
		return ""
	}
	return fmt.Sprintf("the topic does not exist and the broker does not create topics on first use: create it (danube-admin-cli topics create %s, with --partitions and --dispatch-strategy as configured) or set auto_create_topics: true in the broker configuration", missingTopic(err))
}

// missingTopic returns the topic of a NotFound error, without the partition
// suffix: partitions are created with their topic.
func missingTopic(err error) string {
	var de *danube.Error
	if errors.As(err, &de) && de.Topic != "" {
		base, _ := topicname.SplitPartition(de.Topic)
		return base
	}
	return "<topic>"
}

// hint is hint(err) with what the configuration explains: a connection error
// with an https:// url and tls disabled.
func (o *output) hint(err error) string {
	if h := missingTopicHint(err); h != "" {
		return h
	}
	if o.conn == nil {
		return danubeconn.Hint(err)
	}
	return o.conn.Hint(err)
}

// explain returns err with o.hint(err) appended, or err itself when there is
// no hint or err already carries one. errors.Is and errors.As see through it.
func (o *output) explain(err error) error {
	var already *hinted
	if errors.As(err, &already) {
		return err
	}
	if h := o.hint(err); h != "" {
		return &hinted{err: err, hint: h}
	}
	return err
}

type hinted struct {
	err  error
	hint string
}

func (e *hinted) Error() string { return e.err.Error() + "; " + e.hint }
func (e *hinted) Unwrap() error { return e.err }

// connectError is the error of a failed Connect ping: an authentication
// failure says so (it is not a reachability problem), anything else is
// "unreachable", each with its hint.
func (o *output) connectError(err error) error {
	if status.Code(err) == codes.Unauthenticated {
		return fmt.Errorf("danube output: broker %s refused the authentication: %w", o.shownURL(), o.explain(err))
	}
	return fmt.Errorf("danube output: broker %s unreachable: %w", o.shownURL(), o.explain(err))
}
