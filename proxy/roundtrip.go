package proxy

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/textproto"
	"strconv"
	"strings"
	"time"

	"github.com/elazarl/goproxy"

	"github.com/sessionproxy/sessionproxy/proxy/config"
	"github.com/sessionproxy/sessionproxy/proxy/record"
	"github.com/sessionproxy/sessionproxy/proxy/rules"
	"github.com/sessionproxy/sessionproxy/proxy/sites"
	"github.com/sessionproxy/sessionproxy/proxy/upstream"
	"github.com/sessionproxy/sessionproxy/proxy/wire"
	"github.com/sessionproxy/sessionproxy/sessionpool"
)

const (
	// maxReplayBody is the largest request body the proxy buffers so that a
	// blocked request can be sent again on another session.
	maxReplayBody = 1 << 20

	headerRule    = "X-Session-Rule"
	headerRetries = "X-Session-Retries"
)

// roundTrip sends one client request as one of the pool's sessions. It is
// goproxy's RoundTripper for every request, plain or inside an intercepted
// tunnel. It never returns an error: failures become plain-text responses,
// because goproxy answers an error inside a tunnel by closing the connection.
func (s *Server) roundTrip(req *http.Request, ctx *goproxy.ProxyCtx) (*http.Response, error) {
	t, _ := ctx.UserData.(*tunnel)
	if t == nil {
		t = &tunnel{}
	}
	cfg := s.cfg.Load()
	if !s.inflight.enter() {
		t.skipOrder(req)
		resp := textResponse(req, http.StatusServiceUnavailable, "sessionproxy: shutting down")
		resp.Close = true
		s.rec.Finish(record.Event{Outcome: record.OutcomeRejected, Status: resp.StatusCode})
		return resp, nil
	}
	if t.host != "" {
		// Inside a tunnel each request names its own target (its Host),
		// which need not be the CONNECT's: checked as a plain request's,
		// since through an upstream no dialer checks it.
		if err := checkHostName(req.URL.Hostname()); err != nil {
			s.inflight.leave()
			t.skipOrder(req)
			return textResponse(req, http.StatusBadRequest, "sessionproxy: bad host in the request: "+err.Error()), nil
		}
		if err := s.checkTargetHost(req.Context(), targetAddr(req), false); err != nil {
			s.inflight.leave()
			t.skipOrder(req)
			resp := refusedTarget(req, err)
			s.rec.Finish(record.Event{Outcome: record.OutcomeRejected, Status: resp.StatusCode})
			return resp, nil
		}
	}
	if t.out != nil && req.ProtoMajor == 1 {
		// HTTP/1.x inside the tunnel: a response's writes (goproxy
		// writes its head and body apart) are gathered until the tunnel
		// turns to read the next request. Not for HTTP/2, whose reader
		// never turns: every write would wait out coalesceDelay.
		t.out.enable()
	}
	req = identify(req, t, s.beforeCookie)
	resp, end := s.attempts(req, t, cfg)
	resp.Header = nothingAdded(resp.Header)
	if resp.StatusCode == http.StatusSwitchingProtocols && t.out != nil {
		t.out.disable() // a WebSocket's messages go out as they come
	}
	if resp.StatusCode == http.StatusSwitchingProtocols || resp.Body == nil {
		// A WebSocket's body is the connection itself (an io.ReadWriter):
		// it must reach goproxy unwrapped, and it is not a request to drain.
		s.finish(end, req, nil) // its verdict before the drain may end: in the last save
		s.inflight.leave()
		return resp, nil
	}
	if end.bodies != nil && resp.Body != http.NoBody {
		resp.Body = &capturingBody{ReadCloser: resp.Body, c: &end.bodies.resp}
	}
	s.watchBody(req, t, resp, end)
	if t.w != nil {
		return t.w.handOver(resp, end.names), nil
	}
	if t.mitm != nil && end.names != nil {
		if req.ProtoMajor == 1 {
			t.mitm.respHeads.expect(end.names) // goproxy writes the response next
		} else if st, ok := req.Context().Value(wire.InterimKey{}).(namesTaker); ok {
			st.takeNames(end.names) // an HTTP/2 client's stream: serveTunnelStream writes the response next
		}
	}
	return resp, nil
}

