package proxy

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"

	"github.com/elazarl/goproxy"

	"github.com/sessionproxy/sessionproxy/proxy/config"
	"github.com/sessionproxy/sessionproxy/proxy/record"
	"github.com/sessionproxy/sessionproxy/proxy/sites"
	"github.com/sessionproxy/sessionproxy/proxy/upstream"
	"github.com/sessionproxy/sessionproxy/proxy/wire"
)

// newGoproxy builds the goproxy server the proxy runs on.
func (s *Server) newGoproxy() *goproxy.ProxyHttpServer {
	gp := goproxy.NewProxyHttpServer()
	gp.Logger = discardLogger{}
	gp.Verbose = false
	gp.KeepAcceptEncoding = true // the contract: the client's Accept-Encoding goes on untouched
	// A plain-HTTP response's header lines are in the ResponseWriter's
	// header before goproxy writes it (streamWriter.handOver).
	gp.KeepDestinationHeaders = true
	gp.AllowHTTP2 = true // clients may speak HTTP/2 inside intercepted tunnels
	gp.Tr = nil          // every request goes through s.RoundTrip; nothing may fall back to goproxy's transport
	gp.ConnectDial = nil
	gp.NonproxyHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "sessionproxy: this is a forward proxy; send absolute-form requests or CONNECT", http.StatusBadRequest)
	})
	s.own = s.ownHostHandler()
	gp.OnRequest().HandleConnectFunc(s.handleConnect)
	gp.OnRequest().DoFunc(func(r *http.Request, ctx *goproxy.ProxyCtx) (*http.Request, *http.Response) {
		dropConnectionOptions(r.Header) // before goproxy drops Connection itself
		if _, ok := ctx.UserData.(*tunnel); !ok {
			// A plain-HTTP request: its own tunnel, with no affinity beyond itself.
			x := exchangeOf(r.Context())
			if x == nil { // not through serveProxy
				x = &exchange{}
			}
			ctx.UserData = &x.t
		}
		ctx.RoundTripper = goproxy.RoundTripperFunc(s.roundTrip)
		if t, _ := ctx.UserData.(*tunnel); t != nil && t.mitm != nil {
			ctx.RoundTripper = t.mitm.countRequests(s.roundTrip)
			if t.mitm.tls.Load() { // the proxy, not goproxy, ended the client's TLS
				r.URL.Scheme = "https"
			}
		}
		return r, nil
	})
	return gp
}

// serveProxy is the proxy's outermost handler: client authentication and the
// session name carried in the proxy username, before goproxy sees anything.
func (s *Server) serveProxy(w http.ResponseWriter, r *http.Request) {
	cfg := s.cfg.Load()
	info := clientInfo{addr: hostOnly(r.RemoteAddr)}
	var names []string // the request's header names as the client wrote them
	conn := connOf(r)
	if conn != nil {
		names = conn.heads.heads.take() // every request of the connection takes its own
	}
	user, pass, hasCreds := proxyBasicAuth(r.Header.Get("Proxy-Authorization"))
	switch {
	case len(cfg.Auth.Users) > 0:
		name, sessionName := config.SplitProxyUser(user)
		want, known := cfg.Auth.Users[name]
		if !hasCreds || !known || !constantTimeEqual(want, pass) {
			s.rec.AuthFailed()
			proxyAuthRequired(w)
			return
		}
		info.sessionName = sessionName
	case cfg.Auth.Challenge && !hasCreds:
		proxyAuthRequired(w)
		return
	default:
		if hasCreds {
			_, info.sessionName = config.SplitProxyUser(user)
		}
	}
	if info.sessionName != "" && !validSessionName(info.sessionName) {
		http.Error(w, "sessionproxy: invalid session name in proxy username", http.StatusBadRequest)
		return
	}
	r.Header.Del("Proxy-Authorization")
	if isOwnHost(r) {
		s.own.ServeHTTP(w, r)
		return
	}
	if r.URL.IsAbs() && r.URL.Scheme != "http" && r.URL.Scheme != "https" {
		http.Error(w, "sessionproxy: unsupported scheme "+strconv.Quote(r.URL.Scheme)+" (http and https only)", http.StatusBadRequest)
		return
	}
	if r.URL.IsAbs() {
		if err := checkHostName(r.URL.Hostname()); err != nil {
			http.Error(w, "sessionproxy: bad host in the request's URL: "+err.Error(), http.StatusBadRequest) // RFC 9110 4.2.1: reject it
			return
		}
	}
	if err := s.checkTargetHost(r.Context(), targetAddr(r), r.Method == http.MethodConnect); err != nil {
		s.rec.Finish(record.Event{Outcome: record.OutcomeRejected, Status: http.StatusForbidden})
		http.Error(w, "sessionproxy: refused: "+err.Error(), http.StatusForbidden)
		return
	}
	x := &exchange{Context: r.Context(), client: info}
	if r.Method != http.MethodConnect {
		// The order in which a plain-HTTP request goes on (inside tunnels,
		// identify takes it from the tunnel's reader), whatever the
		// configured mode: a session may have its own.
		x.order, x.hasOrder = wire.Order{Names: withCookieSlot(names, r.Header.Get("User-Agent"), s.beforeCookie)}, true
	}
	r = r.WithContext(x) // one copy of r for all
	if r.Method == http.MethodConnect {
		if err := checkConnectTarget(r.URL.Host); err != nil {
			http.Error(w, "sessionproxy: bad CONNECT target: "+err.Error(), http.StatusBadRequest)
			return
		}
		hook := &connectHook{}
		r = r.WithContext(context.WithValue(r.Context(), connectHookKey{}, hook))
		w = tunnelWriter{ResponseWriter: w, s: s, hook: hook, host: r.URL.Host}
	} else {
		x.t.client = info
		x.w.ResponseWriter = w
		x.w.interim = r.ProtoAtLeast(1, 1) && !expectsContinue(r)
		if conn != nil {
			x.w.order = &conn.respHeads
		}
		x.t.w = &x.w
		w = &x.w
	}
	s.gp.ServeHTTP(w, r)
}

