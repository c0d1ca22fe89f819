//go:build linux

package mqttconn

import (
	"io"
	"net"
	"net/url"
	"syscall"
	"testing"
)

// TestQuickAckRearmedAfterRead: the kernel clears TCP_QUICKACK by itself;
// the connection of OpenConnectionQuickAck sets it again after every read.
func TestQuickAckRearmedAfterRead(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	// An echo server: request/response traffic puts the kernel in delayed-ACK
	// (ping-pong) mode, which clears TCP_QUICKACK.
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		buf := make([]byte, 64)
		for {
			n, err := c.Read(buf)
			if err != nil {
				return
			}
			if _, err := c.Write(buf[:n]); err != nil {
				return
			}
		}
	}()
	u, _ := url.Parse("tcp://" + l.Addr().String())
	conn, err := OpenConnectionQuickAck(u, *pahoOptions())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	q, ok := conn.(*bufferedConn).Conn.(*quickAckConn)
	if !ok {
		t.Fatalf("%T under the buffer, want *quickAckConn", conn.(*bufferedConn).Conn)
	}
	b := make([]byte, 2)
	for i := 0; i < 20; i++ {
		if _, err := conn.Write([]byte("ab")); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(conn, b); err != nil {
			t.Fatal(err)
		}
	}
	var v int
	var gerr error
	if err := q.raw.Control(func(fd uintptr) {
		v, gerr = syscall.GetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_QUICKACK)
	}); err != nil || gerr != nil {
		t.Fatal(err, gerr)
	}
	if v != 1 {
		t.Fatalf("TCP_QUICKACK = %d after a read, want 1", v)
	}
}
