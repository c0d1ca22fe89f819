// Package harness holds the process-level plumbing shared by the chaos soak
// test (tests/chaos) and the end-to-end benchmark (tests/bench): a Mosquitto
// broker run as a subprocess with persistence, the benthos-danube binary run
// as a subprocess, paho publishers that track every message until its PUBACK,
// and a witness subscriber that shows what the MQTT broker itself delivered.
//
// It uses only public behaviour: the binary, its YAML config, MQTT and the
// Danube test broker's inspection API.
package harness
