// Package chaos holds the chaos soak test of benthos-danube: the real binary
// between a Mosquitto broker and the in-process Danube test broker, under a
// steady QoS 1 load, with MQTT broker restarts, Danube restarts, outages and
// slowdowns, and bridge kills injected at seeded random times.
//
// It runs only when asked:
//
//	CHAOS=1 go test ./tests/chaos -run TestChaosSoak -count=1 -v -timeout 15m \
//	    -chaos.duration=60s -chaos.rate=200 -chaos.seed=1
package chaos