// namesTaker is what writes a response after roundTrip has returned it
// and wants the names of its head as the origin sent them
// (wire.ResponseNames) for their order: an HTTP/2 client's stream
// (clientStream), found where its interim responses go.
type namesTaker interface{ takeNames(names []string) }

// nothingAdded returns h, or a copy of it naming Content-Type and Date with
// no value where h lacks them. The servers that write the response to the
// client (goproxy's, for plain HTTP and HTTP/2 in tunnels) add a sniffed
// Content-Type and the current Date only when the name is absent, and write
// nothing for a name with no values. A copy, so that the request log keeps
// what the origin sent.
func nothingAdded(h http.Header) http.Header {
	var out http.Header
	for _, name := range [...]string{"Content-Type", "Date"} {
		if _, ok := h[name]; ok {
			continue
		}
		if out == nil {
			out = h.Clone()
			if out == nil {
				out = make(http.Header, 2)
			}
		}
		out[name] = nil
	}
	if out == nil {
		return h
	}
	return out
}

// call is one client request across its attempts.
type call struct {
	req     *http.Request
	t       *tunnel
	cfg     *config.Config
	name    string     // the session the client asked for, "" for any
	replay  replayable // how the request can be sent again
	cookies []string   // the client's own Cookie headers
	host    string     // the request's host, without its port
	site    string     // the request's site (sites.Of(host))
	start   time.Time
	tried   []string        // the sessions that already failed the request
	log     *record.Request // what the request log keeps of it; nil when it keeps none
	end     *ending         // how the request ends, carried out when its body has
	ending  ending          // what end points to: one allocation for both
}

// attempted records one attempt of c: counted by its outcome, unless it has
// none (the attempt that answers the client: Server.finish counts it when
// its body ends) or it was canceled, and noted in the request log.
func (s *Server) attempted(c *call, a record.Attempt) {
	if a.Outcome != "" && a.Outcome != record.OutcomeCanceled {
		s.rec.Attempt(a.Outcome)
	}
	if c.log != nil {
		c.log.Attempts = append(c.log.Attempts, a)
	}
}

// answered notes in the request log the session that answered and the
// response the client gets, and returns the log's entry for the event.
func (c *call) answered(sess *sessionpool.Session, resp *http.Response) *record.Request {
	if c.log == nil {
		return nil
	}
	if sess != nil {
		c.log.Session = sess.ID()
	}
	// The maps themselves, not copies: the log gets them when the request
	// has ended (Server.finish), and nothing writes them after that.
	c.log.RequestHeader = c.req.Header
	c.log.ResponseHeader = resp.Header
	return c.log
}

// attempts runs the request on one session and, while the rules say retry
// and the request can be repeated, on fresh ones. It returns the response the
// client gets and how the request ends: every way a request ends passes here
// once and its event is kept there, except a verdict that waits for the body,
// which decideWhileStreaming keeps when it comes. The caller records the end
// (Server.finish) once the body has ended: a body cut off by the origin or
// the upstream still makes the request an upstream failure.
func (s *Server) attempts(req *http.Request, t *tunnel, cfg *config.Config) (*http.Response, *ending) {
	c := &call{req: req, t: t, cfg: cfg, host: hostOnly(req.URL.Host), cookies: req.Header["Cookie"], start: time.Now()}
	c.end = &c.ending
	c.site = sites.Of(c.host)
	c.end.site = s.siteLabel(c.host, c.site)
	if s.rec.LogsRequests() {
		logURL := req.URL.String()
		if req.URL.User != nil { // a password in the URL stays out of the log
			logURL = upstream.Redact(logURL)
		}
		c.log = &record.Request{Time: c.start, Client: t.client.addr, Method: req.Method, URL: logURL,
			Host: c.host, Path: req.URL.Path, Proto: req.Proto, Site: c.site}
		if cfg.RequestLog.Bodies {
			c.end.bodies = &loggedBodies{}
			if req.Body != nil && req.Body != http.NoBody {
				req.Body = &capturingBody{ReadCloser: req.Body, c: &c.end.bodies.req}
			}
		}
	}
	resp, ev := s.attemptAll(c)
	if ev.Outcome != "" {
		ev.Duration = time.Since(c.start)
		c.end.setVerdict(ev)
	}
	return resp, c.end
}

