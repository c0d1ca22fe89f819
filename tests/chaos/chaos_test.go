package chaos

import (
	"context"
	"flag"
	"fmt"
	"math/rand"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/benthos-danube/benthos-danube/internal/danube/danubetest"
	"github.com/benthos-danube/benthos-danube/internal/deadletter"
	"github.com/benthos-danube/benthos-danube/tests/harness"
)

var (
	flagDuration   = flag.Duration("chaos.duration", 0, "load duration of the chaos soak (0 = skip unless CHAOS=1, which means 60s)")
	flagRate       = flag.Float64("chaos.rate", 200, "total publish rate, messages per second")
	flagSeed       = flag.Int64("chaos.seed", 1, "seed of the fault schedule")
	flagPublishers = flag.Int("chaos.publishers", 4, "number of MQTT publishers")
	flagDevices    = flag.Int("chaos.devices", 3, "devices per publisher")
	flagPartitions = flag.Int("chaos.partitions", 4, "partitions of the Danube topic")
	flagDrain      = flag.Duration("chaos.drain", 60*time.Second, "how long to wait for stragglers after the load stops")
	flagLogDir     = flag.String("chaos.logdir", "", "keep broker and bridge logs here (default: a temp dir)")
	flagReport     = flag.String("chaos.report", "", "also write the result table to this file")
	flagProtocol   = flag.String("chaos.protocol", "3.1.1", "MQTT protocol_version of the bridge's input: 3.1.1 or 5")
)

const (
	danubeTopic = "/default/chaos"
	bridgeID    = "chaos-bridge"
)

