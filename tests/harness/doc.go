// Package harness holds the process-level plumbing shared by the end-to-end
// tests (tests), the chaos soak (tests/chaos) and the end-to-end benchmarks
// (tests/bench): the benthos-danube binary built once per test process
// (BuildBinary) and run as a subprocess (Bridge), a Mosquitto broker run as a
// subprocess with persistence (StartMosquitto), paho publishers that track
// every message until its PUBACK (Publisher, Ledger), a witness subscriber
// that shows what the MQTT broker itself delivered (Subscriber), the rig the
// soak and the benchmark share (StartRig: Danube test broker, Mosquitto and
// the bridge, ready when a probe went through), and the soak's fault plan
// (PlanFaults) and its analysis of what reached Danube (Analyse).
//
// It uses only public behaviour: the binary, its YAML config, MQTT and the
// Danube test broker's inspection API.
package harness