// exchange is what one request carries through goproxy, in one allocation:
// its context (the request's own, answering for the client and the header
// order too) and, for plain HTTP, its own tunnel and the writer of its
// response.
type exchange struct {
	context.Context
	client   clientInfo
	order    wire.Order // the client's header order, when hasOrder
	hasOrder bool
	t        tunnel       // plain HTTP: its own, with no affinity beyond the request
	w        streamWriter // plain HTTP: what goproxy writes the response through
}

// exchangeKey is the context key of the request's *exchange.
type exchangeKey struct{}

func (x *exchange) Value(key any) any {
	switch key.(type) {
	case exchangeKey:
		return x
	case wire.OrderKey:
		if x.hasOrder {
			return &x.order
		}
		return nil
	case wire.InterimKey:
		if x.t.w != nil {
			return &x.w
		}
		return nil
	}
	return x.Context.Value(key)
}

// exchangeOf returns the exchange ctx belongs to, nil for none.
func exchangeOf(ctx context.Context) *exchange {
	x, _ := ctx.Value(exchangeKey{}).(*exchange)
	return x
}

func proxyAuthRequired(w http.ResponseWriter) {
	w.Header().Set("Proxy-Authenticate", `Basic realm="sessionproxy"`)
	http.Error(w, "sessionproxy: proxy authentication required", http.StatusProxyAuthRequired)
}

// handleConnect decides what a CONNECT tunnel becomes: intercepted (MITM),
// so that sessions, cookies and rules apply to every request inside it, or a
// plain tunnel through the session's upstream.
func (s *Server) handleConnect(host string, ctx *goproxy.ProxyCtx) (*goproxy.ConnectAction, string) {
	var info clientInfo
	if x := exchangeOf(ctx.Req.Context()); x != nil {
		info = x.client
	}
	t := &tunnel{client: info, host: host}
	ctx.UserData = t
	ctx.RoundTripper = goproxy.RoundTripperFunc(s.roundTrip)
	cfg := s.cfg.Load()
	if !cfg.MITM.Enabled || cfg.MITM.SkipHost(host) {
		return &goproxy.ConnectAction{Action: goproxy.ConnectHijack, Hijack: s.plainTunnel}, host
	}
	if ctx.Req.ProtoMajor == 1 { // hijacked: the tunnel is the client's connection
		t.out = connOf(ctx.Req)
		if hook, ok := ctx.Req.Context().Value(connectHookKey{}).(*connectHook); ok {
			hook.t = t // the hijack wraps the connection (tunnelconn.go)
		}
	}
	return &goproxy.ConnectAction{Action: goproxy.ConnectMitm, TLSConfig: s.tlsConfigForHost}, host
}

