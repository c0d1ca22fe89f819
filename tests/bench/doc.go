// Package bench holds the end-to-end benchmark of benthos-danube: the real
// binary between a dedicated Mosquitto broker and the in-process Danube test
// broker, measured in the same run, on the same load, beside two other
// processes under test:
//
//   - a raw paho subscriber (./rawsub: paho's automatic acks, nothing after
//     paho), what Mosquitto can deliver to one client;
//   - a minimal hand-written bridge (./minibridge) with the same parts and
//     the same guarantees as benthos-danube: paho with manual acks released
//     in arrival order, Producer.Send of our Danube client with the MQTT
//     topic as routing key and the attributes the danube output writes by
//     default, the MQTT ack only after Danube's, one send in flight per MQTT topic and max_in_flight in all,
//     QoS 0 back-pressured (the paho handler blocks) rather than shed, a
//     persistent session. It is the ceiling of what the bridge could reach.
//
// Every throughput round publishes flagN messages from 4 publishers × 25
// devices as fast as the publishers go (at QoS 0 an unpaced burst) to each
// of the three in turn, on topics of its own, and reports per QoS:
// throughput, delivered fraction, CPU µs per delivered message (utime+stime
// of that process from /proc), its MQTT disconnects (Mosquitto's log), per
// device order violations in Danube, and the ratios bridge/raw and
// bridge/minimal. Then: latency publish → accepted by Danube at 1,000 msg/s,
// and bridge RSS at steady state and while Danube stalls for 60 s under
// 5,000 msg/s.
//
// It runs only when asked:
//
//	BENCH=1 go test ./tests/bench -run TestEndToEndBenchmark -count=1 -v -timeout 20m
//
// Useful flags: -bench.n=N and -bench.rounds=N (sizes), -bench.only=throughput
// (skips latency and stall), -bench.profdir=DIR (10 s CPU profiles of the
// bridge and of the minimal bridge under the same load, a goroutine dump and
// an execution trace of the bridge), -bench.inflight=N (Mosquitto
// max_inflight_messages), -bench.maxinflight=N (max_in_flight of the output
// and of the minimal bridge), -bench.bridgeenv=GOGC=400 (environment of
// every process under test).
package bench
