package proxy

import (
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/sessionproxy/sessionproxy/proxy/config"
	"github.com/sessionproxy/sessionproxy/proxy/record"
	"github.com/sessionproxy/sessionproxy/proxy/rules"
	"github.com/sessionproxy/sessionproxy/proxy/sites"
	"github.com/sessionproxy/sessionproxy/sessionpool"
)

// newPacer builds the pacer of the sites list and pacing.max_wait, both
// bound at start. Its clock is the real one: it waits with timers.
func newPacer(cfg *config.Config) (*sites.Pacer, error) {
	rs := make([]sites.Rule, len(cfg.Sites))
	for i, st := range cfg.Sites {
		rs[i] = sites.Rule{Host: st.Host, Delay: st.Delay, Concurrency: st.Concurrency}
	}
	return sites.New(sites.Options{Rules: rs, MaxWait: cfg.Pacing.MaxWait})
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
	if !sel.pinned && attempt < c.cfg.Retry.MaxAttempts && !s.pacer.PausedUntil(c.host, sess.ID()).IsZero() {
		return nil, nil, record.Event{}
	}
	release, err := s.pacer.Wait(c.req.Context(), c.host, sess.ID())
	if err == nil {
		return release, nil, record.Event{}
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
// closed, or at once when there is no response, no body, or a protocol
// switch (whose body must reach goproxy unwrapped).
func releaseWhenDone(resp *http.Response, err error, release func()) {
	if err != nil || resp.Body == nil || resp.StatusCode == http.StatusSwitchingProtocols {
		release()
		return
	}
	resp.Body = &doneBody{ReadCloser: resp.Body, done: release}
}

// pauseOnRetryAfter pauses sess at the request's site for as long as the
// Retry-After of a 429 or 503 response says (at most sites.MaxRetryAfter).
func (s *Server) pauseOnRetryAfter(host string, sess *sessionpool.Session, resp *http.Response) {
	if resp.StatusCode != http.StatusTooManyRequests && resp.StatusCode != http.StatusServiceUnavailable {
		return
	}
	now := time.Now() // the pacer's clock
	if d, ok := sites.RetryAfter(resp.Header, now); ok && d > 0 {
		s.pacer.Pause(host, sess.ID(), now.Add(d))
	}
}
