// Command rawpub is the raw paho publisher of the downlink benchmark
// (tests/bench/downlink_test.go): what one paho client can publish to the
// MQTT broker, with nothing before paho: the payloads are generated in
// memory, published at one QoS with at most -inflight PUBLISHes awaiting
// their PUBACK, each token waited for in publish order. It runs as its own
// process so that its CPU time can be read from /proc like the bridge's.
//
// It connects, prints "ready", waits for a line on stdin, publishes, prints
// "done <n> <errors>" and waits for SIGTERM, so the benchmark can read its
// CPU time after the subscriber got the last message.
//
//	rawpub -mqtt tcp://127.0.0.1:1883 -n 20000 -devices 25 -prefix bench -size 64 -qos 1 -inflight 64
package main

import (
	"bufio"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"syscall"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/benthos-danube/benthos-danube/tests/bench/commandload"
)

func main() {
	url := flag.String("mqtt", "tcp://127.0.0.1:1883", "MQTT broker URL")
	id := flag.String("client-id", "rawpub", "MQTT client id")
	n := flag.Int("n", 20000, "messages")
	devices := flag.Int("devices", 25, "devices (topics devices/<prefix>-d<i>/commands)")
	prefix := flag.String("prefix", "bench", "device id prefix")
	size := flag.Int("size", 64, "payload size")
	qos := flag.Int("qos", 1, "QoS")
	inflight := flag.Int("inflight", 64, "PUBLISHes awaiting their acknowledgement at most")
	flag.Parse()

	c := paho.NewClient(paho.NewClientOptions().AddBroker(*url).SetClientID(*id).SetCleanSession(true).
		SetAutoReconnect(false).SetOrderMatters(true).SetWriteTimeout(30 * time.Second))
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		log.Fatalf("rawpub: connect: %v", tok.Error())
	}
	fmt.Println("ready")
	_, _ = bufio.NewReader(os.Stdin).ReadString('\n')

	window := make(chan paho.Token, *inflight)
	errs := 0
	waitOne := func() {
		tok := <-window
		if !tok.WaitTimeout(30*time.Second) || tok.Error() != nil {
			errs++
		}
	}
	for i := 0; i < *n; i++ {
		d := i % *devices
		if len(window) == cap(window) {
			waitOne()
		}
		window <- c.Publish(commandload.Topic(*prefix, d), byte(*qos), false, commandload.Payload(*prefix, d, i / *devices, *size))
	}
	for len(window) > 0 {
		waitOne()
	}
	fmt.Printf("done %d %d\n", *n, errs)
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, os.Interrupt)
	<-sig
	c.Disconnect(100)
}
