package mqtt

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/benthos-danube/benthos-danube/internal/syncbuf"
)

// newLoggedInput builds the input from yaml with a captured debug logger.
// Close runs on cleanup (again, if the test closed it).
func newLoggedInput(t *testing.T, yaml string) (*input, *syncbuf.Buffer, error) {
	t.Helper()
	logs := &syncbuf.Buffer{}
	conf, err := Spec().ParseYAML(yaml, nil)
	if err != nil {
		t.Fatal(err)
	}
	logger := service.NewLoggerFromSlog(slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	in, err := newInput(conf, service.MockResources(service.MockResourcesOptUseLogger(logger)))
	if in != nil {
		t.Cleanup(func() { _ = in.Close(context.Background()) })
	}
	return in, logs, err
}

// closedPort returns a loopback port nothing listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	return addr
}

// TestURLPasswordNotShown: a password in a broker URL appears neither in the
// "Connected" line, nor in connection errors (which Benthos logs and shows
// on /ready), nor in the error of a URL that does not parse.
func TestURLPasswordNotShown(t *testing.T) {
	b := newTestBroker(t, false)
	const secret = "hunter2-s3cret"
	tests := []struct {
		name    string
		url     string
		connect bool   // Connect succeeds
		want    string // in the logs or the error
	}{
		{"connected", "tcp://bridge:" + secret + "@" + b.addr, true, "Connected to MQTT broker [tcp://bridge:xxxxx@" + b.addr + "]"},
		{"unreachable", "tcp://bridge:" + secret + "@" + closedPort(t), false, "connecting to MQTT broker [tcp://bridge:xxxxx@"},
		{"several URLs", "tcp://bridge:" + secret + "@" + closedPort(t) + ",ws://bridge:" + secret + "@" + closedPort(t), false, "ws://bridge:xxxxx@"},
		{"unsupported scheme", "http://bridge:" + secret + "@" + b.addr, false, `unsupported scheme "http" in "http://bridge:xxxxx@`},
		{"does not parse", "tcp://bridge:" + secret + "%zz@" + b.addr, false, "tcp://bridge:xxxxx@"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in, logs, err := newLoggedInput(t, fmt.Sprintf("urls: [ %q ]\nconnect_timeout: 2s\ntopics: [ a ]\n", tt.url))
			text := ""
			if err == nil {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				err = in.Connect(ctx)
				cancel()
				if (err == nil) != tt.connect {
					t.Fatalf("Connect = %v, want success %v", err, tt.connect)
				}
			}
			if err != nil {
				text = err.Error()
			}
			text += "\n" + logs.String()
			if strings.Contains(text, "hunter2") || strings.Contains(text, "s3cret") {
				t.Errorf("the password is shown:\n%s", text)
			}
			if !strings.Contains(text, tt.want) {
				t.Errorf("no %q in:\n%s", tt.want, text)
			}
		})
	}
}