// plainTunnel relays a CONNECT tunnel without interception, through the
// session's upstream. The session is chosen as for any request (header on
// the CONNECT, proxy username, affinity, pool); nothing inside the tunnel can
// be seen, so only a failure to reach the target is judged, by the rules'
// error conditions as for any request, and retried on another session
// before the client is answered when they say so and the tunnel is not
// pinned to a named session.
func (s *Server) plainTunnel(req *http.Request, client net.Conn, ctx *goproxy.ProxyCtx) {
	defer client.Close()
	t := ctx.UserData.(*tunnel)
	cfg := s.cfg.Load()
	// Until it relays, the tunnel is a request in flight: Shutdown waits
	// for its dial and the mark a failed one gives, before the pool's last
	// save. Relaying, its connections are closed with the others.
	if !s.inflight.enter() {
		resp := textResponse(req, http.StatusServiceUnavailable, "sessionproxy: shutting down")
		s.rec.Finish(record.Event{Outcome: record.OutcomeRejected, Status: resp.StatusCode})
		writeRawResponse(client, req, resp)
		return
	}
	inFlight := true
	defer func() {
		if inFlight {
			s.inflight.leave()
		}
	}()
	name, err := s.sessionName(req, t, cfg)
	var tried []string
	for attempt := 0; err == nil; attempt++ {
		var sel selection
		if sel, err = s.pick(req.Context(), cfg, name, s.poolSite(sites.Of(t.host)), req, t, tried); err != nil {
			break
		}
		if attempt > 0 {
			s.rec.Retried()
		}
		upConn, derr := upstream.Dial(req.Context(), sel.sess.ProxyURL(), "tcp", t.host, s.tlsOpts)
		if derr == nil {
			held := s.conns.hold(upConn)
			inFlight = false
			s.inflight.leave()
			if !held { // Shutdown's drain timed out during the dial: it is over
				sel.done()
				return
			}
			defer s.conns.release(upConn)
			s.relay(client, upConn, sel, cfg, attempt)
			return
		}
		sel.done()
		if targetRefused(derr) {
			s.rec.Finish(record.Event{Outcome: record.OutcomeRejected, Status: http.StatusForbidden, Retries: attempt})
			writeRawResponse(client, req, refusedTarget(req, derr))
			return
		}
		uerr := upstream.Classify(derr, sel.sess.ProxyURL(), t.host)
		s.rec.UpstreamFailed(uerr)
		v := failureVerdict(cfg, hostOnly(t.host), uerr.Kind)
		s.apply(sel.sess, v, hostOnly(t.host), 0, nil)
		if v.Retry && !sel.pinned && attempt < cfg.Retry.MaxAttempts && req.Context().Err() == nil {
			tried = append(tried, sel.sess.ID())
			continue
		}
		resp := s.failureResponse(req, uerr)
		s.decorate(resp, cfg, sel.sess, v, attempt)
		s.rec.Finish(record.Event{Outcome: record.OutcomeError, Rule: verdictRule(v), Status: resp.StatusCode, Retries: attempt})
		writeRawResponse(client, req, resp)
		return
	}
	resp := s.selectErrorResponse(req, err)
	s.rec.Finish(record.Event{Outcome: record.OutcomeRejected, Status: resp.StatusCode})
	writeRawResponse(client, req, resp)
}

// oneLine is s as net/http's server writes a header value: CR and LF as
// spaces, so that s ends no line.
func oneLine(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '\r' || r == '\n' {
			return ' '
		}
		return r
	}, s)
}

// relay answers a plain tunnel's CONNECT and copies both ways between the
// client and the target until either side ends or the tunnel idles out.
func (s *Server) relay(client, upConn net.Conn, sel selection, cfg *config.Config, retries int) {
	defer sel.done()
	defer upConn.Close()
	s.rec.Finish(record.Event{Outcome: record.OutcomeTunnel, Status: http.StatusOK, Retries: retries})
	// The id as net/http's server writes a header value: a line break in
	// it (an id another program put in a shared pool) ends no line.
	fmt.Fprintf(client, "HTTP/1.1 200 Connection established\r\n%s: %s\r\n\r\n", cfg.SessionHeader, oneLine(sel.sess.ID()))
	idle := &idleWatch{}
	idle.watch(cfg.IdleTimeout, func() { client.Close(); upConn.Close() })
	defer idle.stop()
	done := make(chan struct{})
	go func() {
		io.Copy(upConn, usedReader{client, idle})
		if cw, ok := upConn.(interface{ CloseWrite() error }); ok {
			cw.CloseWrite()
		} else {
			upConn.Close()
		}
		close(done)
	}()
	io.Copy(client, usedReader{upConn, idle})
	client.Close()
	<-done
}

// writeRawResponse writes resp on a hijacked connection.
func writeRawResponse(w io.Writer, req *http.Request, resp *http.Response) {
	resp.ProtoMajor, resp.ProtoMinor, resp.Proto = 1, 1, "HTTP/1.1"
	resp.Close = true
	resp.Write(w)
	resp.Body.Close()
}

// discardLogger silences goproxy's own printf logging: the proxy logs with
// slog, and goproxy's warnings can carry URLs with credentials.
type discardLogger struct{}

func (discardLogger) Printf(string, ...any) {}