// attemptAll is attempts without the recording: it returns the response and
// the event that ends the request, whose Outcome is empty when the verdict
// is still to come.
func (s *Server) attemptAll(c *call) (*http.Response, record.Event) {
	var err error
	if c.name, err = s.sessionName(c.req, c.t, c.cfg); err != nil {
		return c.rejected(textResponse(c.req, http.StatusBadRequest, "sessionproxy: "+err.Error()), 0)
	}
	if c.replay, err = s.prepareBody(c.req, c.t, c.cfg); err != nil {
		return c.rejected(textResponse(c.req, http.StatusBadRequest, "sessionproxy: read request body: "+err.Error()), 0)
	}
	for attempt := 0; ; attempt++ {
		resp, ev, retry := s.attempt(c, attempt)
		if !retry {
			return resp, ev
		}
	}
}

// rejected is the end of a request the proxy answered itself.
func (c *call) rejected(resp *http.Response, attempt int) (*http.Response, record.Event) {
	return resp, record.Event{Outcome: record.OutcomeRejected, Status: resp.StatusCode, Retries: attempt, Request: c.answered(nil, resp)}
}

// attempt sends the request once, as one session. It returns retry when the
// rules ask for another session and the request may have one; otherwise the
// response the client gets and the event that ends the request.
func (s *Server) attempt(c *call, attempt int) (resp *http.Response, ev record.Event, retry bool) {
	req, cfg := c.req, c.cfg
	c.end.names = nil
	sel, err := s.pick(req.Context(), cfg, c.name, s.poolSite(c.site), req, c.t, c.tried)
	if err != nil && req.Context().Err() != nil {
		// The client went away while the request waited for a session
		// (pool.exclusive): canceled, as a client gone while waiting for
		// its pacing turn is, not a failure of the store.
		resp = textResponse(req, http.StatusBadGateway, "sessionproxy: client closed the request")
		return resp, record.Event{Outcome: record.OutcomeCanceled, Retries: attempt, Request: c.answered(nil, resp)}, false
	}
	if err != nil {
		resp, ev = c.rejected(s.selectErrorResponse(req, err), attempt)
		return resp, ev, false
	}
	sess := sel.sess
	canRetry := !sel.pinned && attempt < cfg.Retry.MaxAttempts && c.replay.ok && req.Context().Err() == nil
	if attempt > 0 {
		s.rec.Retried()
		if c.replay.body != nil {
			req.Body = io.NopCloser(bytes.NewReader(c.replay.body))
		}
	}
	release, refused, ev := s.pace(c, sel, attempt)
	if refused != nil {
		sel.done()
		return refused, ev, false
	}
	if release == nil { // sess is paused at the site: another session goes
		sel.done()
		c.tried = append(c.tried, sess.ID())
		return nil, record.Event{}, true
	}
	if sel.free != nil {
		paced := release
		release = func() { paced(); sel.free() }
	}
	setCookies(req, sess, cfg.Cookies, c.cookies) // after the wait: the jar as it is now

	resp, err = s.send(req, sess)
	if err == nil {
		c.end.names = wire.ResponseNames(resp) // before anything wraps its body
	}
	releaseWhenDone(resp, err, release)
	if err != nil && req.Context().Err() != nil {
		// The client went away: nobody is waiting, and the session did
		// nothing wrong.
		resp = textResponse(req, http.StatusBadGateway, "sessionproxy: client closed the request")
		s.attempted(c, record.Attempt{Session: sess.ID(), Outcome: record.OutcomeCanceled})
		return resp, record.Event{Outcome: record.OutcomeCanceled, Retries: attempt, Request: c.answered(sess, resp)}, false
	}
	if err != nil && targetRefused(err) {
		// The proxy's own refusal of the address (targets.go): not the
		// session's failure, and no other session may go there either.
		resp, ev = c.rejected(refusedTarget(req, err), attempt)
		return resp, ev, false
	}
	if err != nil {
		return s.failed(c, sess, err, attempt, canRetry)
	}

	s.pauseOnRetryAfter(c.host, sess, resp)
	o := &rules.Outcome{Host: c.host, Status: resp.StatusCode, Header: resp.Header}
	if cfg.Rules.NeedsBody(c.host, resp.StatusCode, resp.Header) {
		// An event stream is never held for a rule to read its start:
		// its events may come one a minute, and never add up to
		// body_limit. Only its head can make it retried.
		events := eventStream(resp.Header.Get("Content-Type"))
		if !cfg.Rules.MayRetry(c.host, resp.StatusCode, resp.Header) ||
			((!canRetry || events) && !cfg.Rules.HeadDecides(c.host, resp.StatusCode, resp.Header)) {
			// No rule with retry can match (a rule without retry never
			// delays the response), or no retry can come of it and
			// only a body rule can match: the body streams to the
			// client now and the verdict follows once its start has
			// passed, too late for X-Session-Rule
			// (decideWhileStreaming logs a match).
			s.attempted(c, record.Attempt{Session: sess.ID(), Status: resp.StatusCode}) // its verdict comes with the body
			s.decideWhileStreaming(resp, c, sess, o, attempt)
			s.remember(cfg, req, c.t, sel)
			s.decorate(resp, cfg, sess, rules.Verdict{}, attempt)
			return resp, record.Event{}, false
		}
		if !events {
			o.Body = rules.HoldPrefix(resp, cfg.BodyLimit)
		}
	}
	v := cfg.Rules.Decide(o)
	if v.Retry && canRetry {
		s.apply(sess, v, c.host, resp.StatusCode, resp)
		s.attempted(c, record.Attempt{Session: sess.ID(), Status: resp.StatusCode, Outcome: record.Outcome(v.Action), Rule: verdictRule(v)})
		discard(resp.Body)
		c.tried = append(c.tried, sess.ID())
		return nil, record.Event{}, true
	}
	s.attempted(c, record.Attempt{Session: sess.ID(), Status: resp.StatusCode}) // counted when the body ends (Server.finish)
	c.end.judge(sess, v, c.host, resp.StatusCode, cookieCarrier(resp))
	s.remember(cfg, req, c.t, sel)
	s.decorate(resp, cfg, sess, v, attempt)
	return resp, record.Event{Outcome: record.Outcome(v.Action), Rule: verdictRule(v), Status: resp.StatusCode, Retries: attempt, Request: c.answered(sess, resp)}, false
}

