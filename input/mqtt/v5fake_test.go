package mqtt

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/packets"
	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/benthos-danube/benthos-danube/internal/syncbuf"
)

// fakeServer is a scripted MQTT 5 server for what real brokers do not do on
// demand: refuse the protocol, use topic aliases, send malformed packets.
// Each accepted connection runs serve with the CONNECT read.
type fakeServer struct {
	ln    net.Listener
	wg    sync.WaitGroup
	mu    sync.Mutex
	conns int
	acks  []uint16 // PUBACK packet ids, in order
}

func newFakeServer(t *testing.T, serve func(n int, conn net.Conn, s *fakeServer)) *fakeServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &fakeServer{ln: ln}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.conns++
			n := s.conns
			s.mu.Unlock()
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				defer conn.Close()
				_ = conn.SetDeadline(time.Now().Add(20 * time.Second))
				if _, err := packets.ReadPacket(conn); err != nil { // CONNECT
					return
				}
				serve(n, conn, s)
			}()
		}
	}()
	t.Cleanup(func() { _ = ln.Close(); s.wg.Wait() })
	return s
}

func (s *fakeServer) url() string { return "tcp://" + s.ln.Addr().String() }

// acceptAndSubscribe answers CONNACK success and the SUBSCRIBE.
func acceptAndSubscribe(conn net.Conn) bool {
	if _, err := (&packets.Connack{Properties: &packets.Properties{}}).WriteTo(conn); err != nil {
		return false
	}
	var p *packets.ControlPacket
	for { // paho.golang pings at once
		var err error
		if p, err = packets.ReadPacket(conn); err != nil {
			return false
		}
		if p.Type == packets.SUBSCRIBE {
			break
		}
		if p.Type == packets.PINGREQ {
			_, _ = packets.NewControlPacket(packets.PINGRESP).WriteTo(conn)
		}
	}
	sub := p.Content.(*packets.Subscribe)
	sa := &packets.Suback{PacketID: sub.PacketID, Properties: &packets.Properties{}}
	for range sub.Subscriptions {
		sa.Reasons = append(sa.Reasons, 1)
	}
	_, err := sa.WriteTo(conn)
	return err == nil
}

// readAcks records PUBACKs until the connection ends.
func (s *fakeServer) readAcks(conn net.Conn) {
	for {
		p, err := packets.ReadPacket(conn)
		if err != nil {
			return
		}
		if p.Type == packets.PINGREQ {
			_, _ = packets.NewControlPacket(packets.PINGRESP).WriteTo(conn)
		}
		if p.Type == packets.PUBACK {
			s.mu.Lock()
			s.acks = append(s.acks, p.Content.(*packets.Puback).PacketID)
			s.mu.Unlock()
		}
	}
}

func (s *fakeServer) ackCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.acks)
}

const v5Conf = `
protocol_version: "5"
urls: [ %s ]
client_id: fake
connect_timeout: 2s
topic_mappings:
  - mqtt_topic: "#"
    danube_topic: /t/x
    qos: 1
`

// TestV5BrokerRefusesProtocol: a broker that does not take MQTT 5 gets a
// clear error naming the fix, in both forms such a broker answers.
func TestV5BrokerRefusesProtocol(t *testing.T) {
	for _, c := range []struct {
		name   string
		answer []byte
		want   string
	}{
		// MQTT 5 CONNACK, reason 0x84, empty properties.
		{"v5 CONNACK 0x84", []byte{0x20, 0x03, 0x00, 0x84, 0x00}, "CONNACK reason code 0x84 (Unsupported Protocol Version"},
		// MQTT 3.1.1 CONNACK, return code 1 (unacceptable protocol version).
		{"3.1.1 CONNACK 0x01", []byte{0x20, 0x02, 0x00, 0x01}, "set protocol_version: 3.1.1"},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := newFakeServer(t, func(_ int, conn net.Conn, _ *fakeServer) {
				_, _ = conn.Write(c.answer)
				time.Sleep(100 * time.Millisecond)
			})
			in, err := newInput(mustParse(t, fmt.Sprintf(v5Conf, s.url())), service.MockResources())
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = in.Close(context.Background()) })
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			err = in.Connect(ctx)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Connect: %v, want an error containing %q", err, c.want)
			}
			t.Log(err)
		})
	}
}

