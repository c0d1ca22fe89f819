package tests

import (
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/benthos-danube/benthos-danube/internal/danube/danubetest"
	"github.com/benthos-danube/benthos-danube/tests/harness"
)

// privateMosquitto starts a Mosquitto of the test's own on a free port, with
// persistence (shared subscriptions need Mosquitto 2; the shared broker of
// MQTT_TEST_URL is not used because the test stops group members and counts
// where the broker sends each message). It skips the test when no mosquitto
// binary is on PATH, except in CI (MQTT_TEST_URL set), where that fails it.
func privateMosquitto(t *testing.T) *harness.Mosquitto {
	t.Helper()
	return harness.NewTestMosquitto(t, harness.MosquittoOptions{})
}

// shareMember is one bridge instance of a shared-subscription group, run
// from config/scaling.yaml.
type shareMember struct {
	hostname string // HOSTNAME: the client id is benthos-danube-<hostname>
	http     string
	p        *proc
}

// scalingConfig returns config/scaling.yaml with its share group renamed and
// clean_session set.
func scalingConfig(t *testing.T, group string, clean bool) string {
	t.Helper()
	b, err := os.ReadFile(repoRoot + "/config/scaling.yaml")
	require.NoError(t, err)
	cfg := string(b)
	require.Equal(t, 2, strings.Count(cfg, "$share/danube-bridge/"))
	cfg = strings.ReplaceAll(cfg, "$share/danube-bridge/", "$share/"+group+"/")
	require.Contains(t, cfg, "clean_session: false")
	if clean {
		cfg = strings.ReplaceAll(cfg, "clean_session: false", "clean_session: true")
	}
	return cfg
}

// startMember runs a bridge with the given HOSTNAME and waits until /ready
// answers 200: connected and subscribed to MQTT, connected to Danube.
func startMember(t *testing.T, cfg, mqttURL, danubeURL, hostname string) *shareMember {
	t.Helper()
	port, err := harness.FreePort()
	require.NoError(t, err)
	m := &shareMember{hostname: hostname, http: "127.0.0.1:" + strconv.Itoa(port)}
	m.p = startBridge(t, cfg, map[string]string{
		"MQTT_URL": mqttURL, "DANUBE_URL": danubeURL, "HOSTNAME": hostname, "HTTP_ADDRESS": m.http,
	})
	require.Eventually(t, func() bool {
		resp, err := http.Get("http://" + m.http + "/ready")
		if err != nil {
			return false
		}
		_ = resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, 20*time.Second, 50*time.Millisecond, "bridge %s not ready", hostname)
	return m
}

// shareCounts returns, for the payloads with prefix in dn, how often each
// arrived and through which bridge instance.
func shareCounts(dn *danubetest.Server, prefix string) (copies map[string]int, via map[string]int) {
	copies, via = map[string]int{}, map[string]int{}
	for _, m := range allMessages(dn) {
		if p := string(m.Payload); strings.HasPrefix(p, prefix) {
			copies[p]++
			via[m.Attributes["bridge_instance"]]++
		}
	}
	return copies, via
}

// settle waits until count stops changing for a second and returns it.
func settle(t *testing.T, count func() int) int {
	t.Helper()
	last, since := count(), time.Now()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if n := count(); n != last {
			last, since = n, time.Now()
		} else if time.Since(since) >= time.Second {
			return n
		}
	}
	t.Fatalf("count still changing after 30s (%d)", last)
	return last
}

func publishN(t *testing.T, pub *publisher, topic, prefix string, n int) []string {
	t.Helper()
	var all []string
	for i := range n {
		p := fmt.Sprintf("%s%03d", prefix, i)
		require.NoError(t, pub.publish(topic, 1, false, []byte(p)))
		all = append(all, p)
	}
	return all
}

func missingOf(all []string, copies map[string]int) []string {
	var out []string
	for _, p := range all {
		if copies[p] == 0 {
			out = append(out, p)
		}
	}
	return out
}