// failed ends an attempt that got no response: the rules judge the
// failure (a session's fault unless a rule says otherwise), and the request
// is retried on another session or answered with the failure.
func (s *Server) failed(c *call, sess *sessionpool.Session, err error, attempt int, canRetry bool) (*http.Response, record.Event, bool) {
	uerr := upstream.Classify(err, sess.ProxyURL(), c.req.URL.Host)
	s.rec.UpstreamFailed(uerr)
	v := failureVerdict(c.cfg, c.host, uerr.Kind)
	s.apply(sess, v, c.host, 0, nil)
	s.attempted(c, record.Attempt{Session: sess.ID(), Outcome: record.OutcomeError, Rule: verdictRule(v), Error: uerr.Error()})
	if v.Retry && canRetry {
		c.tried = append(c.tried, sess.ID())
		return nil, record.Event{}, true
	}
	resp := s.failureResponse(c.req, uerr)
	s.decorate(resp, c.cfg, sess, v, attempt)
	return resp, record.Event{Outcome: record.OutcomeError, Rule: verdictRule(v), Status: resp.StatusCode, Retries: attempt, Request: c.answered(sess, resp)}, false
}

// send is one round trip as sess, through its transport.
func (s *Server) send(req *http.Request, sess *sessionpool.Session) (*http.Response, error) {
	tr, err := s.transports.Get(refOf(sess), sess.ProxyURL(), fingerprintOf(sess, s.cfg.Load()))
	if err != nil {
		return nil, err
	}
	resp, err := tr.RoundTrip(req)
	if err == nil && resp.StatusCode == http.StatusSwitchingProtocols && !webSocketHandshake(req.Header) {
		// Only a WebSocket's switch can be relayed (goproxy's); any other
		// would leave the client's connection waiting on bytes that never
		// come, so the origin's is closed and the switch is its failure.
		resp.Body.Close()
		return nil, fmt.Errorf("%w: the origin switched protocols (to %q) on a request that was no WebSocket handshake", errUnrelayable, resp.Header.Get("Upgrade"))
	}
	if err == nil && resp.StatusCode == http.StatusProxyAuthRequired && req.URL.Scheme == "http" &&
		(strings.HasPrefix(sess.ProxyURL(), "http://") || strings.HasPrefix(sess.ProxyURL(), "https://")) {
		// Over plain HTTP an http(s) upstream that refuses the session's
		// credentials answers 407 itself; that is the upstream failing,
		// not the origin answering. Through a tunnel (https, SOCKS5) the
		// 407 can only be the origin's.
		discard(resp.Body)
		return nil, fmt.Errorf("%w: %s", upstream.ErrConnectRefused, resp.Status)
	}
	return resp, err
}

