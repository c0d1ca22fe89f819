// Package mqttconn is the MQTT connection setup shared by the mqtt input and
// the mqtt output: the broker URL checks of lint and start-up, and the dialer
// both MQTT clients use (a buffered reader under the connection; for the
// output, TCP_QUICKACK).
package mqttconn

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"golang.org/x/net/proxy"
)

// readBufferSize is the read buffer under paho. paho reads every packet with
// several small reads (the fixed header byte, each length byte, then the
// body); on a bare TCP connection each is a syscall. Buffered, a burst of
// PUBLISH packets costs one read per buffer.
const readBufferSize = 64 << 10

// DialOptions is what dialing a broker needs, for every MQTT client library.
type DialOptions struct {
	Timeout   time.Duration
	TLS       *tls.Config
	Dialer    *net.Dialer // nil: a dialer with Timeout
	Headers   http.Header // WebSocket handshake headers
	Websocket *paho.WebsocketOptions
	// QuickAck re-arms TCP_QUICKACK after every read of the TCP connection
	// (under TLS too; Linux), so the kernel acknowledges the broker's
	// segments at once. For a client that waits for the broker's small
	// answers (PUBACK, PUBCOMP): Mosquitto does not set TCP_NODELAY unless
	// configured to (set_tcp_nodelay), so without it each PUBACK the broker
	// sends while the previous one is unacknowledged waits for the client's
	// delayed ACK (Nagle's algorithm). Measured: a publisher with 10
	// messages in flight went from 615 to 6,078 msg/s.
	QuickAck bool
}

func pahoDialOptions(o paho.ClientOptions) DialOptions {
	return DialOptions{Timeout: o.ConnectTimeout, TLS: o.TLSConfig, Dialer: o.Dialer, Headers: o.HTTPHeaders, Websocket: o.WebsocketOptions}
}

// OpenConnection is paho's CustomOpenConnectionFn: it dials the broker as
// paho's own dialer does for each scheme (the proxy from the environment
// for tcp, ssl and their aliases; WebSockets through paho; unix sockets) and
// puts a buffered reader under the connection.
func OpenConnection(uri *url.URL, o paho.ClientOptions) (net.Conn, error) {
	return OpenBuffered(uri, pahoDialOptions(o))
}

// OpenConnectionQuickAck is OpenConnection with DialOptions.QuickAck.
func OpenConnectionQuickAck(uri *url.URL, o paho.ClientOptions) (net.Conn, error) {
	do := pahoDialOptions(o)
	do.QuickAck = true
	return OpenBuffered(uri, do)
}

// OpenBuffered dials uri and puts a buffered reader under the connection.
func OpenBuffered(uri *url.URL, o DialOptions) (net.Conn, error) {
	conn, err := dialBroker(uri, o)
	if err != nil {
		return nil, err
	}
	return &bufferedConn{Conn: conn, r: bufio.NewReaderSize(conn, readBufferSize)}, nil
}

func dialBroker(uri *url.URL, o DialOptions) (net.Conn, error) {
	dialer := o.Dialer
	if dialer == nil {
		dialer = &net.Dialer{Timeout: o.Timeout}
	}
	var wrap func(net.Conn) net.Conn
	if o.QuickAck {
		wrap = withQuickAck
	}
	switch uri.Scheme {
	case "ws", "wss":
		u := *uri
		u.User = nil // the WebSocket dialer refuses URLs with credentials
		var tlsc *tls.Config
		if uri.Scheme == "wss" {
			tlsc = o.TLS
		}
		return paho.NewWebsocket(u.String(), tlsc, o.Timeout, o.Headers, o.Websocket)
	case "tcp", "mqtt":
		c, err := proxy.FromEnvironmentUsing(dialer).Dial("tcp", uri.Host)
		if err != nil || wrap == nil {
			return c, err
		}
		return wrap(c), nil
	case "unix":
		path := uri.Host
		if path == "" {
			path = uri.Path
		}
		return dialer.Dial("unix", path)
	case "ssl", "tls", "mqtts", "mqtt+ssl", "tcps":
		if os.Getenv("all_proxy") == "" && wrap == nil {
			return tls.DialWithDialer(dialer, "tcp", uri.Host, o.TLS)
		}
		raw, err := proxy.FromEnvironmentUsing(dialer).Dial("tcp", uri.Host)
		if err != nil {
			return nil, err
		}
		if wrap != nil {
			raw = wrap(raw)
		}
		cfg := o.TLS
		if cfg == nil {
			cfg = &tls.Config{}
		}
		if cfg.ServerName == "" {
			cfg = cfg.Clone()
			cfg.ServerName = uri.Hostname()
		}
		tc := tls.Client(raw, cfg)
		if o.Timeout > 0 {
			_ = raw.SetDeadline(time.Now().Add(o.Timeout))
		}
		err = tc.Handshake()
		_ = raw.SetDeadline(time.Time{})
		if err != nil {
			_ = raw.Close()
			return nil, err
		}
		return tc, nil
	}
	return nil, fmt.Errorf("unsupported scheme %q", uri.Scheme)
}

// bufferedConn reads through a buffer; everything else goes to the
// connection.
type bufferedConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *bufferedConn) Read(p []byte) (int, error) { return c.r.Read(p) }
