package main

import (
	"context"
	"errors"
	"fmt"
	"log"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/benthos-danube/benthos-danube/internal/danube"
	"github.com/benthos-danube/benthos-danube/internal/mqttmeta"
)

type bridge struct {
	cfg   config
	ctx   context.Context // cancelled on shutdown
	slots chan struct{}   // one per message in the bridge
	lanes *lanes[*job]
	subs  map[string]byte

	lastWarn atomic.Int64 // unix ns of the last send warning
	lost     atomic.Int64
}

// job is one MQTT message on its way to Danube.
type job struct {
	m    paho.Message
	mp   *mapping
	acks *ackQueue // nil for QoS 0
	seq  uint64
}

func run(ctx context.Context, cfg config) error {
	client, err := danube.NewClient(cfg.danubeURL)
	if err != nil {
		return fmt.Errorf("danube client: %w", err)
	}
	defer client.Close()
	b := &bridge{cfg: cfg, ctx: ctx, slots: make(chan struct{}, cfg.inFlight), subs: map[string]byte{}}
	// The lanes are not closed on shutdown: a handler may still submit, and
	// the process exits anyway.
	b.lanes = newLanes(cfg.inFlight, b.send)
	for _, mp := range cfg.maps {
		dispatch := danube.DispatchNonReliable
		if mp.reliable {
			dispatch = danube.DispatchReliable
		}
		pctx, cancel := context.WithTimeout(ctx, time.Minute)
		mp.producer, err = client.NewProducer(pctx, danube.ProducerConfig{
			Topic:      mp.topic,
			Name:       "minibridge-" + strings.ReplaceAll(strings.TrimPrefix(mp.topic, "/"), "/", "-"),
			Partitions: mp.partitions,
			Dispatch:   dispatch,
		})
		cancel()
		if err != nil {
			return fmt.Errorf("producer for %s: %w", mp.topic, err)
		}
		defer mp.producer.Close()
		b.subs[mp.filter] = mp.qos
	}
	b.connectLoop()
	return nil
}

// connectLoop keeps one MQTT connection up until shutdown: a fresh paho
// client (and ack queue) per connection, reconnecting with backoff.
func (b *bridge) connectLoop() {
	failures := 0
	for b.ctx.Err() == nil {
		c, lost, err := b.connect()
		if err != nil {
			failures++
			d := min(500*time.Millisecond<<min(failures-1, 6), 30*time.Second)
			log.Printf("MQTT connect failed (retry in %v): %v", d, err)
			select {
			case <-b.ctx.Done():
			case <-time.After(d):
			}
			continue
		}
		failures = 0
		select {
		case <-lost:
			c.Disconnect(0)
		case <-b.ctx.Done():
			c.Disconnect(250)
		}
	}
}

func (b *bridge) connect() (paho.Client, <-chan struct{}, error) {
	acks := &ackQueue{}
	lost := make(chan struct{})
	var once sync.Once
	o := paho.NewClientOptions().AddBroker(b.cfg.mqttURL).SetClientID(b.cfg.clientID).
		SetCleanSession(b.cfg.clean).SetKeepAlive(b.cfg.keepalive).
		SetConnectTimeout(b.cfg.connTimeout).SetWriteTimeout(b.cfg.connTimeout).
		SetAutoReconnect(false).SetConnectRetry(false).SetResumeSubs(false).
		SetAutoAckDisabled(true).SetOrderMatters(true).
		SetDefaultPublishHandler(func(_ paho.Client, m paho.Message) { b.handle(acks, m) }).
		SetConnectionLostHandler(func(_ paho.Client, err error) {
			log.Printf("MQTT connection lost (%d so far): %v", b.lost.Add(1), err)
			once.Do(func() { close(lost) })
		})
	c := paho.NewClient(o)
	tok := c.Connect()
	if err := wait(tok, b.cfg.connTimeout+5*time.Second); err != nil {
		c.Disconnect(0)
		return nil, nil, fmt.Errorf("connecting to %s as %q: %w", b.cfg.mqttURL, b.cfg.clientID, err)
	}
	present := tok.(*paho.ConnectToken).SessionPresent()
	stok := c.SubscribeMultiple(b.subs, nil)
	if err := wait(stok, b.cfg.connTimeout); err != nil {
		c.Disconnect(0)
		return nil, nil, fmt.Errorf("subscribing: %w", err)
	}
	for f, code := range stok.(*paho.SubscribeToken).Result() {
		if code == 0x80 {
			c.Disconnect(0)
			return nil, nil, fmt.Errorf("the broker refused the subscription to %q", f)
		}
	}
	log.Printf("connected to %s as %q (session present: %v), subscribed to %d filters", b.cfg.mqttURL, b.cfg.clientID, present, len(b.subs))
	return c, lost, nil
}