// errUnrelayable: the origin answered in a way the proxy cannot pass on.
var errUnrelayable = errors.New("proxy: unrelayable response")

// decideWhileStreaming lets resp's body stream to the client while a copy of
// its start is kept until body_limit bytes of it have decoded; the rules decide the session's fate
// when that copy is complete (or the body ends or is closed), and the
// verdict is carried out when the body ends (Server.finish).
func (s *Server) decideWhileStreaming(resp *http.Response, c *call, sess *sessionpool.Session, o *rules.Outcome, attempt int) {
	cfg, start := c.cfg, c.start
	limit := cfg.BodyLimit
	cookies := cookieCarrier(resp)
	decide := func(body []byte) {
		o.Body = body
		v := cfg.Rules.Decide(o)
		c.end.judge(sess, v, o.Host, o.Status, cookies)
		if v.Rule != nil {
			s.log.Info("rule matched after the headers left", "session", sess.ID(), "rule", v.Rule.Name,
				"action", string(v.Action), "status", o.Status, "host", o.Host)
		}
		var logged *record.Request
		if c.log != nil {
			logged = c.answered(sess, resp)
		}
		c.end.setVerdict(record.Event{Outcome: record.Outcome(v.Action), Rule: verdictRule(v), Status: o.Status, Retries: attempt, Duration: time.Since(start), Request: logged})
	}
	if bodiless(resp) {
		decide([]byte{}) // nothing to wait for: watchBody ends the request at once
		return
	}
	resp.Body = rules.InspectBody(resp.Body, o.Header, limit, decide)
}

// replayable is a request body kept so the request can be sent again.
type replayable struct {
	ok   bool   // the request can be repeated safely
	body []byte // its buffered body, nil when it has none
}

