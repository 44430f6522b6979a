package proxy

import (
	"errors"
	"io"
	"net/http"
	"sync"

	"github.com/sessionproxy/sessionproxy/proxy/record"
	"github.com/sessionproxy/sessionproxy/proxy/rules"
	"github.com/sessionproxy/sessionproxy/proxy/upstream"
	"github.com/sessionproxy/sessionproxy/sessionpool"
)

// ending is how one request ends: the event its verdict made, recorded,
// and the verdict on the session that answered, carried out, once its
// response body has ended. A body cut off by the origin or the upstream
// turns the verdict into an upstream failure, so the session never counts
// a use it did not give whole, and never two uses for one request. Safe for
// concurrent use: the verdict may come on the goroutine that closes the body
// while another reads it.
type ending struct {
	// names are the answer's header names as the origin sent them
	// (wire.ResponseNames), for the client's writer; nil for the proxy's
	// own answers. Set while the request is attempted, read once it is
	// answered, by the request's goroutine.
	names []string

	mu      sync.Mutex // guards the fields below
	ev      record.Event
	sess    *sessionpool.Session // nil when no session answered (nothing to carry out)
	v       rules.Verdict
	host    string         // the request's host, without its port
	status  int            // the response's status
	cookies *http.Response // its Set-Cookie lines (cookieCarrier), nil for none
	bodies  *loggedBodies  // the bodies kept for the request log; nil when it keeps none
	site    string         // the request's site label in the metrics (siteLabel); immutable
}

// loggedBodies are the starts of a request's bodies, for the request log
// (request_log.bodies).
type loggedBodies struct {
	req, resp record.BodyCapture
}

// capturingBody is a body whose bytes are also written to c as they are
// read.
type capturingBody struct {
	io.ReadCloser
	c *record.BodyCapture
}

func (b *capturingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.c.Write(p[:n])
	return n, err
}

// keepBodies puts what was kept of the bodies into the request's log entry.
func keepBodies(bodies *loggedBodies, logged *record.Request) {
	if bodies == nil || logged == nil {
		return
	}
	logged.RequestBody, logged.RequestBodySize = bodies.req.Bytes()
	logged.ResponseBody, logged.ResponseBodySize = bodies.resp.Bytes()
}

// setVerdict keeps the event of the request's verdict.
func (e *ending) setVerdict(ev record.Event) {
	e.mu.Lock()
	e.ev = ev
	e.mu.Unlock()
}

// judge keeps the verdict v on sess, and the cookies to store with it.
func (e *ending) judge(sess *sessionpool.Session, v rules.Verdict, host string, status int, cookies *http.Response) {
	e.mu.Lock()
	e.sess, e.v, e.host, e.status, e.cookies = sess, v, host, status, cookies
	e.mu.Unlock()
}

// finish carries out the request's verdict and records its end. cut is the
// error that cut its response body off, nil when the body ended whole or
// the client stopped reading. A cut body is an upstream failure, as when no
// response came: counted, logged, decided by the rules (bad when none
// speaks), and the request ends as an error.
func (s *Server) finish(e *ending, req *http.Request, cut error) {
	e.mu.Lock()
	ev, sess, v, host, status, cookies := e.ev, e.sess, e.v, e.host, e.status, e.cookies
	e.sess = nil // carried out once
	e.mu.Unlock()
	ev.Site = e.site
	keepBodies(e.bodies, ev.Request)
	if sess == nil {
		if ev.Outcome != "" {
			s.rec.Finish(ev)
		}
		return
	}
	if ev.Request != nil {
		ev.Request.Fingerprint = fingerprintOf(sess, s.cfg.Load())
	}
	errText := "" // why the body was cut off
	if cut != nil && req.Context().Err() == nil {
		cfg := s.cfg.Load()
		uerr := upstream.Classify(cut, sess.ProxyURL(), req.URL.Host)
		s.rec.UpstreamFailed(uerr)
		s.log.Warn("response cut off", "session", sess.ID(), "host", host, "status", status, "error", uerr.Error())
		v = failureVerdict(cfg, host, uerr.Kind)
		ev.Outcome, ev.Rule = record.OutcomeError, verdictRule(v)
		errText = uerr.Error()
	}
	s.apply(sess, v, host, status, cookies)
	// The answering attempt counts now, with the verdict carried out.
	attempt := record.Outcome(v.Action)
	if errText != "" {
		attempt = record.OutcomeError
	}
	s.rec.Attempt(attempt)
	if ev.Request != nil && len(ev.Request.Attempts) > 0 {
		last := &ev.Request.Attempts[len(ev.Request.Attempts)-1]
		last.Outcome, last.Rule, last.Error = attempt, verdictRule(v), errText
	}
	if ev.Outcome != "" {
		s.rec.Finish(ev)
	}
}

// watchedBody is a response body on its way to the client that reports how
// it ended, once: Server.finish with a nil cut at its end or when it is
// closed, with the error when reading it fails; its Close also ends the
// request's place among those the server drains at Shutdown. With abort
// set, a failed read then aborts the response with http.ErrAbortHandler,
// the way net/http and x/net/http2 servers cut a response off (no chunked
// terminator, RST_STREAM on HTTP/2): only for a body read inside such a
// server's handler, which recovers that panic; for plain HTTP what the
// server holds is flushed first, so that a client whose response is cut off
// before its first body byte still gets the origin's head and sees the cut,
// not a connection closed with no response. One allocation per response
// holds it all.
type watchedBody struct {
	rc    io.ReadCloser
	abort bool
	w     *streamWriter // plain HTTP's; nil inside tunnels
	s     *Server
	e     *ending
	req   *http.Request
	ended sync.Once // finish
	left  sync.Once // s.inflight.leave
}

func (b *watchedBody) end(cut error) { b.ended.Do(func() { b.s.finish(b.e, b.req, cut) }) }

func (b *watchedBody) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	switch {
	case err == nil:
	case errors.Is(err, io.EOF):
		b.end(nil)
	default:
		b.end(err)
		if b.abort {
			b.rc.Close() // the handler's own Close will not run before the panic unwinds it
			if b.w != nil {
				b.w.flush() // the head, if it is still held; a client gone makes this fail, and nothing is lost
			}
			panic(http.ErrAbortHandler)
		}
	}
	return n, err
}

func (b *watchedBody) Close() error {
	err := b.rc.Close()
	b.end(nil)
	b.left.Do(b.s.inflight.leave)
	return err
}

// watchBody wraps resp's body so that the request's end is recorded when the
// body ends, as a failure when it was cut off, and the request leaves the
// server's in-flight count when the body is closed. A response without a
// body to stream ends at once.
func (s *Server) watchBody(req *http.Request, t *tunnel, resp *http.Response, e *ending) {
	// Plain HTTP is served by net/http, HTTP/2 inside a tunnel by
	// x/net/http2: both recover http.ErrAbortHandler. HTTP/1.x inside a
	// tunnel runs in goproxy's own goroutine, which would crash; there a
	// failed read already makes goproxy close the tunnel mid-response.
	abort := t.host == "" || req.ProtoMajor == 2
	b := &watchedBody{rc: resp.Body, abort: abort, w: t.w, s: s, e: e, req: req}
	if bodiless(resp) {
		b.end(nil)
	}
	resp.Body = b
}

// bodiless reports whether resp has no body to stream.
func bodiless(resp *http.Response) bool {
	inner := resp.Body
	if d, ok := inner.(*doneBody); ok { // the pacer's release (releaseWhenDone)
		inner = d.ReadCloser
	}
	return inner == http.NoBody || resp.ContentLength == 0
}
