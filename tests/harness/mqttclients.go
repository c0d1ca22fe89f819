package harness

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/benthos-danube/benthos-danube/internal/mqtttest"
)

// Payload is the JSON body every harness message carries.
type Payload struct {
	ID  string `json:"id"`
	Dev string `json:"dev"`
	Seq int64  `json:"seq"`
	TS  int64  `json:"ts"` // publish time, Unix nanoseconds
	Pad string `json:"pad,omitempty"`
}

// ParsePayload decodes a harness payload.
func ParsePayload(b []byte) (Payload, error) {
	var p Payload
	if err := json.Unmarshal(b, &p); err != nil {
		return p, fmt.Errorf("decoding payload: %w", err)
	}
	return p, nil
}

// Entry is the ledger's record of one message id.
type Entry struct {
	Dev      string
	Seq      int64
	Attempts int  // PUBLISH calls for this id (retries after errors/timeouts count)
	Acked    bool // the broker PUBACKed (QoS 1) or the packet was written (QoS 0)
}

// Ledger records every message id the publishers tried, and which ones the
// broker acknowledged.
type Ledger struct {
	mu      sync.Mutex
	entries map[string]*Entry
	acked   int
	retries int
}

// NewLedger returns an empty ledger.
func NewLedger() *Ledger { return &Ledger{entries: map[string]*Entry{}} }

func (l *Ledger) attempt(id, dev string, seq int64) {
	l.mu.Lock()
	e := l.entries[id]
	if e == nil {
		e = &Entry{Dev: dev, Seq: seq}
		l.entries[id] = e
	} else {
		l.retries++
	}
	e.Attempts++
	l.mu.Unlock()
}

func (l *Ledger) ack(id string) {
	l.mu.Lock()
	if e := l.entries[id]; e != nil && !e.Acked {
		e.Acked = true
		l.acked++
	}
	l.mu.Unlock()
}

// Counts returns (ids attempted, ids acknowledged, republish attempts).
func (l *Ledger) Counts() (attempted, acked, retries int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.entries), l.acked, l.retries
}

// Snapshot copies the ledger.
func (l *Ledger) Snapshot() map[string]Entry {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make(map[string]Entry, len(l.entries))
	for k, v := range l.entries {
		out[k] = *v
	}
	return out
}

// PublisherConfig configures one paho publisher.
type PublisherConfig struct {
	URL      string
	ClientID string
	// Topic returns the MQTT topic of a device.
	Topic   func(dev string) string
	Devices []string
	// Rate in messages per second for this publisher; 0 publishes as fast as
	// MaxInFlight allows.
	Rate float64
	QoS  byte
	// Clean selects a clean session; the chaos test uses persistent ones.
	Clean bool
	// RetryAfter republishes an id whose token did not complete in this
	// long (0 = only after an error).
	RetryAfter  time.Duration
	MaxInFlight int // outstanding tokens; default 2000
	PadBytes    int
	Ledger      *Ledger
	// Limit stops after this many new ids (0 = until ctx is done).
	Limit int64
}

// Publisher publishes numbered messages for its devices and tracks every
// publish token until it completes.
type Publisher struct {
	cfg    PublisherConfig
	client mqtt.Client
	sem    chan struct{}
	retryQ chan Payload
	wg     sync.WaitGroup
	seq    map[string]int64
	errs   atomic.Int64
	sent   atomic.Int64
	pad    string
	// waitCtx bounds the token waiters; cancelled by Close.
	waitCtx    context.Context
	waitCancel context.CancelFunc
}

// NewPublisher connects a publisher (with retry; it returns at once).
func NewPublisher(cfg PublisherConfig) (*Publisher, error) {
	if cfg.MaxInFlight <= 0 {
		cfg.MaxInFlight = 2000
	}
	if cfg.Ledger == nil {
		cfg.Ledger = NewLedger()
	}
	opts := mqtt.NewClientOptions().AddBroker(cfg.URL).SetClientID(cfg.ClientID).
		SetCleanSession(cfg.Clean).SetAutoReconnect(true).SetConnectRetry(true).
		SetConnectRetryInterval(250 * time.Millisecond).SetMaxReconnectInterval(time.Second).
		SetKeepAlive(5 * time.Second).SetPingTimeout(3 * time.Second).
		SetConnectTimeout(3 * time.Second).SetWriteTimeout(5 * time.Second).
		SetOrderMatters(false).SetMessageChannelDepth(10000).SetStore(mqtttest.NewPahoStore())
	c := mqtt.NewClient(opts)
	tok := c.Connect()
	if tok.WaitTimeout(10*time.Second) && tok.Error() != nil {
		return nil, fmt.Errorf("publisher %s connect: %w", cfg.ClientID, tok.Error())
	}
	p := &Publisher{cfg: cfg, client: c, sem: make(chan struct{}, cfg.MaxInFlight),
		retryQ: make(chan Payload, 1<<20), seq: map[string]int64{}}
	if cfg.PadBytes > 0 {
		p.pad = strings.Repeat("x", cfg.PadBytes)
	}
	p.waitCtx, p.waitCancel = context.WithCancel(context.Background())
	return p, nil
}

