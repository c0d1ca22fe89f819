// Package bench holds the end-to-end benchmark of benthos-danube: the real
// binary between a dedicated Mosquitto broker and the in-process Danube test
// broker, measured side by side with a raw paho subscriber on the same broker
// in the same run: throughput at QoS 0 and 1 (ratio to raw paho), latency
// publish → accepted by Danube at 1,000 msg/s, and bridge RSS at steady state
// and while Danube stalls for 60 s under 5,000 msg/s.
//
// It runs only when asked:
//
//	BENCH=1 go test ./tests/bench -run TestEndToEndBenchmark -count=1 -v -timeout 20m
//
// Useful flags: -bench.profdir=DIR (CPU profile, goroutine dump and execution
// trace of the bridge under load), -bench.only=throughput, -bench.inflight=N
// (Mosquitto max_inflight_messages), -bench.maxinflight=N (output
// max_in_flight), -bench.bridgeenv=GOGC=400.
package bench