// prepareBody decides whether the request may be retried and, when retries
// are possible, buffers a body of at most maxReplayBody. A larger body
// streams on untouched and the request is never retried.
func (s *Server) prepareBody(req *http.Request, t *tunnel, cfg *config.Config) (replayable, error) {
	if !cfg.Rules.HasRetryRules() || cfg.Retry.MaxAttempts == 0 {
		return replayable{}, nil
	}
	if req.Body == nil || req.Body == http.NoBody || req.ContentLength == 0 {
		return replayable{ok: true}, nil // nothing to resend: repeatable whatever the method
	}
	if req.ContentLength > maxReplayBody {
		return replayable{}, nil
	}
	buf, err := readStalling(req, t, cfg.IdleTimeout)
	if err != nil {
		return replayable{}, err
	}
	if len(buf) > maxReplayBody {
		// Too big to hold: send what was read, then the rest, once.
		req.Body = struct {
			io.Reader
			io.Closer
		}{io.MultiReader(bytes.NewReader(buf), req.Body), req.Body}
		return replayable{}, nil
	}
	req.Body.Close()
	req.Body = io.NopCloser(bytes.NewReader(buf))
	req.ContentLength = int64(len(buf))
	return replayable{ok: true, body: buf}, nil
}

// readStalling reads up to maxReplayBody+1 bytes of req's body. Nothing
// has gone to the origin yet, so no upstream timeout runs: a client that
// sends no byte of it for idle has its connection closed (over HTTP/2, its
// stream), as an idle connection would be, and the read fails.
func readStalling(req *http.Request, t *tunnel, idle time.Duration) ([]byte, error) {
	abort := req.Body.Close // HTTP/2: closing the stream's body ends a pending read
	if req.ProtoMajor == 1 {
		switch c := connOf(req); {
		case c != nil:
			abort = c.Close
		case t.mitm != nil:
			abort = t.mitm.Close
		}
	}
	r := &stallWatch{r: io.LimitReader(req.Body, maxReplayBody+1), idle: idle}
	r.timer = time.AfterFunc(idle, func() { abort() })
	defer r.timer.Stop()
	return io.ReadAll(r)
}

// stallWatch is a reader whose timer is pushed back by idle at every read
// that brings bytes.
type stallWatch struct {
	r     io.Reader
	idle  time.Duration
	timer *time.Timer
}

func (w *stallWatch) Read(p []byte) (int, error) {
	n, err := w.r.Read(p)
	if n > 0 {
		w.timer.Reset(w.idle)
	}
	return n, err
}

// cookieCarrier returns resp when it carries cookies for the session to
// store when its body has ended, nil when it has none. Session.Commit reads
// only its Set-Cookie lines and its request's URL, which nothing changes
// once the response is on its way; the client reads the body meanwhile.
func cookieCarrier(resp *http.Response) *http.Response {
	if _, ok := resp.Header["Set-Cookie"]; !ok {
		return nil
	}
	return resp
}

// decorate adds the headers that tell the client which session answered and
// how.
func (s *Server) decorate(resp *http.Response, cfg *config.Config, sess *sessionpool.Session, v rules.Verdict, attempt int) {
	if resp.Header == nil {
		resp.Header = make(http.Header)
	}
	values := []string{sess.ID(), strconv.Itoa(attempt)} // one array for both lines
	resp.Header[textproto.CanonicalMIMEHeaderKey(cfg.SessionHeader)] = values[:1:1]
	if v.Rule != nil {
		resp.Header.Set(headerRule, v.Rule.Name)
	}
	resp.Header[headerRetries] = values[1:]
}