// Sent is the number of new ids published (not counting retries).
func (p *Publisher) Sent() int64 { return p.sent.Load() }

// Errors is the number of publish tokens that completed with an error.
func (p *Publisher) Errors() int64 { return p.errs.Load() }

// Run publishes until ctx is done or Limit is reached.
func (p *Publisher) Run(ctx context.Context) {
	var interval time.Duration
	if p.cfg.Rate > 0 {
		interval = time.Duration(float64(time.Second) / p.cfg.Rate)
	}
	next := time.Now()
	dev := 0
	for {
		if p.cfg.Limit > 0 && p.sent.Load() >= p.cfg.Limit && len(p.retryQ) == 0 {
			return
		}
		if interval > 0 {
			now := time.Now()
			if d := next.Sub(now); d > 0 {
				select {
				case <-ctx.Done():
					return
				case <-time.After(d):
				}
			} else if -d > time.Second {
				next = now // far behind: do not burst
			}
			next = next.Add(interval)
		}
		select {
		case <-ctx.Done():
			return
		case p.sem <- struct{}{}:
		}
		var m Payload
		select {
		case m = <-p.retryQ:
		default:
			if p.cfg.Limit > 0 && p.sent.Load() >= p.cfg.Limit {
				<-p.sem
				continue
			}
			d := p.cfg.Devices[dev%len(p.cfg.Devices)]
			dev++
			p.seq[d]++
			s := p.seq[d]
			m = Payload{ID: fmt.Sprintf("%s-%08d", d, s), Dev: d, Seq: s, Pad: p.pad}
			p.sent.Add(1)
		}
		p.publish(m)
	}
}

func (p *Publisher) publish(m Payload) {
	m.TS = time.Now().UnixNano()
	b, _ := json.Marshal(m)
	p.cfg.Ledger.attempt(m.ID, m.Dev, m.Seq)
	tok := p.client.Publish(p.cfg.Topic(m.Dev), p.cfg.QoS, false, b)
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		released := false
		release := func() {
			if !released {
				released = true
				<-p.sem
			}
		}
		defer release()
		var retry <-chan time.Time
		if p.cfg.RetryAfter > 0 {
			t := time.NewTimer(p.cfg.RetryAfter)
			defer t.Stop()
			retry = t.C
		}
		for {
			select {
			case <-tok.Done():
				if err := tok.Error(); err != nil {
					p.errs.Add(1)
					if !released {
						release()
						p.retryQ <- m
					}
					return
				}
				p.cfg.Ledger.ack(m.ID)
				return
			case <-retry:
				retry = nil
				release()
				p.retryQ <- m // keep waiting on the old token too
			case <-p.waitCtx.Done():
				return
			}
		}
	}()
}

// Pending is the number of ids queued for a retry.
func (p *Publisher) Pending() int { return len(p.retryQ) }

// Flush republishes queued retries until none are left or ctx is done.
func (p *Publisher) Flush(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case m := <-p.retryQ:
			select {
			case <-ctx.Done():
				return
			case p.sem <- struct{}{}:
			}
			p.publish(m)
		case <-time.After(100 * time.Millisecond):
			if len(p.sem) == 0 && len(p.retryQ) == 0 {
				return
			}
		}
	}
}

// Close stops the token waiters and disconnects.
func (p *Publisher) Close() {
	p.waitCancel()
	p.wg.Wait()
	p.client.Disconnect(250)
}

// SubscriberConfig configures a paho subscriber.
type SubscriberConfig struct {
	URL      string
	ClientID string
	Filter   string
	QoS      byte
	Clean    bool
	// Parse decodes each payload (ids and latency); false only counts.
	Parse bool
}

