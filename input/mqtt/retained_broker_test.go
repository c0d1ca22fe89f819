package mqtt

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// flagged is a PUBLISH as a raw client saw it.
type flagged struct {
	topic, payload string
	retain, dup    bool
	qos            byte
}

func (f flagged) String() string {
	return fmt.Sprintf("%s=%s(retain %v dup %v qos %d)", f.topic[strings.LastIndexByte(f.topic, '/')+1:], f.payload, f.retain, f.dup, f.qos)
}

// rawSession is a paho client with a persistent session that records every
// PUBLISH with its flags and acknowledges it.
type rawSession struct {
	mu             sync.Mutex
	got            []flagged
	c              paho.Client
	sessionPresent bool
}

func connectRaw(t *testing.T, url, clientID string, filters map[string]byte) *rawSession {
	t.Helper()
	s := &rawSession{}
	o := paho.NewClientOptions().AddBroker(url).SetClientID(clientID).SetCleanSession(false).
		SetAutoReconnect(false).SetAutoAckDisabled(true).SetOrderMatters(true).SetResumeSubs(false).
		SetDefaultPublishHandler(func(_ paho.Client, m paho.Message) {
			s.mu.Lock()
			s.got = append(s.got, flagged{m.Topic(), string(m.Payload()), m.Retained(), m.Duplicate(), m.Qos()})
			s.mu.Unlock()
			m.Ack()
		})
	s.c = paho.NewClient(o)
	tok := s.c.Connect()
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("connect %s: %v", clientID, tok.Error())
	}
	s.sessionPresent = tok.(*paho.ConnectToken).SessionPresent()
	st := s.c.SubscribeMultiple(filters, nil)
	if !st.WaitTimeout(10*time.Second) || st.Error() != nil {
		t.Fatalf("subscribe: %v", st.Error())
	}
	return s
}

// collect waits for n messages, then for a plain marker published after
// them, and returns what arrived before the marker. Resends (DUP=1) of a
// payload acknowledged in an earlier step are left out: they are PUBACKs the
// broker did not get before the test client disconnected.
func (s *rawSession) collect(t *testing.T, pub *publisher, topic string, n int, acked map[string]bool) []flagged {
	t.Helper()
	fresh := func() []flagged {
		s.mu.Lock()
		defer s.mu.Unlock()
		var out []flagged
		for _, f := range s.got {
			if !(f.dup && acked[f.payload]) {
				out = append(out, f)
			}
		}
		return out
	}
	waitFor(t, 10*time.Second, fmt.Sprintf("%d messages", n), func() bool { return len(fresh()) >= n })
	marker := fmt.Sprintf("marker-%d", time.Now().UnixNano())
	pub.publishWait(t, topic, 1, marker)
	var out []flagged
	waitFor(t, 10*time.Second, "the marker", func() bool {
		out = fresh()
		for i, f := range out {
			if f.payload == marker {
				out = out[:i]
				return true
			}
		}
		return false
	})
	s.mu.Lock()
	for _, f := range s.got {
		acked[f.payload] = true
	}
	s.got = nil
	s.mu.Unlock()
	return out
}

func (s *rawSession) close() { s.c.Disconnect(100) }