func wait(tok paho.Token, limit time.Duration) error {
	if !tok.WaitTimeout(limit) {
		return fmt.Errorf("no answer within %v", limit)
	}
	return tok.Error()
}

// handle runs on paho's router goroutine, in arrival order. It blocks while
// inFlight messages are in the bridge: paho then stops reading the socket
// and the broker holds the rest (QoS 1 in its in-flight window and queue,
// QoS 0 in its queue).
func (b *bridge) handle(acks *ackQueue, m paho.Message) {
	mp := b.route(m.Topic())
	if mp == nil {
		// A subscription kept by the session from another configuration.
		if m.Qos() > 0 {
			acks.done(acks.add(m))
		}
		return
	}
	select {
	case b.slots <- struct{}{}:
	case <-b.ctx.Done():
		return // not acked: the session redelivers QoS 1
	}
	j := &job{m: m, mp: mp}
	if m.Qos() > 0 {
		j.acks, j.seq = acks, acks.add(m)
	}
	b.lanes.submit(m.Topic(), j)
}

func (b *bridge) route(topic string) *mapping {
	for _, mp := range b.cfg.maps {
		if matches(mp.levels, topic) {
			return mp
		}
	}
	return nil
}

// send delivers one message to Danube, trying again until it is acknowledged
// (or the bridge shuts down), then releases its MQTT ack and its slot.
func (b *bridge) send(j *job) {
	msg := danube.Message{Payload: j.m.Payload(), Key: j.m.Topic(), Attributes: attributes(j.m)}
	for attempt := 0; ; attempt++ {
		ctx, cancel := context.WithTimeout(b.ctx, b.cfg.sendTimeout)
		err := j.mp.producer.Send(ctx, msg)
		cancel()
		if err == nil {
			break
		}
		if b.ctx.Err() != nil {
			return
		}
		if errors.Is(err, danube.ErrMessageTooLarge) {
			b.warn("dropping a message of %d bytes from %q: %v", len(msg.Payload), msg.Key, err)
			break
		}
		b.warn("sending to %s failed (attempt %d), trying again: %v", j.mp.topic, attempt+1, err)
		select {
		case <-b.ctx.Done():
			return
		case <-time.After(min(10*time.Millisecond<<min(attempt, 7), time.Second)):
		}
	}
	if j.acks != nil {
		j.acks.done(j.seq)
	}
	<-b.slots
}

func (b *bridge) warn(format string, args ...any) {
	now := time.Now().UnixNano()
	if last := b.lastWarn.Load(); now-last < int64(10*time.Second) || !b.lastWarn.CompareAndSwap(last, now) {
		return
	}
	log.Printf(format, args...)
}

// attributes are what the danube output sends by default: the mqtt input's
// metadata except danube_*, as strings, under the connector names
// (attribute_names: connector), plus source=mqtt.
func attributes(m paho.Message) map[string]string {
	return map[string]string{
		mqttmeta.AttrTopic:  m.Topic(),
		mqttmeta.AttrQoS:    strconv.Itoa(int(m.Qos())),
		mqttmeta.AttrRetain: strconv.FormatBool(m.Retained()),
		mqttmeta.AttrDup:    strconv.FormatBool(m.Duplicate()),
		mqttmeta.MessageID:  strconv.Itoa(int(m.MessageID())),
		mqttmeta.AttrSource: mqttmeta.AttrSourceVal,
	}
}