// Subscriber is a plain paho subscriber with paho's automatic acks: the
// witness of what the MQTT broker delivered, and the baseline of the
// benchmark.
type Subscriber struct {
	cfg    SubscriberConfig
	client mqtt.Client

	count   atomic.Int64
	firstNs atomic.Int64
	lastNs  atomic.Int64

	mu   sync.Mutex
	seen map[string]int
	lat  []time.Duration
	seqs map[string][]int64 // per device, first deliveries in order
}

// NewSubscriber connects and subscribes.
func NewSubscriber(cfg SubscriberConfig) (*Subscriber, error) {
	s := &Subscriber{cfg: cfg, seen: map[string]int{}, seqs: map[string][]int64{}}
	h := func(_ mqtt.Client, m mqtt.Message) { s.handle(m.Payload()) }
	opts := mqtt.NewClientOptions().AddBroker(cfg.URL).SetClientID(cfg.ClientID).
		SetCleanSession(cfg.Clean).SetAutoReconnect(true).SetConnectRetry(true).
		SetConnectRetryInterval(250 * time.Millisecond).SetMaxReconnectInterval(time.Second).
		SetKeepAlive(5 * time.Second).SetConnectTimeout(3 * time.Second).
		SetDefaultPublishHandler(h).SetResumeSubs(true).SetMessageChannelDepth(10000)
	opts.SetOnConnectHandler(func(c mqtt.Client) {
		// Subscribe again on every connection (the persistent session keeps
		// the subscription, but a fresh one costs nothing).
		c.Subscribe(cfg.Filter, cfg.QoS, h)
	})
	s.client = mqtt.NewClient(opts)
	tok := s.client.Connect()
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		s.client.Disconnect(0)
		return nil, fmt.Errorf("subscriber %s connect: %v", cfg.ClientID, tok.Error())
	}
	st := s.client.Subscribe(cfg.Filter, cfg.QoS, h)
	if !st.WaitTimeout(10*time.Second) || st.Error() != nil {
		s.client.Disconnect(0)
		return nil, fmt.Errorf("subscriber %s subscribe %q: %v", cfg.ClientID, cfg.Filter, st.Error())
	}
	return s, nil
}

func (s *Subscriber) handle(b []byte) {
	now := time.Now().UnixNano()
	s.firstNs.CompareAndSwap(0, now)
	s.lastNs.Store(now)
	s.count.Add(1)
	if !s.cfg.Parse {
		return
	}
	p, err := ParsePayload(b)
	if err != nil {
		return
	}
	s.mu.Lock()
	s.seen[p.ID]++
	if s.seen[p.ID] == 1 {
		s.seqs[p.Dev] = append(s.seqs[p.Dev], p.Seq)
	}
	if p.TS > 0 {
		s.lat = append(s.lat, time.Duration(now-p.TS))
	}
	s.mu.Unlock()
}

// Count is the number of messages received (duplicates included).
func (s *Subscriber) Count() int64 { return s.count.Load() }

// Window returns the first and last receive times.
func (s *Subscriber) Window() (first, last time.Time) {
	return time.Unix(0, s.firstNs.Load()), time.Unix(0, s.lastNs.Load())
}

// Reset clears the counters (between benchmark phases).
func (s *Subscriber) Reset() {
	s.count.Store(0)
	s.firstNs.Store(0)
	s.lastNs.Store(0)
	s.mu.Lock()
	s.seen = map[string]int{}
	s.seqs = map[string][]int64{}
	s.lat = nil
	s.mu.Unlock()
}

// Seen reports whether the id was received.
func (s *Subscriber) Seen(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.seen[id] > 0
}

// OrderViolations counts the displaced messages (see Displaced) among the
// first deliveries of each device (Parse only).
func (s *Subscriber) OrderViolations() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, seqs := range s.seqs {
		for _, d := range Displaced(seqs) {
			if d {
				n++
			}
		}
	}
	return n
}

// Close disconnects.
func (s *Subscriber) Close() { s.client.Disconnect(250) }

// Percentile returns the p-th percentile (0..100) of sorted durations.
func Percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(p/100*float64(len(sorted)))) - 1
	if i < 0 {
		i = 0
	}
	if i >= len(sorted) {
		i = len(sorted) - 1
	}
	return sorted[i]
}

// Latencies returns the sorted publish→receive latencies (Parse only).
func (s *Subscriber) Latencies() []time.Duration {
	s.mu.Lock()
	out := append([]time.Duration(nil), s.lat...)
	s.mu.Unlock()
	sortDurations(out)
	return out
}
