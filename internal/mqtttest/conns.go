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

	// turn is held by the connection whose packets the broker is handling
	// (see trackedConn.Read).
	turn sync.Mutex
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

// closeAll closes every connection still open and returns how many it closed.
func (t *connTracker) closeAll() int {
	t.mu.Lock()
	open := make([]*trackedConn, 0, len(t.conns))
	for c := range t.conns {
		open = append(open, c)
	}
	t.mu.Unlock()
	for _, c := range open {
		_ = c.Close()
	}
	return len(open)
}

// trackedConn leaves its tracker when closed, and takes the tracker's turn
// while the broker handles what was read from it.
//
// The turn works around a deadlock in mochi v2.7.9. After handling a
// client's packet, mochi looks for a message that the client's Receive
// Maximum held back (Inflight.NextImmediate): it read-locks the client's
// in-flight map, then read-locks it again inside (Inflight.GetAll). When
// another client's PUBLISH is routed to the client between the two locks
// (Inflight.Set takes the write lock), the second read lock waits for the
// writer and the writer for the first read lock. The client, the publisher
// and mochi's event loop then stop for good, and Close waits for ever (seen
// in TestE2EMQTT5 on mochi, about one run in fifteen under load).
//
// mochi handles a connection's packets in one goroutine, which reads them
// from the connection through a buffer; it reads from the connection again
// only once the buffer is drained, that is once every packet read so far
// has been handled. So a connection holds the turn from a Read's return
// until its next Read, or until it is closed: no PUBLISH is routed while
// another connection's packets are being handled.
//
// The turn also closes a race in mochi's session take-over that loses QoS
// 1/2 messages of persistent sessions. mochi routes a PUBLISH by looking the
// subscriber up, then adding the message to its in-flight map; a client that
// reconnects takes the session over by copying the old client's map,
// clearing it and replacing the client. A message routed to the old client
// after the copy was lost (it showed after broker restarts, when publishers
// reconnect while the subscriber takes its session over). A CONNECT is
// handled in its connection's turn, so routing and take-over no longer
// overlap.
//
// A Read that failed takes the turn too, for what mochi does when a
// connection ends (the will message, the session's clean-up); the Close that
// follows gives it back. Connections of extra listeners (Start's argument)
// do not take part.
type trackedConn struct {
	net.Conn
	owner  *connTracker
	once   sync.Once
	reader atomic.Bool // the first Read has synchronised with the tracker

	turnMu  sync.Mutex
	holding bool // the connection holds owner.turn
	closed  bool
}

// Read gives the turn back, reads from the connection, and waits for the
// turn (see trackedConn). The first Read also takes the tracker's lock (see
// quiesce).
func (c *trackedConn) Read(p []byte) (int, error) {
	c.endTurn()
	if !c.reader.Load() {
		c.owner.mu.Lock()
		c.reader.Store(true)
		c.owner.mu.Unlock()
	}
	n, err := c.Conn.Read(p)
	c.beginTurn()
	return n, err
}

// Close closes the connection and gives its turn back, whichever goroutine
// calls it.
func (c *trackedConn) Close() error {
	c.once.Do(func() {
		c.owner.mu.Lock()
		delete(c.owner.conns, c)
		c.owner.mu.Unlock()
	})
	c.turnMu.Lock()
	c.closed = true
	c.releaseLocked()
	c.turnMu.Unlock()
	return c.Conn.Close()
}

func (c *trackedConn) beginTurn() {
	c.owner.turn.Lock()
	c.turnMu.Lock()
	defer c.turnMu.Unlock()
	if c.closed { // closed while waiting: nothing more to handle
		c.owner.turn.Unlock()
		return
	}
	c.holding = true
}

func (c *trackedConn) endTurn() {
	c.turnMu.Lock()
	c.releaseLocked()
	c.turnMu.Unlock()
}

func (c *trackedConn) releaseLocked() {
	if c.holding {
		c.holding = false
		c.owner.turn.Unlock()
	}
}
