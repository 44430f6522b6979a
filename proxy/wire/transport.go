package wire

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"golang.org/x/net/http/httpguts"
)

// ErrUpgradeOverH2: a request to switch protocols (Upgrading) got a
// connection on which the origin chose HTTP/2, which has no Upgrade.
var ErrUpgradeOverH2 = errors.New("wire: upgrade on an HTTP/2 connection")

// Conn is a connection a Transport's Dial opened: TLS, when the request's
// scheme is https, already done.
type Conn struct {
	net.Conn
	// Proto is "h2" for HTTP/2 (the ALPN the handshake agreed on), else
	// HTTP/1.1.
	Proto string
	// H2 is the preface an HTTP/2 connection opens with.
	H2 Preface
	// Proxy marks a connection to a plain-HTTP upstream proxy: requests go
	// in absolute form, with ProxyLines (Proxy-Authorization) after their
	// headers.
	Proxy      bool
	ProxyLines []string
}

// Defaults of Transport's zero fields.
const (
	DefaultIdleTimeout   = 90 * time.Second
	DefaultMaxIdlePerKey = 64
)

// Transport is an http.RoundTripper over H1Conns and H2Conns it keeps for
// reuse, in pools by Key. Key and Dial must be set; the other zero fields
// mean the defaults. Its methods are safe for concurrent use.
type Transport struct {
	// Key names the pool of req's connection: only requests with the same
	// key share connections.
	Key func(req *http.Request) string
	// Dial opens a connection for req.
	Dial func(ctx context.Context, req *http.Request) (*Conn, error)
	// IdleTimeout closes a connection idle this long; zero means
	// DefaultIdleTimeout.
	IdleTimeout time.Duration
	// MaxIdlePerKey caps the idle HTTP/1.1 connections of a key; zero
	// means DefaultMaxIdlePerKey.
	MaxIdlePerKey int
	// ResponseHeaderTimeout bounds the wait for a response head once the
	// request is sent; zero means none.
	ResponseHeaderTimeout time.Duration
	// MaxResponseHeaderBytes bounds a response head; zero means 1 MiB.
	MaxResponseHeaderBytes int64
	// Buffers lends exchanges their buffers; nil means each connection
	// has its own. Give the transports of many sessions one.
	Buffers *Buffers

	mu     sync.Mutex // guards the fields below
	pools  map[string]*connPool
	closed bool
	sweep  *time.Timer // closes the HTTP/1.1 connections idle too long; made on first use
	armed  bool        // sweep will fire
}

// connPool is one key's connections.
type connPool struct {
	idle []*idleH1 // HTTP/1.1, most recently used last
	h2   []*H2Conn
}

// idleH1 is an HTTP/1.1 connection of a pool, with what its exchanges
// need: done is made once per connection, not per request.
type idleH1 struct {
	c     *H1Conn
	proxy *Conn
	done  func(reusable bool) // pools c again when its exchange ends cleanly
	since time.Time           // pooled since; guarded by Transport.mu
}

// RoundTrip sends req on a pooled or new connection. A request the server
// did not process (ErrRetryable) is sent once more on a new connection
// when it has no body or can get it again.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.roundTrip(req)
	if err != nil && errors.Is(err, ErrRetryable) && rewind(req) {
		resp, err = t.roundTrip(req)
	}
	return resp, err
}

// rewind makes req's body ready to be sent again; false when it cannot.
func rewind(req *http.Request) bool {
	if req.Body == nil || req.Body == http.NoBody {
		return true
	}
	if req.GetBody == nil {
		return false
	}
	body, err := req.GetBody()
	if err != nil {
		return false
	}
	req.Body = body
	return true
}

func (t *Transport) roundTrip(req *http.Request) (*http.Response, error) {
	key := t.Key(req)
	upgrade := Upgrading(req)
	for range 4 { // a pooled connection that turns out unusable: the next one
		h2, h1 := t.take(key, upgrade)
		switch {
		case h2 != nil:
			resp, err := t.h2RoundTrip(h2, req)
			if errors.Is(err, ErrConnUnusable) {
				continue
			}
			return resp, err
		case h1 != nil:
			resp, err := t.h1RoundTrip(h1, req)
			if errors.Is(err, ErrConnUnusable) {
				continue
			}
			return resp, err
		}
		break
	}
	conn, err := t.Dial(req.Context(), req)
	if err != nil {
		return nil, err
	}
	if conn.Proto == "h2" && upgrade {
		conn.Close()
		return nil, fmt.Errorf("%w: the origin took HTTP/2 for an upgrade (Dial must offer http/1.1 alone)", ErrUpgradeOverH2)
	}
	if conn.Proto == "h2" {
		hc, err := NewH2Conn(conn, conn.H2, uint32(min(t.MaxResponseHeaderBytes, 1<<31)), t.Buffers)
		if err != nil {
			return nil, err
		}
		t.addH2(key, hc)
		return t.h2RoundTrip(hc, req)
	}
	ic := &idleH1{c: NewH1Conn(conn, t.MaxResponseHeaderBytes, t.ResponseHeaderTimeout, t.Buffers), proxy: conn}
	ic.done = func(reusable bool) {
		if reusable {
			t.put(key, ic)
		}
	}
	return t.h1RoundTrip(ic, req)
}

