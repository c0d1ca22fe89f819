package mqtttest

import (
	"net"
	"sync"
	"sync/atomic"
)

// connTracker is the broker's TCP listener, keeping every connection it
// accepted until that connection is closed. mochi's Close can wait for ever:
// it writes DISCONNECT to each client with no deadline, so a client whose
// reader is paused (back-pressure) blocks it, and a connection accepted while
// Close takes its list of clients is never closed at all. Closing what the
// tracker holds unblocks both.
type connTracker struct {
	net.Listener

	mu    sync.Mutex
	conns map[*trackedConn]struct{}
}

func newConnTracker(l net.Listener) *connTracker {
	return &connTracker{Listener: l, conns: make(map[*trackedConn]struct{})}
}

// Accept accepts a connection and records it.
func (t *connTracker) Accept() (net.Conn, error) {
	c, err := t.Listener.Accept()
	if err != nil {
		return nil, err
	}
	tc := &trackedConn{Conn: c, owner: t}
	t.mu.Lock()
	t.conns[tc] = struct{}{}
	t.mu.Unlock()
	return tc, nil
}

// quiesce stops accepting connections, so that none arrives while mochi
// closes, and orders every connection's first read before the caller goes
// on. mochi counts a connection in its WaitGroup before that first read, and
// waits on the group when it closes; without an order between the two the
// race detector reports mochi's Add against its Wait.
func (t *connTracker) quiesce() {
	_ = t.Listener.Close()
	t.mu.Lock()
	defer t.mu.Unlock()
}

// closeAll closes every connection still open.
func (t *connTracker) closeAll() {
	t.mu.Lock()
	open := make([]*trackedConn, 0, len(t.conns))
	for c := range t.conns {
		open = append(open, c)
	}
	t.mu.Unlock()
	for _, c := range open {
		_ = c.Close()
	}
}

// trackedConn leaves its tracker when closed.
type trackedConn struct {
	net.Conn
	owner  *connTracker
	once   sync.Once
	reader atomic.Bool // the first Read has synchronised with the tracker
}

// Read reads from the connection; the first Read takes the tracker's lock
// (see quiesce).
func (c *trackedConn) Read(p []byte) (int, error) {
	if !c.reader.Load() {
		c.owner.mu.Lock()
		c.reader.Store(true)
		c.owner.mu.Unlock()
	}
	return c.Conn.Read(p)
}

func (c *trackedConn) Close() error {
	c.once.Do(func() {
		c.owner.mu.Lock()
		delete(c.owner.conns, c)
		c.owner.mu.Unlock()
	})
	return c.Conn.Close()
}
