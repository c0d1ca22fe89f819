package danube_test

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/benthos-danube/benthos-danube/internal/danube"
	"github.com/benthos-danube/benthos-danube/internal/danube/danubetest"
)

// newProxiedServer starts a broker whose lookups answer proxy = true: the
// client dials the real listen address (connect_url) while broker_url names
// an address behind a pretend proxy, as with a Danube ingress.
func newProxiedServer(t *testing.T, brokerURL string) *danubetest.Server {
	t.Helper()
	var lastErr error
	for range 2 { // a free port can be taken between Close and Listen: retry once
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("pick a free port: %v", err)
		}
		addr := l.Addr().String()
		_ = l.Close()
		s, err := danubetest.NewServer(
			danubetest.WithAddr(addr),
			danubetest.WithAdvertisedURL(brokerURL),
			danubetest.WithConnectURL("http://"+addr),
		)
		if err == nil {
			t.Cleanup(s.Close)
			return s
		}
		lastErr = err
	}
	t.Fatalf("start proxied broker: %v", lastErr)
	return nil
}

// TestProxyHeader checks the proxy routing header danube-go sends: once a lookup answered proxy = true, every
// producer and consumer RPC carries "x-danube-broker-url: <broker_url>",
// while lookups, partition queries and schema calls never do.
func TestProxyHeader(t *testing.T) {
	const brokerURL = "http://broker-1.internal:6650"
	s := newProxiedServer(t, brokerURL)
	c := newClient(t, s.Addr())
	const topic = "/default/proxied"

	// The first create of a brand-new topic: the lookup answers NotFound, so
	// the client keeps the service URL with proxy = false (as danube-go does before its first lookup).
	first := newProducer(t, c, danube.ProducerConfig{Topic: topic, Name: "first"})
	send(t, first, danube.Message{Payload: []byte("before")})
	if got := s.BrokerURLHeaders(); len(got) != 0 {
		t.Fatalf("proxy header sent before any lookup answered proxy = true: %+v", got)
	}

	// Now the topic exists: lookups answer Connect with proxy = true.
	p := newProducer(t, c, danube.ProducerConfig{Topic: topic, Name: "second", HealthInterval: 20 * time.Millisecond})
	co := newConsumer(t, c, danube.ConsumerConfig{Topic: topic, Subscription: "s", Type: danube.SubExclusive, HealthInterval: 20 * time.Millisecond})
	for i := range 2 {
		send(t, p, danube.Message{Payload: fmt.Appendf(nil, "m%d", i), Key: "k"})
	}
	for i := range 2 {
		m := receive(t, co, 5*time.Second)
		if want := fmt.Sprintf("m%d", i); string(m.Payload) != want {
			t.Fatalf("received %q, want %q", m.Payload, want)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := co.Ack(ctx, m)
		cancel()
		if err != nil {
			t.Fatalf("Ack: %v", err)
		}
	}
	if _, err := c.TopicPartitions(context.Background(), topic); err != nil {
		t.Fatalf("TopicPartitions: %v", err)
	}

	// Health checks run in the background; wait for at least one.
	deadline := time.Now().Add(5 * time.Second)
	for {
		if counts := countRPCs(s.BrokerURLHeaders()); counts["HealthCheck"] > 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}

	recs := s.BrokerURLHeaders()
	for _, r := range recs {
		if r.Value != brokerURL {
			t.Errorf("%s carried %s: %q, want the lookup's broker_url %q", r.RPC, danubetest.ProxyHeader, r.Value, brokerURL)
		}
		switch r.RPC {
		case "TopicLookup", "TopicPartitions", "GetLatestSchema", "GetSchema", "RegisterSchema":
			t.Errorf("%s carried the proxy header; lookups, partition queries and schema calls must not", r.RPC)
		}
	}
	counts := countRPCs(recs)
	want := map[string]int{"CreateProducer": 1, "SendMessage": 2, "Subscribe": 1, "ReceiveMessages": 1, "Ack": 2}
	for rpc, n := range want {
		if counts[rpc] != n {
			t.Errorf("%s carried the header %d times, want %d (all: %v)", rpc, counts[rpc], n, counts)
		}
	}
	if counts["HealthCheck"] == 0 {
		t.Errorf("no HealthCheck carried the header (all: %v)", counts)
	}
	if t.Failed() {
		t.Logf("records: %s", formatRecords(recs))
	}
}

func countRPCs(recs []danubetest.HeaderRecord) map[string]int {
	m := map[string]int{}
	for _, r := range recs {
		m[r.RPC]++
	}
	return m
}

func formatRecords(recs []danubetest.HeaderRecord) string {
	parts := make([]string, len(recs))
	for i, r := range recs {
		parts[i] = r.RPC + "=" + r.Value
	}
	return strings.Join(parts, " ")
}
