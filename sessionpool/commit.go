package sessionpool

import (
	"context"
	"net/http"
)

// Mark is what one use of a session came to, for Session.Commit.
type Mark int

const (
	NoMark Mark = iota // count nothing: only store the cookies
	Good               // as MarkGood: one use, ErrorScoreDecrement off the error score
	Bad                // as MarkBad: one use, one more error
	Retire             // as Retire: one use (none when already retired), retired
)

// Commit stores the Set-Cookie headers of resp (nil: none; see
// SetCookiesFromResponse) and then applies m. It is the one call a proxy
// makes when a response has been judged.
//
// With a Redis pool the cookies and the mark reach the server in one
// script run, one round trip, and the error is returned (wrapping
// ErrStoreUnavailable, or ErrInvalidState when the server's data does not
// parse) rather than passed to RedisOptions.OnError. The cookies are merged
// cookie by cookie with those other copies store meanwhile (this copy does
// not learn theirs: GetSessionByID reads them); a deletion (Max-Age=0, an
// Expires in the past) removes the cookie on the server even when this copy
// never held it, except a Secure cookie deleted by a response over plain
// http. After an error the cookie changes are sent again with the copy's
// next change; the mark is not (it may have been counted). When the server
// no longer holds the session (its ID may be held by a new session since,
// which is left alone), Commit returns nil and the copy becomes unusable,
// firing nothing. The copy's counters are the server's after the
// run, other processes' marks included. ctx bounds the round trip.
//
// Without a Redis pool (or before such a pool holds the session) it is the
// same as calling the methods in turn, and never fails.
func (s *Session) Commit(ctx context.Context, resp *http.Response, m Mark) error {
	if s.pool == nil {
		return nil // the zero Session stores nothing
	}
	if resp != nil && resp.Request != nil && resp.Request.URL != nil {
		if lines := resp.Header.Values("Set-Cookie"); len(lines) > 0 {
			s.cold().jar.setFromResponse(resp.Request.URL, lines, s.clock())
		}
	}
	return s.pool.be.commit(ctx, s, m)
}