// setCookies puts the session's cookies for the request's URL into its Cookie
// header according to mode: "merge" adds those the client did not send
// itself, "session" replaces the client's, "client" leaves them alone.
// clientCookies is the client's own Cookie header, kept across attempts.
func setCookies(req *http.Request, sess *sessionpool.Session, mode config.CookieMode, clientCookies []string) {
	switch mode {
	case config.CookiesClient:
		return
	case config.CookiesSession:
		if c := sess.CookieString(req.URL); c != "" {
			req.Header["Cookie"] = []string{c}
		} else {
			delete(req.Header, "Cookie")
		}
		return
	}
	if len(clientCookies) == 0 {
		if c := sess.CookieString(req.URL); c != "" {
			req.Header["Cookie"] = []string{c}
		} else {
			delete(req.Header, "Cookie")
		}
		return
	}
	own := sess.Cookies(req.URL)
	if len(own) == 0 {
		req.Header["Cookie"] = clientCookies
		return
	}
	// The client's lines stay as they were (a client that sent two
	// sends two); the session's cookies follow on its last one.
	last := len(clientCookies) - 1
	var b strings.Builder
	sep := "" // an empty last line takes the session's cookies alone
	if strings.TrimSpace(clientCookies[last]) != "" {
		b.WriteString(clientCookies[last])
		sep = "; "
	}
	for _, c := range own {
		if clientHasCookie(clientCookies, c.Name) {
			continue
		}
		b.WriteString(sep)
		sep = "; "
		b.WriteString(c.Name)
		b.WriteByte('=')
		b.WriteString(c.Value)
	}
	lines := make([]string, len(clientCookies))
	copy(lines, clientCookies[:last])
	lines[last] = b.String()
	req.Header["Cookie"] = lines
}

// clientHasCookie reports whether the Cookie header values name a cookie.
func clientHasCookie(headers []string, name string) bool {
	for _, h := range headers {
		for part := range strings.SplitSeq(h, ";") {
			n, _, _ := strings.Cut(part, "=")
			if strings.TrimSpace(n) == name {
				return true
			}
		}
	}
	return false
}

// failureResponse is the 502 a client gets when no response came, whatever
// the kind (the contract's one status; a timeout says so in the line): one
// line naming the failing hop, never its credentials.
func (s *Server) failureResponse(req *http.Request, uerr *upstream.Error) *http.Response {
	return textResponse(req, http.StatusBadGateway, "sessionproxy: "+uerr.Error())
}

// selectErrorResponse answers a request for which no session could be had.
func (s *Server) selectErrorResponse(req *http.Request, err error) *http.Response {
	switch {
	case errors.Is(err, errBadSessionName):
		return textResponse(req, http.StatusBadRequest, "sessionproxy: "+err.Error())
	case errors.Is(err, errBusy):
		return textResponse(req, http.StatusTooManyRequests, "sessionproxy: "+err.Error())
	case errors.Is(err, sessionpool.ErrInvalidOptions):
		// A site the store cannot name (a host such as "a..b").
		return textResponse(req, http.StatusBadRequest, "sessionproxy: "+err.Error())
	case errors.Is(err, sessionpool.ErrPoolClosed):
		return textResponse(req, http.StatusServiceUnavailable, "sessionproxy: shutting down")
	case errors.Is(err, sessionpool.ErrStoreUnavailable):
		// One line naming the store (its URL without the password) and the
		// cause; no local fallback, which would split identities.
		return textResponse(req, http.StatusServiceUnavailable, "sessionproxy: "+upstream.OneLine(err.Error()))
	}
	return textResponse(req, http.StatusServiceUnavailable, "sessionproxy: session store: "+err.Error())
}

// discard closes a response that will not be used, without reading what
// has not come: an origin that sends a block's head and stalls its body (a
// tarpit) would hold the retry for as long. The proxy's own transport keeps
// the connection when the rest has arrived already.
func discard(body io.ReadCloser) {
	body.Close()
}

