package sessionpool

import (
	"context"
	"net/http"
)

// Mark is what one use of a session came to, for Session.Commit.
type Mark int

const (
	NoMark Mark = iota // count nothing: only store the cookies
	Good               // as MarkGood
	Bad                // as MarkBad
	Retire             // as Retire
)

// Commit stores the Set-Cookie headers of resp (nil: none; see
// SetCookiesFromResponse) and then applies m. It is the one call a proxy
// makes when a response has been judged: with a Redis pool the cookies
// (merged cookie by cookie with those other processes store meanwhile) and
// the mark reach the server in one script run, one round trip, and the
// error is returned rather than passed to Options.OnStoreError. Without one
// it is the same as calling the methods in turn, and never fails.
func (s *Session) Commit(ctx context.Context, resp *http.Response, m Mark) error {
	if !s.remote() {
		s.SetCookiesFromResponse(resp)
		switch m {
		case Good:
			s.MarkGood()
		case Bad:
			s.MarkBad()
		case Retire:
			s.Retire()
		}
		return nil
	}
	if resp != nil && resp.Request != nil && resp.Request.URL != nil {
		if lines := resp.Header.Values("Set-Cookie"); len(lines) > 0 {
			s.jar.setFromResponse(resp.Request.URL, lines, s.clock())
		}
	}
	code := "n"
	switch m {
	case Good:
		code = "g"
	case Bad:
		code = "b"
	case Retire:
		code = "r"
	}
	return s.pool.rb.commit(ctx, s, code)
}
