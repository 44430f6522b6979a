package proxy

import (
	"errors"
	"net"
	"net/http"
	"net/netip"
	"strings"
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
	// sess is the session chosen for the tunnel (affinity tunnel), which
	// its HTTP/2 streams, running at once, share.
	sess choice
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

// checkHostName reports what is wrong with a request's target host (its
// port and brackets aside), or nil: an IP address, or a DNS-like name of
// at most 253 letters, digits, '-', '.' and '_' that is not dots alone
// (dots alone name no site: sites.Of gives "", the pool of sessions that
// serve every site). Any other byte (a space, a control character, a
// byte of no UTF-8) names nothing a resolver finds, and would go on into
// the logs and metrics.
func checkHostName(host string) error {
	if a, err := netip.ParseAddr(host); err == nil && nameBytes(a.Zone()) { // an IPv6 address may have a zone (fe80::1%eth0)
		return nil
	}
	if name := strings.TrimSuffix(host, "."); name == "" || len(name) > 253 { // the root's dot aside
		return errors.New("host must be 1 to 253 characters")
	}
	if strings.Trim(host, ".") == "" {
		return errors.New("host must name something, not dots alone")
	}
	if !nameBytes(host) {
		return errors.New("host must be an IP address or a name of letters, digits, '-', '.' and '_'")
	}
	return nil
}

// nameBytes reports whether s holds only letters, digits, '-', '.' and '_'.
func nameBytes(s string) bool {
	for _, c := range []byte(s) {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_') {
			return false
		}
	}
	return true
}