// pace waits for the turn of an attempt as sel's session at the request's site. It
// returns the release to call once the response is done, or else the
// response the client gets instead, with the event that ends the request:
// a 429 naming the wait when it is longer than pacing.max_wait (with
// Retry-After), or the client gone.
//
// An unpinned session paused at the site (Retry-After) is not waited for
// while the request may have another session: pace then returns neither.
func (s *Server) pace(c *call, sel selection, attempt int) (func(), *http.Response, record.Event) {
	sess := sel.sess
	key := paceKey(sess) // made once: it is a string built per request
	if sess.Site() != "" {
		// A pause kept with the session (a restart, another instance) holds
		// here too.
		if until := sess.PausedUntil(); !until.IsZero() {
			s.pacer.Pause(c.host, key, until)
		}
	}
	paused := !s.pacer.PausedUntil(c.host, key).IsZero()
	if !sel.pinned && attempt < c.cfg.Retry.MaxAttempts && paused {
		return nil, nil, record.Event{}
	}
	ctx := c.req.Context()
	if r := s.pacer.Match(c.host); r.Delay > 0 || r.Concurrency > 0 || paused {
		// A wait may come: a client in a tunnel that goes away meanwhile
		// ends it, as one over plain HTTP does.
		var stop func()
		ctx, stop = c.t.watchClient(ctx)
		defer stop()
		if s.paceHook != nil {
			s.paceHook(ctx)
		}
	}
	start := time.Now()
	release, err := s.pacer.Wait(ctx, c.host, key)
	if err == nil && s.sites.Shared() {
		var shared func()
		if shared, err = s.paceShared(ctx, c.host, c.site, key, c.cfg.Pacing.MaxWait, start); err == nil {
			local := release
			release = func() { local(); shared() }
		} else {
			release()
		}
	}
	if err == nil {
		return release, nil, record.Event{}
	}
	if errors.Is(err, sessionpool.ErrStoreUnavailable) {
		resp, ev := c.rejected(s.selectErrorResponse(c.req, err), attempt)
		return nil, resp, ev
	}
	var we *sites.WaitError
	if !errors.As(err, &we) {
		resp := textResponse(c.req, http.StatusBadGateway, "sessionproxy: client closed the request")
		return nil, resp, record.Event{Outcome: record.OutcomeCanceled, Retries: attempt, Request: c.answered(sess, resp)}
	}
	secs := strconv.FormatInt(int64(math.Ceil(we.Wait.Seconds())), 10)
	resp := textResponse(c.req, http.StatusTooManyRequests, fmt.Sprintf(
		"sessionproxy: %s: a wait of %ss for this session's turn is longer than pacing.max_wait %v", we.Site, secs, we.MaxWait))
	resp.Header.Set("Retry-After", secs)
	s.decorate(resp, c.cfg, sess, rules.Verdict{}, attempt)
	resp, ev := c.rejected(resp, attempt)
	return nil, resp, ev
}

// releaseWhenDone makes release run once resp is done: when its body is
// closed, or at once when there is no response or no body. A protocol
// switch (a WebSocket) is done when it ends, which is when goproxy closes
// its body: its session (pool.exclusive) and its concurrency slot are held
// for its life.
func releaseWhenDone(resp *http.Response, err error, release func()) {
	if err != nil || resp.Body == nil {
		release()
		return
	}
	if rwc, ok := resp.Body.(io.ReadWriteCloser); ok && resp.StatusCode == http.StatusSwitchingProtocols {
		resp.Body = &switchedBody{doneBody{ReadCloser: rwc, done: release}, rwc}
		return
	}
	resp.Body = &doneBody{ReadCloser: resp.Body, done: release}
}

// switchedBody is the body of a protocol switch: the connection itself,
// which goproxy writes to as well as reads (so it stays an
// io.ReadWriteCloser), done once it is closed (doneBody).
type switchedBody struct {
	doneBody
	io.Writer
}

// pauseOnRetryAfter pauses sess at the request's site for as long as the
// Retry-After of a 429 or 503 response says (at most sites.MaxRetryAfter).
func (s *Server) pauseOnRetryAfter(host string, sess *sessionpool.Session, resp *http.Response) {
	if resp.StatusCode != http.StatusTooManyRequests && resp.StatusCode != http.StatusServiceUnavailable {
		return
	}
	now := time.Now() // the pacer's clock
	if d, ok := sites.RetryAfter(resp.Header, now); ok && d > 0 {
		s.pacer.Pause(host, paceKey(sess), now.Add(d))
		if sess.Site() != "" {
			// The session is this site's alone: its pause is kept with it,
			// for a restart and for the other instances on a Redis pool.
			if err := sess.Pause(now.Add(d)); err != nil {
				s.storeFailed(err)
			}
		}
	}
}
