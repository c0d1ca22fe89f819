package danubetest

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/benthos-danube/benthos-danube/internal/danubepb"
)

// Cluster is the state shared by several brokers: namespaces, topics with
// their owner and dispatch strategy, message logs, subscriptions and cursors,
// and the schema registry. Each Server owns its producer and consumer
// registries. Use NewCluster and AddBroker for multi-broker (redirect) tests;
// NewServer builds a private one-broker cluster.
type Cluster struct {
	opts []Option

	mu         sync.Mutex
	namespaces map[string]bool
	topics     map[string]*topic
	brokers    []*Server
	schemas    map[string]*subject // by subject name
	schemaByID map[uint64]*subject
	nextSchema uint64
	notify     chan struct{} // closed and replaced whenever a message is stored
}

// NewCluster returns an empty cluster. opts apply to every broker added with
// AddBroker (before the broker's own options).
func NewCluster(opts ...Option) *Cluster {
	c := &Cluster{
		opts:       opts,
		namespaces: map[string]bool{"default": true, "system": true},
		topics:     map[string]*topic{},
		schemas:    map[string]*subject{},
		schemaByID: map[uint64]*subject{},
		notify:     make(chan struct{}),
	}
	cfg := defaultConfig()
	for _, o := range opts {
		o(&cfg)
	}
	for _, ns := range cfg.namespaces {
		c.namespaces[ns] = true
	}
	return c
}

// AddBroker starts a new broker that shares this cluster's state.
func (c *Cluster) AddBroker(opts ...Option) (*Server, error) {
	all := append(slices.Clone(c.opts), opts...)
	s, err := newServer(c, all)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.brokers = append(c.brokers, s)
	c.mu.Unlock()
	return s, nil
}

// Close closes every broker of the cluster.
func (c *Cluster) Close() {
	c.mu.Lock()
	bs := slices.Clone(c.brokers)
	c.mu.Unlock()
	for _, b := range bs {
		b.Close()
	}
}

// CreateNamespace adds a namespace to the cluster.
func (c *Cluster) CreateNamespace(ns string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.namespaces[ns] = true
}

type topic struct {
	name      string
	partition int
	reliable  bool
	owner     *Server
	draining  bool
	subject   string
	policy    *topicPolicy              // nil: the default, warn without payload validation (schema.go)
	log       []*danubepb.StreamMessage // every accepted message; index == offset on reliable topics
	producers map[string]uint64         // producer name → id
	subs      map[string]*subscription
	dropped   int // non-reliable messages no consumer of a subscription took
}

type subscription struct {
	name      string
	typ       danubepb.ConsumerRequest_SubscriptionType
	topic     *topic
	consumers []*consumer // attach order
	rr        int
	dropped   int // non-reliable messages dropped for this subscription

	// reliable state
	start     uint64 // the tail when the subscription was created
	cursor    uint64 // every offset below is acked
	next      uint64 // next offset never dispatched
	acked     map[uint64]bool
	inflight  map[uint64]delivery
	redeliver map[uint64]time.Time
	attempts  map[uint64]int
	blocked   bool

	// ackDue is no later than the earliest ack deadline in inflight (zero:
	// nothing in flight), so dispatch scans inflight for ack timeouts only
	// when one may have passed, not on every ack.
	ackDue time.Time
	// redeliverKeys are the offsets of redeliver in order (it may still
	// hold offsets no longer waiting); rebuilt only when redeliverDirty, so
	// that a backlog of redeliveries is not sorted again on every ack.
	redeliverKeys  []uint64
	redeliverDirty bool
	// redeliverDue is no later than the earliest future redelivery (zero:
	// none known).
	redeliverDue time.Time
}

type delivery struct {
	c        *consumer
	deadline time.Time
}

type consumer struct {
	id      uint64
	name    string
	sub     *subscription
	broker  *Server
	filters []string
	active  bool
	queue   chan *danubepb.StreamMessage
	stop    chan struct{} // non-nil while a ReceiveMessages stream is attached
	stopErr error
}

type producer struct {
	id    uint64
	name  string
	topic string
}

// validTopicName applies the broker's check: exactly three '/'-separated
// parts, every rune alphanumeric, '_' or '-'.
func validTopicName(name string) bool {
	parts := strings.Split(name, "/")
	if len(parts) != 3 {
		return false
	}
	for _, p := range parts {
		for _, r := range p {
			if !unicode.IsLetter(r) && !unicode.IsDigit(r) && r != '_' && r != '-' {
				return false
			}
		}
	}
	return true
}

func invalidTopicText(name string) string {
	return fmt.Sprintf("The topic: %s has an invalid format, should be: /namespace_name/topic_name", name)
}

func namespaceOf(name string) string { return strings.Split(name, "/")[1] }

