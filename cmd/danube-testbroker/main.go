// Command danube-testbroker runs the in-memory Danube test broker of package
// internal/danube/danubetest on its own, for development and manual tests.
//
// It is NOT Danube: everything lives in memory and is lost on exit. It speaks
// the Danube client gRPC protocol, so any Danube client (ours, the official Go
// or Rust clients, danube-cli) can be pointed at it:
//
//	go run ./cmd/danube-testbroker -addr 127.0.0.1:6650 -namespace iot
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"github.com/benthos-danube/benthos-danube/internal/danube/danubetest"
)

const banner = "in-memory Danube test broker for tests and development — NOT Danube; nothing is persisted"

type multiFlag []string

func (m *multiFlag) String() string { return strings.Join(*m, ",") }

func (m *multiFlag) Set(v string) error {
	*m = append(*m, v)
	return nil
}

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "danube-testbroker:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("danube-testbroker", flag.ContinueOnError)
	var (
		namespaces, tokens multiFlag
		addr               = fs.String("addr", "127.0.0.1:6650", "listen address")
		advertise          = fs.String("advertise", "", "URL advertised in lookups (default http(s)://<addr>); set it when listening on 0.0.0.0")
		autoCreate         = fs.Bool("auto-create", true, "create topics on first CreateProducer")
		clusterMode        = fs.Bool("cluster-mode", false, "first CreateProducer of a new topic answers Unavailable (like a cluster-mode broker)")
		tlsCert            = fs.String("tls-cert", "", "TLS certificate file (with -tls-key: serve TLS)")
		tlsKey             = fs.String("tls-key", "", "TLS private key file")
		ackTimeout         = fs.Duration("ack-timeout", danubetest.DefaultAckTimeout, "reliable redelivery after a missing ack")
		nackDelay          = fs.Duration("nack-delay", danubetest.DefaultNackDelay, "base nack redelivery delay")
		maxUnacked         = fs.Int("max-unacked", danubetest.DefaultMaxUnacked, "reliable in-flight window per subscription")
		consumerQueue      = fs.Int("consumer-queue", danubetest.DefaultConsumerQueue, "non-reliable per-consumer queue; messages for a full queue are dropped (and counted), as Danube does")
		printStats         = fs.Duration("print-stats", 0, "log topic message counts at this interval (0: only on exit)")
		verbose            = fs.Bool("v", false, "debug logging")
		cpuProfile         = fs.String("cpuprofile", "", "write a CPU profile of the broker to this file until it stops (go tool pprof)")
	)
	fs.Var(&namespaces, "namespace", "extra namespace to create (repeatable); default and system always exist")
	fs.Var(&tokens, "token", "accepted bearer token (repeatable); enables authentication")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "danube-testbroker: %s.\n\n", banner)
		fmt.Fprintf(fs.Output(), "It serves the Danube client gRPC protocol from memory, for tests and local\n")
		fmt.Fprintf(fs.Output(), "development only. Do not use it as a message broker.\n\nUsage:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}

	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

	opts := []danubetest.Option{
		danubetest.WithAddr(*addr),
		danubetest.WithAutoCreateTopics(*autoCreate),
		danubetest.WithClusterMode(*clusterMode),
		danubetest.WithNamespaces(namespaces...),
		danubetest.WithAckTimeout(*ackTimeout),
		danubetest.WithNackDelay(*nackDelay),
		danubetest.WithMaxUnacked(*maxUnacked),
		danubetest.WithConsumerQueue(*consumerQueue),
		danubetest.WithLogger(logger),
	}
	if *advertise != "" {
		opts = append(opts, danubetest.WithAdvertisedURL(*advertise))
	}
	if len(tokens) > 0 {
		opts = append(opts, danubetest.WithTokens(tokens...))
	}
	if (*tlsCert == "") != (*tlsKey == "") {
		return errors.New("-tls-cert and -tls-key must be given together")
	}
	if *tlsCert != "" {
		cert, err := tls.LoadX509KeyPair(*tlsCert, *tlsKey)
		if err != nil {
			return fmt.Errorf("load TLS key pair: %w", err)
		}
		opts = append(opts, danubetest.WithTLS(&tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}))
	}

	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return fmt.Errorf("cpuprofile: %w", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("cpuprofile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}

	srv, err := danubetest.NewServer(opts...)
	if err != nil {
		return err
	}
	defer srv.Close()
	logger.Warn("danube-testbroker: " + banner)
	logger.Info("listening", "url", srv.URL(), "namespaces", append([]string{"default", "system"}, namespaces...),
		"auto_create", *autoCreate, "cluster_mode", *clusterMode, "auth", len(tokens) > 0, "tls", *tlsCert != "")

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var tick <-chan time.Time
	if *printStats > 0 {
		t := time.NewTicker(*printStats)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-ctx.Done():
			logStats(logger, srv)
			logger.Info("shutting down; all in-memory state is discarded")
			return nil
		case <-tick:
			logStats(logger, srv)
		}
	}
}

func logStats(logger *slog.Logger, srv *danubetest.Server) {
	topics := srv.Topics()
	logger.Info("stats", "topics", len(topics), "messages", srv.TotalMessages(),
		"producers", srv.ProducerCount(), "consumers", srv.ConsumerCount())
	for _, t := range topics {
		logger.Info("topic", "name", t, "messages", srv.MessageCount(t), "dropped", srv.DroppedMessages(t))
	}
}
