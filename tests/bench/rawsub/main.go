// Command rawsub is the raw paho subscriber of the end-to-end benchmark
// (tests/bench): what the MQTT broker can deliver to one client on the load,
// with paho's automatic acks and nothing after paho. It runs as its own
// process so that its CPU time can be read from /proc like the bridges'.
//
// It counts the messages it receives and serves, on -http:
//
//	GET /stats  "<count> <first receive, unix ns> <last receive, unix ns>\n"
//	POST /reset zeroes them
//
//	rawsub -mqtt tcp://127.0.0.1:1883 -client-id raw -sub 'raw/q0/+=0' -sub 'raw/q1/+=1' -http 127.0.0.1:7070
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

func main() {
	url := flag.String("mqtt", "tcp://127.0.0.1:1883", "MQTT broker URL")
	id := flag.String("client-id", "rawsub", "MQTT client id")
	clean := flag.Bool("clean", true, "clean session")
	addr := flag.String("http", "127.0.0.1:0", "address of the stats endpoint")
	subs := map[string]byte{}
	flag.Func("sub", "FILTER=QOS (repeatable)", func(s string) error {
		f, q, ok := strings.Cut(s, "=")
		n, err := strconv.Atoi(q)
		if !ok || f == "" || err != nil || n < 0 || n > 2 {
			return fmt.Errorf("want FILTER=QOS, got %q", s)
		}
		subs[f] = byte(n)
		return nil
	})
	flag.Parse()
	log.SetFlags(log.LstdFlags | log.Lmicroseconds)
	if len(subs) == 0 {
		log.Fatal("rawsub: at least one -sub is required")
	}

	var count, firstNs, lastNs atomic.Int64
	h := func(_ paho.Client, _ paho.Message) {
		now := time.Now().UnixNano()
		firstNs.CompareAndSwap(0, now)
		lastNs.Store(now)
		count.Add(1)
	}
	// The options of the harness's in-process subscriber.
	opts := paho.NewClientOptions().AddBroker(*url).SetClientID(*id).
		SetCleanSession(*clean).SetAutoReconnect(true).SetConnectRetry(true).
		SetConnectRetryInterval(250 * time.Millisecond).SetMaxReconnectInterval(time.Second).
		SetKeepAlive(5 * time.Second).SetConnectTimeout(3 * time.Second).
		SetDefaultPublishHandler(h).SetResumeSubs(true).
		SetOnConnectHandler(func(c paho.Client) {
			log.Printf("connected to %s as %q", *url, *id)
			c.SubscribeMultiple(subs, nil) // on every connection
		}).
		SetConnectionLostHandler(func(_ paho.Client, err error) { log.Printf("MQTT connection lost: %v", err) })
	c := paho.NewClient(opts)
	if tok := c.Connect(); !tok.WaitTimeout(30*time.Second) || tok.Error() != nil {
		log.Fatalf("rawsub: connect: %v", tok.Error())
	}

	mux := http.NewServeMux()
	mux.HandleFunc("GET /stats", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintf(w, "%d %d %d\n", count.Load(), firstNs.Load(), lastNs.Load())
	})
	mux.HandleFunc("POST /reset", func(w http.ResponseWriter, _ *http.Request) {
		count.Store(0)
		firstNs.Store(0)
		lastNs.Store(0)
	})
	l, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatalf("rawsub: %v", err)
	}
	log.Printf("stats on http://%s/stats", l.Addr())
	srv := &http.Server{Handler: mux}
	go func() { _ = srv.Serve(l) }()

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	<-ctx.Done()
	_ = srv.Close()
	c.Disconnect(250)
	os.Exit(0)
}