// TestBrokerRetainedFlags records, with a raw paho client and a persistent
// session, the RETAIN and DUP flags Mosquitto 2 and mochi set, which the
// retained-replay filter relies on (MQTT 3.1.1 §3.3.1.3):
//
//	(d) a new session gets the retained messages with RETAIN=1;
//	(a) a retained message published to an established subscription has RETAIN=0;
//	    every re-SUBSCRIBE of a resumed session replays every retained message
//	    with RETAIN=1, DUP=0, once per matching subscription;
//	(b) one published while the client is offline is queued for the session
//	    with RETAIN=0 and arrives before the replay (mochi sends it with DUP=1);
//	(c) the same after a broker restart with persistence;
//	    a QoS 0 subscription gets no queued copy: the replay is the only one.
func TestBrokerRetainedFlags(t *testing.T) {
	for _, bc := range retainedBrokers(t) {
		t.Run(bc.name, func(t *testing.T) {
			id := runID(t)
			pub := newRetainedPub(t, bc.url, id+"-pub")
			filters := map[string]byte{id + "/r/#": 1, id + "/+/both": 1, id + "/q0/#": 0}
			marker := id + "/r/marker"
			acked := map[string]bool{}
			until := func(s *rawSession, want []flagged) []flagged {
				t.Helper()
				return s.collect(t, pub.publisher, marker, len(want), acked)
			}
			r := func(name, payload string) flagged {
				return flagged{topic: id + "/" + name, payload: payload, retain: true, qos: 1}
			}
			plain := func(f flagged) flagged { f.retain = false; return f }
			// A queued copy's DUP flag is not compared: mochi keeps messages
			// for an offline session in its in-flight store and sends them as
			// resends, with DUP=1, Mosquitto with DUP=0 (or DUP=1 when it had
			// sent the message just before the client's DISCONNECT).
			queued := plain
			check := func(step string, s *rawSession, want ...flagged) {
				t.Helper()
				got := until(s, want)
				if fmt.Sprint(got) != fmt.Sprint(want) {
					t.Errorf("%s:\n got %v\nwant %v", step, got, want)
				}
			}
			// in any order, except that a RETAIN=0 copy comes before the
			// RETAIN=1 copy of the same topic
			checkReplays := func(step string, s *rawSession, want ...flagged) {
				t.Helper()
				got := until(s, want)
				pos := map[string]int{}
				for i, f := range got {
					if !f.retain {
						pos[f.topic] = i
					} else if j, ok := pos[f.topic]; ok && j > i {
						t.Errorf("%s: the replay of %s came before its queued copy: %v", step, f.topic, got)
					}
				}
				count := func(l []flagged) map[string]int {
					m := map[string]int{}
					for _, f := range l {
						if !f.retain {
							f.dup = false
						}
						m[f.String()]++
					}
					return m
				}
				if fmt.Sprint(count(got)) != fmt.Sprint(count(want)) {
					t.Errorf("%s:\n got %v\nwant %v (any order)", step, got, want)
				}
			}

			pub.retain(t, id+"/r/a", "before")
			s := connectRaw(t, bc.url, id, filters)
			if s.sessionPresent {
				t.Fatal("session present on the first connect")
			}
			check("(d) new session", s, r("r/a", "before"))
			pub.retain(t, id+"/r/b", "online")
			pub.retain(t, id+"/r/both", "overlap")
			check("(a) established subscription", s, plain(r("r/b", "online")), plain(r("r/both", "overlap")))
			s.close()

			s = connectRaw(t, bc.url, id, filters)
			if !s.sessionPresent {
				t.Fatal("no session present on reconnect")
			}
			checkReplays("resumed: replays", s,
				r("r/a", "before"), r("r/b", "online"), r("r/both", "overlap"), r("r/both", "overlap"))
			s.close()

			pub.retain(t, id+"/r/c", "offline")
			pub.retain(t, id+"/q0/x", "offline-q0")
			s = connectRaw(t, bc.url, id, filters)
			q0 := r("q0/x", "offline-q0")
			q0.qos = 0
			checkReplays("(b) published while offline", s,
				queued(r("r/c", "offline")), r("r/a", "before"), r("r/b", "online"), r("r/both", "overlap"), r("r/both", "overlap"), r("r/c", "offline"), q0)
			s.close()
			if bc.restart == nil {
				return
			}

			pub.retain(t, id+"/r/d", "offline-restart")
			bc.restart()
			pub = newRetainedPub(t, bc.url, id+"-pub2")
			s = connectRaw(t, bc.url, id, filters)
			if !s.sessionPresent {
				t.Fatal("no session present after the broker restart")
			}
			checkReplays("(c) after a broker restart", s,
				queued(r("r/d", "offline-restart")), r("r/a", "before"), r("r/b", "online"), r("r/both", "overlap"), r("r/both", "overlap"),
				r("r/c", "offline"), r("r/d", "offline-restart"), q0)
			s.close()
		})
	}
}