// take returns a pooled connection for key: an HTTP/2 one that can take a
// stream (unless h1Only), else an idle HTTP/1.1 one; nil and nil when there
// is none.
func (t *Transport) take(key string, h1Only bool) (*H2Conn, *idleH1) {
	t.mu.Lock()
	defer t.mu.Unlock()
	p := t.pools[key]
	if p == nil {
		return nil, nil
	}
	if h1Only {
		return nil, p.takeIdle()
	}
	live := p.h2[:0]
	var pick *H2Conn
	for _, c := range p.h2 {
		if c.Closed() {
			continue
		}
		live = append(live, c)
		if pick == nil && c.CanTakeRequest() {
			pick = c
		}
	}
	clear(p.h2[len(live):])
	p.h2 = live
	if pick != nil {
		return pick, nil
	}
	return nil, p.takeIdle()
}

// takeIdle takes the most recently used idle HTTP/1.1 connection that is
// still idle; nil when there is none. The caller holds Transport.mu.
func (p *connPool) takeIdle() *idleH1 {
	for len(p.idle) > 0 {
		ic := p.idle[len(p.idle)-1]
		p.idle[len(p.idle)-1] = nil
		p.idle = p.idle[:len(p.idle)-1]
		if ic.c.Idle() {
			return ic
		}
	}
	return nil
}

// Upgrading reports whether req asks to switch protocols (a WebSocket):
// it needs an HTTP/1.1 connection of its own, as HTTP/2 has no Upgrade.
func Upgrading(req *http.Request) bool {
	return req.Header.Get("Upgrade") != "" && httpguts.HeaderValuesContainsToken(req.Header["Connection"], "upgrade")
}

// addH2 pools an HTTP/2 connection and watches it for idleness.
func (t *Transport) addH2(key string, c *H2Conn) {
	t.mu.Lock()
	p := t.pool(key)
	p.h2 = append(p.h2, c)
	t.mu.Unlock()
	idle := t.idleTimeout()
	var check func()
	check = func() {
		if c.Closed() {
			return
		}
		if c.idleFor() >= idle {
			c.Close()
			return
		}
		time.AfterFunc(idle, check)
	}
	time.AfterFunc(idle, check)
}

// pool returns key's pool, made if missing. The caller holds mu.
func (t *Transport) pool(key string) *connPool {
	if t.pools == nil {
		t.pools = make(map[string]*connPool)
	}
	p := t.pools[key]
	if p == nil {
		p = &connPool{}
		t.pools[key] = p
	}
	return p
}

func (t *Transport) idleTimeout() time.Duration {
	if t.IdleTimeout > 0 {
		return t.IdleTimeout
	}
	return DefaultIdleTimeout
}

// put pools an HTTP/1.1 connection whose exchange ended cleanly, or closes
// it when the pool is full or the transport closed. One timer per
// Transport, not one per connection, closes the connections idle too long
// (expireIdle): pooling a connection costs no timer.
func (t *Transport) put(key string, ic *idleH1) {
	max := t.MaxIdlePerKey
	if max <= 0 {
		max = DefaultMaxIdlePerKey
	}
	t.mu.Lock()
	p := t.pool(key)
	if t.closed || len(p.idle) >= max {
		t.mu.Unlock()
		ic.c.Close()
		return
	}
	ic.since = time.Now()
	p.idle = append(p.idle, ic)
	if !t.armed {
		t.armed = true
		if t.sweep == nil {
			t.sweep = time.AfterFunc(t.idleTimeout(), t.expireIdle)
		} else {
			t.sweep.Reset(t.idleTimeout())
		}
	}
	t.mu.Unlock()
}

// expireIdle closes the HTTP/1.1 connections idle for the idle timeout and
// sets the sweep for the next one to be, if any.
func (t *Transport) expireIdle() {
	idle := t.idleTimeout()
	now := time.Now()
	var expired []*idleH1
	var next time.Time // when the oldest connection left becomes too old
	t.mu.Lock()
	for _, p := range t.pools {
		// Oldest first: put appends, take pops the most recent.
		n := 0
		for n < len(p.idle) && now.Sub(p.idle[n].since) >= idle {
			n++
		}
		expired = append(expired, p.idle[:n]...)
		clear(p.idle[:n])
		p.idle = p.idle[n:]
		if len(p.idle) > 0 && (next.IsZero() || p.idle[0].since.Before(next)) {
			next = p.idle[0].since
		}
	}
	t.armed = !next.IsZero() && !t.closed
	if t.armed {
		t.sweep.Reset(next.Add(idle).Sub(now))
	}
	t.mu.Unlock()
	for _, ic := range expired {
		ic.c.Close()
	}
}

// CloseIdleConnections closes every connection not carrying a request, and
// HTTP/2 ones once their streams end; the pools are emptied.
func (t *Transport) CloseIdleConnections() {
	t.mu.Lock()
	pools := t.pools
	t.pools = nil
	if t.armed {
		t.sweep.Stop()
		t.armed = false
	}
	t.mu.Unlock()
	for _, p := range pools {
		for _, ic := range p.idle {
			ic.c.Close()
		}
		for _, c := range p.h2 {
			c.closeWhenIdle()
		}
	}
}

// Close closes the idle connections and stops pooling: connections whose
// exchange ends later are closed.
func (t *Transport) Close() {
	t.mu.Lock()
	t.closed = true
	t.mu.Unlock()
	t.CloseIdleConnections()
}

func (t *Transport) h1RoundTrip(ic *idleH1, req *http.Request) (*http.Response, error) {
	var target string
	var extra []string
	if ic.proxy.Proxy {
		target, extra = req.URL.String(), ic.proxy.ProxyLines
	}
	return ic.c.RoundTrip(req, target, extra, ic.done)
}

func (t *Transport) h2RoundTrip(c *H2Conn, req *http.Request) (*http.Response, error) {
	return c.RoundTrip(req, t.ResponseHeaderTimeout)
}
