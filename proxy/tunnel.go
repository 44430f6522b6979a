package proxy

import (
	"net"
	"net/http"
	"sync"
)

// The state a request carries from the outer handler through goproxy to
// the request path: who the client is, and the tunnel it came through.

// clientInfo is what the proxy knows about a client connection before
// goproxy sees the request.
type clientInfo struct {
	addr        string // client IP, without port
	sessionName string // from the proxy username ("session-<id>"), or ""
}

// tunnel is the state of one client exchange: a CONNECT tunnel with all the
// requests inside it, or a single plain-HTTP request. goproxy copies the
// CONNECT context's UserData into the context of every request inside the
// tunnel, so a *tunnel is how those requests find each other.
type tunnel struct {
	client clientInfo
	host   string // the CONNECT target, host:port; "" for plain HTTP
	// out is the client's connection of an intercepted HTTP/1.1 CONNECT,
	// whose writes are coalesced once HTTP/1.x flows inside; else nil.
	out *coalescingConn
	// mitm is the client side of an intercepted HTTP/1.1 CONNECT, set
	// before any request inside it; else nil.
	mitm *mitmConn
	// w is what a plain-HTTP request's response is written through; nil
	// inside tunnels.
	w *streamWriter

	mu   sync.Mutex // guards sess: HTTP/2 streams of one tunnel run at once
	sess string     // id of the session chosen for the tunnel (affinity tunnel)
}

func (t *tunnel) session() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.sess
}

func (t *tunnel) setSession(id string) {
	t.mu.Lock()
	t.sess = id
	t.mu.Unlock()
}

// hostOnly strips the port from host:port, leaving anything else alone.
func hostOnly(hostport string) string {
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		return h
	}
	return hostport
}

// skipOrder takes req's header order from the tunnel's reader and drops
// it, for a request answered before identify takes it: the next request
// gets its own.
func (t *tunnel) skipOrder(req *http.Request) {
	if t.mitm != nil {
		t.mitm.order(req)
	}
}