// publishPacket encodes a QoS 1 PUBLISH with optional topic alias.
func publishPacket(t *testing.T, id uint16, topic string, alias uint16, payload string) []byte {
	t.Helper()
	pb := &packets.Publish{PacketID: id, QoS: 1, Topic: topic, Payload: []byte(payload), Properties: &packets.Properties{}}
	if alias > 0 {
		pb.Properties.TopicAlias = &alias
	}
	var buf bytes.Buffer
	if _, err := pb.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestV5TopicAliasesResolved: messages the broker sends under a topic alias
// carry the real topic, and are routed by it.
func TestV5TopicAliasesResolved(t *testing.T) {
	var pkts [][]byte
	pkts = append(pkts, publishPacket(t, 1, "dev/1/t", 5, "a"), publishPacket(t, 2, "", 5, "b"), publishPacket(t, 3, "dev/2/t", 5, "c"), publishPacket(t, 4, "", 5, "d"))
	s := newFakeServer(t, func(_ int, conn net.Conn, s *fakeServer) {
		if !acceptAndSubscribe(conn) {
			return
		}
		for _, p := range pkts {
			_, _ = conn.Write(p)
		}
		s.readAcks(conn)
	})
	rec := newReceived()
	ts := startStream(t, fmt.Sprintf(v5Conf, s.url()), func(_ context.Context, m *service.Message) error { rec.add(m); return nil })
	ts.waitConnected(t)
	waitFor(t, 10*time.Second, "4 messages", func() bool { return rec.unique() == 4 })
	for payload, topic := range map[string]string{"a": "dev/1/t", "b": "dev/1/t", "c": "dev/2/t", "d": "dev/2/t"} {
		if got, _ := rec.get(payload)[0].MetaGetMut("mqtt_topic"); got != topic {
			t.Errorf("%s: mqtt_topic %v, want %s", payload, got, topic)
		}
	}
	waitFor(t, 10*time.Second, "4 PUBACKs", func() bool { return s.ackCount() == 4 })
}

// TestV5MalformedAndBadAliasReconnect: a PUBLISH with a malformed property,
// and one with an alias never established, end the connection with a clear
// error, unacknowledged; the input reconnects and the broker's redelivery
// arrives. Nothing is acknowledged that was not delivered.
func TestV5MalformedAndBadAliasReconnect(t *testing.T) {
	good := publishPacket(t, 9, "dev/1/t", 0, "good")
	// PUBLISH QoS 1, topic "x", id 7, properties: length 2, id 0x7f (no such property).
	malformed := []byte{0x32, 0x08, 0x00, 0x01, 'x', 0x00, 0x07, 0x02, 0x7f, 0x00}
	badAlias := publishPacket(t, 8, "", 7, "lost?")
	s := newFakeServer(t, func(n int, conn net.Conn, s *fakeServer) {
		if !acceptAndSubscribe(conn) {
			return
		}
		switch n {
		case 1:
			_, _ = conn.Write(malformed)
		case 2:
			_, _ = conn.Write(badAlias)
		default:
			_, _ = conn.Write(good)
		}
		s.readAcks(conn)
	})
	rec := newReceived()
	logs := &syncbuf.Buffer{}
	ts := startStreamWith(t, fmt.Sprintf(v5Conf, s.url()), func(_ context.Context, m *service.Message) error { rec.add(m); return nil }, func(_ *service.Environment, b *service.StreamBuilder) {
		b.SetLogger(slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo})))
	})
	ts.waitConnected(t)
	waitFor(t, 20*time.Second, "the good message after two reconnects", func() bool { return rec.unique() == 1 })
	waitFor(t, 5*time.Second, "its PUBACK", func() bool { return s.ackCount() == 1 })
	s.mu.Lock()
	acks := fmt.Sprint(s.acks)
	s.mu.Unlock()
	if acks != "[9]" {
		t.Fatalf("PUBACKs %s, want [9]: only the delivered message is acknowledged", acks)
	}
	for _, want := range []string{"invalid Prop type 127", "topic alias 7 without a topic"} {
		// The client reports a read error from its own goroutine.
		for until := time.Now().Add(5 * time.Second); !strings.Contains(logs.String(), want) && time.Now().Before(until); {
			time.Sleep(20 * time.Millisecond)
		}
		if !strings.Contains(logs.String(), want) {
			t.Errorf("no log line with %q in:\n%s", want, logs.String())
		}
	}
}
