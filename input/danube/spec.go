package danubein

import (
	"fmt"
	"os"

	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/benthos-danube/benthos-danube/internal/configlint"
	"github.com/benthos-danube/benthos-danube/internal/danubeconn"
)

// Field names of the danube input.
const (
	fieldURL          = danubeconn.FieldURL
	fieldTopics       = "topics"
	fieldSubscription = "subscription"
	fieldSubType      = "subscription_type"
	fieldConsumerName = "consumer_name"
	fieldKeyFilters   = "key_filters"
	fieldMaxUnacked   = "max_unacked"
	fieldNackDelay    = "nack_delay"

	defaultConsumerName = "benthos-danube"
	defaultMaxUnacked   = 256
)

// Subscription type values of subscription_type.
const (
	subExclusive = "exclusive"
	subShared    = "shared"
	subFailover  = "failover"
	subKeyShared = "key_shared"
)

// InputName is the name the input is registered under.
const InputName = "danube"

// Metric names emitted through mgr.Metrics().
const (
	MetricUnacked   = "danube_input_unacked"
	MetricNacks     = "danube_input_nacks"
	MetricAckErrors = "danube_input_ack_errors"
)

// Spec returns the configuration specification of the danube input.
func Spec() *service.ConfigSpec {
	// The lint rule runs the start-up checks (settings.check); see check.go.
	lintRule := configlint.Rule(lintFuncName, "danube input", Spec, lintChecks, os.Stderr)
	return service.NewConfigSpec().
		Beta().
		Categories("Services").
		Version("0.1.0").
		Summary("Reads messages from Danube topics, acknowledging each to Danube only after Benthos acknowledged it.").
		Description(`
The input subscribes to every topic of `+"`topics`"+` (each partition of a partitioned topic) under one subscription, and
keeps the subscription alive: after a lost receive stream, a broker restart or a topic move it subscribes again, with
back-off, for as long as it runs; while every topic and partition has lost its stream (Danube is down) the input
reports its connection lost (`+"`input_connection_lost`"+`, `+"`/ready`"+` answers 503) until it has subscribed again. The topics must exist; Danube never creates a topic for a consumer, so the input
retries until a producer or an administrator created it. A new subscription starts at the end of the topic.

== Delivery guarantees

On a topic with *reliable* dispatch, delivery is at least once. A message is acknowledged to Danube only after the
pipeline acknowledged it (the output confirmed it). A nack, a failed processing step or a failed output write nacks it
to Danube, which redelivers it after its nack delay (the broker's policy of 1 s, 2 s, 4 s … or `+"`nack_delay`"+` if
longer); nothing is retried inside the bridge. A message neither acked nor nacked (the bridge was killed) is
redelivered when the consumer subscribes again, or after Danube's ack timeout. Duplicates are therefore possible, and
redeliveries can overtake later messages.

Danube holds a message that failed six deliveries (its default `+"`max_redelivery_count`"+` of 5 and poison policy
`+"`Block`"+`) and dispatches nothing else on that subscription until an administrator acts, so route messages that can
never be delivered to a dead-letter output in the pipeline (for example with a `+"`fallback`"+` output), or set the
subscription's poison policy to `+"`DeadLetter`"+` in Danube.

On a topic with *non-reliable* dispatch Danube delivers at most once: acks and nacks have no effect, a nacked message
is not redelivered, and Danube drops messages for a consumer that falls behind. Use reliable dispatch for commands.

== Ordering

`+"`exclusive`"+` and `+"`failover`"+` deliver a topic (each partition) to one consumer in order; `+"`shared`"+`
spreads messages over the consumers of the subscription; `+"`key_shared`"+` keeps the messages of one routing key on
one consumer. Within the bridge, messages are handed to the pipeline in the order received; with `+"`max_in_flight`"+`
greater than one downstream they can be written out of order.

== Back-pressure

At most `+"`max_unacked`"+` messages are in the pipeline and not yet acknowledged (or nacked) to Danube; the input
reads no more until one is. Danube's own window (`+"`dispatch.max_unacked_messages`"+`, 10 per subscription by
default) bounds the messages in flight per topic or partition.

== Metadata

Every attribute of the Danube message is set as metadata under its own name (a string). Then:

- `+"`danube_topic`"+`: the topic as configured (the base name of a partitioned topic)
- `+"`danube_partition`"+`: the partition number (an integer), for a partition only
- `+"`danube_partition_topic`"+`: the exact topic or partition delivered on
- `+"`danube_producer_name`"+`, `+"`danube_producer_id`"+`: the producer
- `+"`danube_offset`"+`: the topic offset (reliable topics; 0 on non-reliable ones)
- `+"`danube_publish_time`"+`: the producer's publish time (a timestamp)
- `+"`danube_routing_key`"+`: the routing key, when the producer set one
- `+"`danube_schema_id`"+`, `+"`danube_schema_version`"+`: the schema, when the producer used one
- `+"`danube_subscription`"+`: the subscription name

`+"`danube_topic`"+` is also the `+"`danube`"+` output's default topic: a pipeline from this input to a `+"`danube`"+`
output must set the output's `+"`topic`"+`, or each message goes back to the topic it came from.`).
		Fields(
			service.NewStringField(fieldURL).
				Description("The Danube service URL, `host:port` optionally prefixed by `http://` or `https://`. The scheme does not enable TLS: use the `tls` field. `lint` and start-up reject any other form (another scheme, no port, a path), which could never connect.").
				Examples("http://127.0.0.1:6650", "danube-broker.example.com:6650"),
			service.NewStringListField(fieldTopics).
				Description("The Danube topics to consume, each of the form `/namespace/topic`. A partitioned topic is consumed on all its partitions (those that exist when the input subscribes).").
				Examples([]string{"/default/device_commands"}, []string{"/iot/commands", "/iot/config"}),
			service.NewStringField(fieldSubscription).
				Description("The subscription name. Danube keeps a reliable subscription's position across restarts of the bridge; a new name starts at the end of the topics.").
				Examples("mqtt-downlink"),
			service.NewStringEnumField(fieldSubType, subExclusive, subShared, subFailover, subKeyShared).
				Description("The subscription type, fixed when the subscription is first created: `exclusive` (one consumer name only), `shared` (round robin over the consumers), `failover` (the first consumer gets everything, others stand by) or `key_shared` (messages of one routing key go to one consumer).").
				Default(subShared),
			service.NewStringField(fieldConsumerName).
				Description("The consumer name. The same name reattaches to the same consumer in Danube after a restart, so its unacknowledged messages are redelivered at once; give every bridge instance of one subscription its own name.").
				Default(defaultConsumerName).
				Examples("downlink-eu-1"),
			service.NewStringListField(fieldKeyFilters).
				Description("For `key_shared`: glob patterns (`*`, `?`) of the routing keys this consumer accepts; empty accepts all.").
				Default([]any{}).
				Examples([]string{"device-1*"}).
				Advanced(),
			service.NewIntField(fieldMaxUnacked).
				Description("The most messages in the pipeline not yet acknowledged or nacked to Danube. The input waits for an ack before reading more.").
				Default(defaultMaxUnacked).
				Examples(64, 1024),
			service.NewDurationField(fieldNackDelay).
				Description("The redelivery delay requested with every nack. Danube redelivers after the longer of this and its own policy delay (1 s, 2 s, 4 s … per attempt), capped at 60 s. `0s` leaves it to the broker's policy.").
				Default("0s").
				Examples("0s", "5s").
				Advanced(),
		).
		// tls, token, token_file: shared with the danube output.
		Fields(danubeconn.Fields()...).
		LintRule(lintRule).
		Example("Device commands from Danube", "Consumes a reliable Danube topic of device commands with a failover subscription.", `
input:
  danube:
    url: http://127.0.0.1:6650
    topics: [ /default/device_commands ]
    subscription: mqtt-downlink
    subscription_type: failover
output:
  stdout: {}
`)
}

// Register registers the danube input on env. The package's init registers
// it on the global environment; tests use an isolated environment.
func Register(env *service.Environment) error {
	if err := env.RegisterBatchInput(InputName, Spec(), newFromConfig); err != nil {
		return fmt.Errorf("registering the %s input: %w", InputName, err)
	}
	return nil
}

func init() {
	if err := Register(service.GlobalEnvironment()); err != nil {
		panic(err)
	}
}