func TestChaosSoak(t *testing.T) {
	dur := *flagDuration
	if dur == 0 {
		if os.Getenv("CHAOS") != "1" {
			t.Skip("chaos soak: set CHAOS=1 or -chaos.duration to run")
		}
		dur = 60 * time.Second
	}
	if !harness.MosquittoAvailable() {
		t.Fatal("chaos soak needs mosquitto on PATH")
	}
	logDir := *flagLogDir
	if logDir == "" {
		logDir = t.TempDir()
	} else if err := os.MkdirAll(logDir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Logf("logs in %s", logDir)

	ctx, cancel := context.WithTimeout(context.Background(), dur+*flagDrain+5*time.Minute)
	defer cancel()

	rig := harness.StartRig(t, ctx, harness.RigConfig{
		LogDir: logDir,
		Bridge: harness.BridgeConfig{
			ClientID: bridgeID, Keepalive: "5s", InputExtra: []string{"connect_timeout: 3s", fmt.Sprintf("protocol_version: %q", *flagProtocol)},
			Mappings:    []string{fmt.Sprintf("{ mqtt_topic: chaos/+/data, danube_topic: %s, qos: 1, partitions: %d }", danubeTopic, *flagPartitions)},
			OutputExtra: []string{"send_timeout: 5s"},
		},
		// A probe in Danube: the bridge's persistent session exists before
		// the counted load.
		ProbeTopic:  "chaos/probe/data",
		ProbeDanube: partitionNames(),
	})
	srv, mq, bridge := rig.Danube, rig.MQTT, rig.Bridge

	// The witness: a persistent paho subscriber on the same filter, which
	// shows what the MQTT broker itself delivered.
	witness, err := harness.NewSubscriber(harness.SubscriberConfig{URL: mq.URL(), ClientID: "chaos-witness",
		Filter: "chaos/+/data", QoS: 1, Clean: false, Parse: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(witness.Close)

	ledger := harness.NewLedger()
	var pubs []*harness.Publisher
	for i := 0; i < *flagPublishers; i++ {
		var devs []string
		for j := 0; j < *flagDevices; j++ {
			devs = append(devs, fmt.Sprintf("p%dd%d", i, j))
		}
		p, err := harness.NewPublisher(harness.PublisherConfig{URL: mq.URL(), ClientID: fmt.Sprintf("chaos-pub-%d", i),
			Topic: func(dev string) string { return "chaos/" + dev + "/data" }, Devices: devs,
			Rate: *flagRate / float64(*flagPublishers), QoS: 1, Clean: false,
			RetryAfter: 60 * time.Second, MaxInFlight: 20000, Ledger: ledger})
		if err != nil {
			t.Fatal(err)
		}
		pubs = append(pubs, p)
	}
	t.Cleanup(func() {
		for _, p := range pubs {
			p.Close()
		}
	})
	probeCount := srv.TotalMessages()

	trackCtx, stopTrack := context.WithCancel(ctx)
	defer stopTrack()
	clocks := map[string]*harness.IndexClock{}
	for _, name := range partitionNames() {
		c := &harness.IndexClock{}
		clocks[name] = c
		go c.Follow(trackCtx, func(ctx context.Context, n int) error { return srv.WaitForMessages(ctx, name, n) },
			func() int { return srv.MessageCount(name) })
	}
	superCtx, stopSuper := context.WithCancel(ctx)
	defer stopSuper()
	go bridge.Supervise(superCtx)

	rng := rand.New(rand.NewSource(*flagSeed))
	plan := harness.PlanFaults(rng, dur)
	for _, f := range plan {
		t.Logf("planned: %-20s at %5.1fs hold %v latency %v", f.Kind, f.At.Seconds(), f.Hold, f.Latency)
	}

	// Load.
	loadStart := time.Now()
	loadCtx, stopLoad := context.WithDeadline(ctx, loadStart.Add(dur))
	defer stopLoad()
	var pubWG sync.WaitGroup
	for _, p := range pubs {
		pubWG.Add(1)
		go func() { defer pubWG.Done(); p.Run(loadCtx) }()
	}

	// Faults.
	results := harness.RunFaults(ctx, t.Logf, loadStart, plan, mq, srv, bridge)
	pubWG.Wait()
	loadEnd := time.Now()
	attempted, _, _ := ledger.Counts()
	t.Logf("load stopped after %v: %d ids published", loadEnd.Sub(loadStart).Round(time.Millisecond), attempted)

	// Drain: publishers finish their retries, then Danube catches up.
	drainCtx, drainCancel := context.WithTimeout(ctx, *flagDrain)
	defer drainCancel()
	for _, p := range pubs {
		p.Flush(drainCtx)
	}
	var rep harness.Report
	for {
		rep = harness.Analyse(harness.Analysis{Log: srv, Topic: danubeTopic, Ledger: ledger, Witness: witness})
		_, acked, _ := ledger.Counts()
		if rep.Missing == 0 && acked == attempted {
			break
		}
		select {
		case <-drainCtx.Done():
		case <-time.After(2 * time.Second):
			continue
		}
		break
	}
	drainTook := time.Since(loadEnd)
	stopSuper()
	if bridge.Running() {
		if _, forced, err := bridge.Stop(syscall.SIGTERM, 15*time.Second); err == nil && forced {
			t.Logf("final bridge SIGTERM did not finish in 15s")
		}
	}
	stopTrack()
	rep = harness.Analyse(harness.Analysis{Log: srv, Topic: danubeTopic, Ledger: ledger, Witness: witness, Clocks: clocks, Faults: results})
	rep.Probe = probeCount
	rep.DeadLettered = srv.MessageCount(deadletter.DefaultTopic)
	rep.Duration, rep.Rate, rep.Seed = dur, *flagRate, *flagSeed
	rep.Drain = drainTook
	rep.Faults = results // Analyse filled in the recovery times
	rep.Peak = bridge.Peak()
	rep.Starts = bridge.Starts()
	rep.Unexpected = bridge.Unexpected()
	table := rep.Table()
	fmt.Print(table)
	if *flagReport != "" {
		_ = os.WriteFile(*flagReport, []byte(table), 0o644)
	}

	// Verdict.
	if rep.Missing > 0 {
		t.Errorf("%d published messages missing in Danube (%d of them also never reached the MQTT witness); first: %v",
			rep.Missing, rep.MissingAtBroker, rep.MissingSample)
	}
	injected := map[harness.FaultKind]bool{}
	for _, r := range results {
		if r.Err == nil && !r.End.IsZero() {
			injected[r.Kind] = true
		} else if r.Err != nil {
			t.Errorf("fault %s at %v failed: %v", r.Kind, r.Start.Sub(loadStart).Round(time.Millisecond), r.Err)
		}
	}
	for _, k := range harness.FaultKinds() {
		if !injected[k] {
			t.Errorf("fault kind %s was not injected", k)
		}
	}
	for _, u := range rep.Unexpected {
		t.Errorf("unexpected bridge exit: %s", u)
	}
	for _, l := range mq.PersistenceErrors() {
		t.Errorf("mosquitto persistence error: %s", l)
	}
	if rep.DeadLettered > 0 {
		// Every fault here is transient: none may dead-letter a message.
		t.Errorf("%d messages were dead-lettered during transient faults; first reasons: %v", rep.DeadLettered, deadLetterReasons(srv, 5))
	}
	if rep.Unparsable > 0 {
		t.Errorf("%d messages in Danube had an unreadable payload", rep.Unparsable)
	}
	if t.Failed() {
		t.Logf("latest bridge log tail:\n%s", harness.TailFile(bridge.LogPath(), 4000))
	}
}

// partitionNames lists the Danube topic names the bridge writes to.
func partitionNames() []string { return harness.PartitionNames(danubeTopic, *flagPartitions) }

// deadLetterReasons returns the reasons and errors of the first n
// dead-letter records.
func deadLetterReasons(srv *danubetest.Server, n int) []string {
	var out []string
	for _, m := range srv.Messages(deadletter.DefaultTopic) {
		if len(out) == n {
			break
		}
		out = append(out, m.Attributes[deadletter.Reason]+": "+m.Attributes[deadletter.Error])
	}
	return out
}
