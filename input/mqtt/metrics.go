package mqtt

import "github.com/redpanda-data/benthos/v4/public/service"

// exposeMetrics publishes every metric of the input at 0 from the start. A
// series appears in /metrics only once it was first set or incremented, so
// without this mqtt_input_reconnects or mqtt_input_acks_sent would be missing
// until the first reconnect or acknowledgement, and queries such as
// increase(mqtt_input_reconnects[1h]) would see no data instead of 0.
func (in *input) exposeMetrics() {
	for _, c := range []*service.MetricCounter{
		in.mUnmatched, in.mPlaceholder, in.mQoS0Dropped, in.mAcks, in.mDup, in.mNackDropped, in.mReconnects, in.mExpired,
	} {
		c.Incr(0)
	}
	in.gUnacked.Set(0)
	in.gQueued.Set(0)
}
