// Package mqtttest provides an embedded MQTT broker (mochi-mqtt v2) on a
// loopback port for tests and the demo, in the style of net/http/httptest
// and of internal/danube/danubetest.
//
// A Server listens on 127.0.0.1 (a free port unless WithAddr names one),
// lets every client in unless a hook of its own takes over authentication
// (WithHook), and can be stopped and started again on the same port, so a
// test can see a broker restart. Three mochi v2.7.9 faults are worked
// around: a race in its session take-over which loses QoS 1/2 messages of
// persistent sessions (guard.go); its MQTT 5 flow control, which strands
// messages and can deadlock a client's in-flight messages (flow.go); and a
// Close that can wait for ever (Stop in server.go, conns.go).
// Sessions survive a restart only with a storage hook, such as the repaired
// bolt store of package internal/mqtttest/boltstore (kept apart so that the
// shipped binary, which runs the demo, does not link bbolt).
//
// Besides the broker: ExternalURL (the broker of MQTT_TEST_URL, checked for
// reachability), RunID (topic and client id prefixes unique per test run),
// NewPahoStore (a message store for paho.mqtt.golang test clients that
// reconnect), and Connect5 and Publisher5, an MQTT 5 client on paho.golang (the demo's
// fleet connects with Connect5).
//
// The package does not import testing: NewTestServer takes the small TB
// interface, which *testing.T and *testing.B satisfy.
//
// Typical use in a test:
//
//	mq := mqtttest.NewTestServer(t)
//	client := paho.NewClient(paho.NewClientOptions().AddBroker(mq.URL()))
package mqtttest
