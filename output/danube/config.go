package danubeout

import (
	"fmt"

	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/benthos-danube/benthos-danube/internal/benthoslog"
	"github.com/benthos-danube/benthos-danube/internal/danube"
	"github.com/benthos-danube/benthos-danube/internal/danubeconn"
	"github.com/benthos-danube/benthos-danube/internal/metaref"
	"github.com/benthos-danube/benthos-danube/internal/ordering"
)

// This file turns the ParsedConfig Benthos hands the constructor into an
// output: the checked settings (check.go, the checks lint runs too), then
// what only start-up reads (interpolations, the attribute filter, TLS, the
// token, the dead-letter destination), and the batching policy with the
// ordering stage.

// metaSeq is the metadata key carrying the pipeline-order sequence number that
// the batching stage stamps on every message (see batchPolicy). It is
// never sent as an attribute.
const metaSeq = "danube_output_seq"

// stampProcessorName is the batch processor of the ordering stage, appended
// to the batching policy (see batchPolicy).
const stampProcessorName = "danube_output_order_stamp"

// newOutput is the start-up validation (settings.check, which lint runs
// too, then what only start-up does) and builds the output.
func newOutput(conf *service.ParsedConfig, mgr *service.Resources) (*output, error) {
	s, err := readSettings(conf)
	if err != nil {
		return nil, err
	}
	if errs := s.check(); len(errs) > 0 {
		return nil, errs[0]
	}
	o := &output{
		log:           mgr.Logger(),
		url:           s.url,
		staticTopic:   s.topic,
		topicIsStatic: s.topicStatic,
		partitions:    s.partitions,
		producerName:  s.producerName,
		sendTimeout:   s.sendTimeout,
	}
	if o.topic, err = conf.FieldInterpolatedString(fieldTopic); err != nil {
		return nil, err
	}
	if raw, err := conf.FieldString(fieldTopic); err == nil {
		o.topicIsDefault = raw == defaultTopic
		o.topicF = metaref.New(raw, o.topic)
	}
	if o.key, err = conf.FieldInterpolatedString(fieldKey); err != nil {
		return nil, err
	}
	if raw, err := conf.FieldString(fieldKey); err == nil {
		o.keyF = metaref.New(raw, o.key)
	} else {
		o.keyF = metaref.New("", o.key)
	}
	if o.reliable, err = conf.FieldBool(fieldReliable); err != nil {
		return nil, err
	}
	if conf.Contains(fieldAttributes) {
		if o.attrs, err = conf.FieldMetadataFilter(fieldAttributes); err != nil {
			return nil, err
		}
		if o.attrs.IsEmpty() {
			o.attrs = nil
		}
	}
	if o.attrNames, err = parseAttrNames(conf); err != nil {
		return nil, err
	}
	var fallback *danube.SchemaRef
	if s.schemaSubject != "" {
		fallback = &danube.SchemaRef{Subject: s.schemaSubject, PinnedVersion: uint32(s.schemaVersion)}
	}
	o.schemas = newSchemaBindings(s.bindings, fallback, s.dlTopic)
	if o.clientOpts, err = o.clientOptions(conf); err != nil {
		return nil, err
	}
	if o.dl, err = parseDeadLetters(conf.Namespace(fieldDeadLetter), mgr); err != nil {
		return nil, fmt.Errorf("danube output: %w", err)
	}
	o.wire(mgr.Metrics(), s.maxProducers, s.producerIdle)
	return o, nil
}

// clientOptions reads tls, token and token_file into the Danube client's
// options, and warns about an https:// url without TLS.
func (o *output) clientOptions(conf *service.ParsedConfig) ([]danube.Option, error) {
	c, err := danubeconn.Read(conf, o.url)
	if err != nil {
		return nil, fmt.Errorf("danube output: %w", err)
	}
	o.conn = c
	if w := c.SchemeWarning(o.shownURL()); w != "" {
		o.log.Warnf("danube output: %s", w)
	}
	// The client logs producer losses and re-creations through the output's logger.
	return append(c.Options(), danube.WithLogger(benthoslog.New(o.log))), nil
}

// batchPolicy is the user's batching policy, with the ordering stage's
// stamper appended when messages have a key to order.
func batchPolicy(env *service.Environment, conf *service.ParsedConfig, key *service.InterpolatedString) (service.BatchPolicy, error) {
	if k, ok := key.Static(); ok && k == "" {
		// No key: nothing to order, skip the stamping stage.
		return conf.FieldBatchPolicy(fieldBatching)
	}
	// The ordering stage's stamper (see internal/ordering) numbers metaSeq.
	return ordering.BatchPolicy(env, conf, fieldBatching, stampProcessorName, metaSeq)
}