// partitionOf returns N for "<base>-part-<N>" and -1 otherwise.
func partitionOf(name string) int {
	i := strings.LastIndex(name, "-part-")
	if i < 0 {
		return -1
	}
	n, err := strconv.Atoi(name[i+len("-part-"):])
	if err != nil || n < 0 {
		return -1
	}
	return n
}

func randomID(taken func(uint64) bool) uint64 {
	for {
		id := rand.Uint64()
		if id != 0 && !taken(id) {
			return id
		}
	}
}

// storeLocked appends m to t's log, stamping the offset on reliable topics.
func (c *Cluster) storeLocked(t *topic, m *danubepb.StreamMessage) {
	if t.reliable {
		m.MsgId.TopicOffset = uint64(len(t.log))
	}
	t.log = append(t.log, m)
	close(c.notify)
	c.notify = make(chan struct{})
}

// Message is one message accepted by SendMessage, as stored by the broker.
type Message struct {
	Topic         string // exact topic or partition name (msg_id.topic_name)
	Partition     int    // N for "<base>-part-N", -1 if not a partition
	Payload       []byte
	Attributes    map[string]string
	RoutingKey    string
	HasRoutingKey bool
	ProducerName  string
	ProducerID    uint64
	PublishTime   uint64 // client epoch milliseconds
	Offset        uint64 // reliable topics: the assigned offset; otherwise as sent (0)
	SchemaID      *uint64
	SchemaVersion *uint32
	RequestID     uint64
}

func toMessage(t *topic, m *danubepb.StreamMessage) Message {
	out := Message{
		Topic:        t.name,
		Partition:    t.partition,
		Payload:      slices.Clone(m.GetPayload()),
		Attributes:   maps.Clone(m.GetAttributes()),
		ProducerName: m.GetProducerName(),
		ProducerID:   m.GetMsgId().GetProducerId(),
		PublishTime:  m.GetPublishTime(),
		Offset:       m.GetMsgId().GetTopicOffset(),
		RequestID:    m.GetRequestId(),
	}
	if out.Payload == nil {
		out.Payload = []byte{}
	}
	if m.RoutingKey != nil {
		out.RoutingKey, out.HasRoutingKey = *m.RoutingKey, true
	}
	if m.SchemaId != nil {
		v := *m.SchemaId
		out.SchemaID = &v
	}
	if m.SchemaVersion != nil {
		v := *m.SchemaVersion
		out.SchemaVersion = &v
	}
	return out
}

// Messages returns copies of everything SendMessage accepted for the exact
// topic or partition name, in order.
func (c *Cluster) Messages(topicName string) []Message {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := c.topics[topicName]
	if t == nil {
		return nil
	}
	out := make([]Message, len(t.log))
	for i, m := range t.log {
		out[i] = toMessage(t, m)
	}
	return out
}

// MessageCount returns the number of messages accepted for the exact topic or
// partition name.
func (c *Cluster) MessageCount(topicName string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if t := c.topics[topicName]; t != nil {
		return len(t.log)
	}
	return 0
}

// TotalMessages returns the number of messages accepted on every topic.
func (c *Cluster) TotalMessages() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, t := range c.topics {
		n += len(t.log)
	}
	return n
}

// Topics returns every topic and partition name, sorted.
func (c *Cluster) Topics() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Sorted(maps.Keys(c.topics))
}

// DroppedMessages returns how many messages of the exact non-reliable topic
// or partition were dropped for a subscription because no consumer could
// take them: the consumer's queue (WithConsumerQueue) was full, as Danube
// drops for a slow non-reliable consumer, or no consumer was attached. Each
// subscription that missed a message counts it once. Reliable topics never
// drop.
func (c *Cluster) DroppedMessages(topicName string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if t := c.topics[topicName]; t != nil {
		return t.dropped
	}
	return 0
}

// Unacked returns, for a subscription of the exact reliable topic or
// partition, how many messages were dispatched and are not acked yet
// (delivered and waiting for their ack, or waiting for redelivery), and
// how many of the messages published since it was created were acked. ok
// is false when there is no such subscription.
func (c *Cluster) Unacked(topicName, subscription string) (unacked, acked int, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := c.topics[topicName]
	if t == nil || t.subs[subscription] == nil {
		return 0, 0, false
	}
	sub := t.subs[subscription]
	return sub.unacked(), int(sub.cursor-sub.start) + len(sub.acked), true
}

// WaitForMessages blocks until the exact topic holds at least n messages or
// ctx is done.
func (c *Cluster) WaitForMessages(ctx context.Context, topicName string, n int) error {
	for {
		c.mu.Lock()
		have := 0
		if t := c.topics[topicName]; t != nil {
			have = len(t.log)
		}
		ch := c.notify
		c.mu.Unlock()
		if have >= n {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("danubetest: waiting for %d messages on %s (have %d): %w", n, topicName, have, ctx.Err())
		case <-ch:
		}
	}
}
