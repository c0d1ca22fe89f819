package mqttout

import (
	"fmt"

	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/benthos-danube/benthos-danube/internal/mqttconn"
	"github.com/benthos-danube/benthos-danube/internal/ordering"
)

// This file turns the ParsedConfig Benthos hands the constructor into an
// output: the checked settings (check.go, the checks lint runs too), then
// what only start-up reads (credentials, TLS, the interpolations, the
// dead-letter destination).

// metaSeq is the metadata key of the ordering stage's stamp, and
// stampProcessorName its processor (see internal/ordering).
const (
	metaSeq            = "mqtt_output_seq"
	stampProcessorName = "mqtt_output_order_stamp"
)

// newOutput is the start-up validation (settings.check, which lint runs
// too, then what only start-up does) and builds the output.
func newOutput(conf *service.ParsedConfig, mgr *service.Resources, dial dialFunc) (*output, error) {
	s, err := readSettings(conf)
	if err != nil {
		return nil, err
	}
	chk, errs := s.check()
	if len(errs) > 0 {
		return nil, errs[0]
	}
	if dial == nil {
		dial = dial311
		if s.protocol == mqttconn.Protocol5 {
			dial = dial5
		}
	}
	o := &output{
		v5:           s.protocol == mqttconn.Protocol5,
		dial:         dial,
		writeTimeout: s.writeTimeout,
		log:          mgr.Logger(),
		seq:          ordering.NewSequencer[struct{}](),
		sus:          newSuspects(),
		conn: connConfig{
			urls:           chk.urls,
			keepalive:      s.keepalive,
			connectTimeout: s.connectTimeout,
			writeTimeout:   s.writeTimeout,
		},
	}
	wrap := func(field string, err error) error { return fmt.Errorf("mqtt output: field %s: %w", field, err) }
	if o.conn.clientID, err = conf.FieldString(fieldClientID); err != nil {
		return nil, wrap(fieldClientID, err)
	}
	if o.conn.user, err = conf.FieldString(fieldUser); err != nil {
		return nil, wrap(fieldUser, err)
	}
	if o.conn.password, err = conf.FieldString(fieldPassword); err != nil {
		return nil, wrap(fieldPassword, err)
	}
	tlsConf, tlsOn, err := conf.FieldTLSToggled(fieldTLS)
	if err != nil {
		return nil, wrap(fieldTLS, err)
	}
	if tlsOn {
		o.conn.tls = tlsConf
	}
	if o.topic, err = conf.FieldInterpolatedString(fieldTopic); err != nil {
		return nil, wrap(fieldTopic, err)
	}
	if o.qos, err = conf.FieldInterpolatedString(fieldQoS); err != nil {
		return nil, wrap(fieldQoS, err)
	}
	if o.retained, err = conf.FieldInterpolatedString(fieldRetained); err != nil {
		return nil, wrap(fieldRetained, err)
	}
	if o.skipOrigin, err = conf.FieldBool(fieldSkipOrigin); err != nil {
		return nil, wrap(fieldSkipOrigin, err)
	}
	if s.userProps {
		if o.userProps, err = conf.FieldMetadataFilter(fieldUserProps); err != nil {
			return nil, wrap(fieldUserProps, err)
		}
		if o.userProps.IsEmpty() {
			o.userProps = nil
		}
	}
	if o.dl, err = parseDeadLetters(conf, mgr); err != nil {
		return nil, err
	}
	o.wire(mgr.Metrics())
	return o, nil
}