// TestE2ESharedSubscriptionStoppedMember runs two bridges from
// config/scaling.yaml in one share group on Mosquitto 2, stops one of them
// (SIGTERM) and publishes 300 QoS 1 messages.
//
// With persistent sessions (the shipped clean_session: false), Mosquitto
// keeps assigning messages to the stopped member's session (round robin):
// they wait there, and arrive as soon as a bridge with the same client id
// (the same HOSTNAME, as in a StatefulSet) comes back; none is lost. A member
// that comes back under another client id (a new pod name, or
// dynamic_client_id_suffix) starts a new session: the old one keeps what it
// was given, and it is missing until that client id connects again.
//
// With clean_session: true, the stopped member's session ends with its
// connection, so it leaves the group: the remaining member gets every
// message and nothing waits.
func TestE2ESharedSubscriptionStoppedMember(t *testing.T) {
	cases := []struct {
		name  string
		clean bool
		back  string // HOSTNAME of the member that comes back; "": none
	}{
		{name: "persistent, back with the same client id", back: "bridge-1"},
		{name: "persistent, back with another client id", back: "bridge-1-new"},
		{name: "clean session", clean: true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			const n = 300
			id := uniqueID(t)
			mq := privateMosquitto(t)
			dn := danubeBroker(t)
			cfg := scalingConfig(t, id, c.clean)
			a := startMember(t, cfg, mq.URL(), dn.URL(), "bridge-0")
			b := startMember(t, cfg, mq.URL(), dn.URL(), "bridge-1")

			b.p.signal(t, syscall.SIGTERM)
			require.Equal(t, 0, b.p.wait(t, 30*time.Second), "graceful stop exits 0")
			pub := newPublisher(t, mq.URL(), id+"-pub")
			all := publishN(t, pub, "sensors/temp/zone1", "m-", n)

			delivered := settle(t, func() int { c, _ := shareCounts(dn, "m-"); return len(c) })
			copies, via := shareCounts(dn, "m-")
			waiting := n - delivered
			t.Logf("%s stopped: %d of %d delivered by %s, %d wait for client id benthos-danube-%s",
				b.hostname, delivered, n, a.hostname, waiting, b.hostname)
			if c.clean {
				assert.Empty(t, missingOf(all, copies), "with clean sessions the other member gets everything")
				return
			}
			require.Positive(t, waiting, "messages wait for the stopped member's persistent session")
			require.Positive(t, delivered, "the running member gets its share")
			assert.Equal(t, delivered, via[a.hostname], "only the running member delivered")

			startMember(t, cfg, mq.URL(), dn.URL(), c.back)
			if c.back != b.hostname {
				// The group now has three sessions, one of them offline;
				// a second batch shows the new member works.
				second := publishN(t, pub, "sensors/temp/zone1", "s-", 30)
				got := settle(t, func() int { c, _ := shareCounts(dn, "s-"); return len(c) })
				_, viaSecond := shareCounts(dn, "s-")
				require.Positive(t, viaSecond[c.back], "the new member gets a share")
				require.Less(t, got, len(second), "the old session still takes its share")
				t.Logf("second batch: %d of %d delivered, via %v", got, len(second), viaSecond)
				settle(t, func() int { c, _ := shareCounts(dn, "m-"); return len(c) })
				copies, via = shareCounts(dn, "m-")
				assert.Len(t, missingOf(all, copies), waiting, "still waiting for client id benthos-danube-%s", b.hostname)
				t.Logf("back as %s: %d of the first batch still missing, delivered via %v", c.back, len(missingOf(all, copies)), via)
				return
			}
			require.Eventually(t, func() bool {
				c, _ := shareCounts(dn, "m-")
				return len(c) == n
			}, 30*time.Second, 50*time.Millisecond, "every message after the member came back")
			copies, via = shareCounts(dn, "m-")
			assert.Empty(t, missingOf(all, copies), "missing after the member came back")
			assert.Equal(t, waiting, via[b.hostname], "the waiting messages came through the returning member")
			t.Logf("after %s came back: 0 missing, delivered via %v", b.hostname, via)
		})
	}
}

// TestE2ESharedSubscriptionCrashedMember: one member's Danube stops, so it
// holds its share of 200 QoS 1 messages unacknowledged (20 in flight,
// Mosquitto's window, the rest queued for its session), and then it is
// killed (SIGKILL).
//
// With persistent sessions, the member restarted with the same client id
// (here against a working Danube) delivers all of them: 0 missing. With
// clean_session: true, Mosquitto discards the killed member's session with
// everything assigned to it and does not hand those messages to the other
// member: they are lost, also after the member restarts.
func TestE2ESharedSubscriptionCrashedMember(t *testing.T) {
	for _, clean := range []bool{false, true} {
		t.Run(fmt.Sprintf("clean_session=%v", clean), func(t *testing.T) {
			const n = 200
			id := uniqueID(t)
			mq := privateMosquitto(t)
			dn := danubeBroker(t)
			dnB := danubeBroker(t)
			cfg := scalingConfig(t, id, clean)
			a := startMember(t, cfg, mq.URL(), dn.URL(), "bridge-0")
			b := startMember(t, cfg, mq.URL(), dnB.URL(), "bridge-1")
			dnB.Stop() // b's sends fail from now on: nothing it receives is acknowledged to MQTT

			pub := newPublisher(t, mq.URL(), id+"-pub")
			all := publishN(t, pub, "sensors/temp/zone1", "m-", n)
			delivered := settle(t, func() int { c, _ := shareCounts(dn, "m-"); return len(c) })
			require.Positive(t, delivered)
			require.Less(t, delivered, n, "the stalled member holds its share")
			require.NoError(t, b.p.cmd.Process.Kill())
			b.p.wait(t, 10*time.Second)
			t.Logf("%s delivered %d of %d; %s held %d unacknowledged when it was killed", a.hostname, delivered, n, b.hostname, n-delivered)

			startMember(t, cfg, mq.URL(), dn.URL(), b.hostname) // same client id, working Danube
			// A second batch shows the group flows again and orders the
			// broker's queues: everything of the first batch that is still
			// anywhere arrives before this batch is complete.
			second := publishN(t, pub, "sensors/temp/zone1", "s-", 20)
			require.Eventually(t, func() bool {
				c, _ := shareCounts(dn, "s-")
				return len(c) == len(second)
			}, 30*time.Second, 50*time.Millisecond, "the second batch")
			settle(t, func() int { c, _ := shareCounts(dn, "m-"); return len(c) })
			copies, via := shareCounts(dn, "m-")
			missing := missingOf(all, copies)
			t.Logf("after %s restarted: %d of %d missing, delivered via %v", b.hostname, len(missing), n, via)
			if clean {
				assert.Equal(t, n-delivered, len(missing), "with clean_session: true the killed member's messages are lost, not redistributed")
				return
			}
			assert.Empty(t, missing, "with a persistent session the restarted member delivers everything it held")
		})
	}
}
