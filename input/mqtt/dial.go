package mqtt

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

// dialOptions is what dialing a broker needs, for both transports.
type dialOptions struct {
	timeout   time.Duration
	tls       *tls.Config
	dialer    *net.Dialer // nil: a dialer with timeout
	headers   http.Header // WebSocket handshake headers
	websocket *paho.WebsocketOptions
}

// openConnection is paho's CustomOpenConnectionFn: it dials the broker as
// paho's own dialer does for each scheme (the proxy from the environment
// for tcp, ssl and their aliases; WebSockets through paho; unix sockets) and
// puts a buffered reader under the connection.
func openConnection(uri *url.URL, o paho.ClientOptions) (net.Conn, error) {
	return openBuffered(uri, dialOptions{timeout: o.ConnectTimeout, tls: o.TLSConfig, dialer: o.Dialer, headers: o.HTTPHeaders, websocket: o.WebsocketOptions})
}

// openBuffered dials uri and puts a buffered reader under the connection.
func openBuffered(uri *url.URL, o dialOptions) (net.Conn, error) {
	conn, err := dialBroker(uri, o)
	if err != nil {
		return nil, err
	}
	return &bufferedConn{Conn: conn, r: bufio.NewReaderSize(conn, readBufferSize)}, nil
}

func dialBroker(uri *url.URL, o dialOptions) (net.Conn, error) {
	dialer := o.dialer
	if dialer == nil {
		dialer = &net.Dialer{Timeout: o.timeout}
	}
	switch uri.Scheme {
	case "ws", "wss":
		u := *uri
		u.User = nil // the WebSocket dialer refuses URLs with credentials
		var tlsc *tls.Config
		if uri.Scheme == "wss" {
			tlsc = o.tls
		}
		return paho.NewWebsocket(u.String(), tlsc, o.timeout, o.headers, o.websocket)
	case "tcp", "mqtt":
		return proxy.FromEnvironmentUsing(dialer).Dial("tcp", uri.Host)
	case "unix":
		path := uri.Host
		if path == "" {
			path = uri.Path
		}
		return dialer.Dial("unix", path)
	case "ssl", "tls", "mqtts", "mqtt+ssl", "tcps":
		if os.Getenv("all_proxy") == "" {
			return tls.DialWithDialer(dialer, "tcp", uri.Host, o.tls)
		}
		raw, err := proxy.FromEnvironmentUsing(dialer).Dial("tcp", uri.Host)
		if err != nil {
			return nil, err
		}
		cfg := o.tls
		if cfg == nil {
			cfg = &tls.Config{}
		}
		if cfg.ServerName == "" {
			cfg = cfg.Clone()
			cfg.ServerName = uri.Hostname()
		}
		tc := tls.Client(raw, cfg)
		if err := tc.Handshake(); err != nil {
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
