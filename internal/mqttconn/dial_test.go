package mqttconn

import (
	"net"
	"net/url"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

func TestOpenConnectionBuffersReads(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	go func() {
		c, err := l.Accept()
		if err == nil {
			_, _ = c.Write([]byte("abc"))
			_ = c.Close()
		}
	}()
	u, _ := url.Parse("tcp://" + l.Addr().String())
	conn, err := OpenConnection(u, *pahoOptions())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	if _, ok := conn.(*bufferedConn); !ok {
		t.Fatalf("%T is not buffered", conn)
	}
	b := make([]byte, 1)
	for _, want := range "abc" {
		if _, err := conn.Read(b); err != nil || rune(b[0]) != want {
			t.Fatalf("read %q, %v", b, err)
		}
	}
	if _, err := dialBroker(&url.URL{Scheme: "ftp", Host: "x:1"}, DialOptions{Timeout: 5 * time.Second}); err == nil {
		t.Fatal("an unknown scheme dialled")
	}
}

func pahoOptions() *paho.ClientOptions {
	return paho.NewClientOptions().SetConnectTimeout(5 * time.Second)
}
