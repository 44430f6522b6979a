package sessionpooltest

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/sessionproxy/sessionproxy/sessionpool"
)

// The contract of the session. The tests run on sessions the pool holds
// (AddSession: a Redis pool keeps nothing it was not given), and check what
// the pool holds after the local copy (with Redis, the server's copy).

func testSessionDefaults(t *testing.T, b Backend) {
	clock := NewClock()
	p := b.Open(t, sessionpool.Options{Now: clock.Now})
	added := AddSession(t, p, sessionpool.SessionOptions{})
	read, err := p.GetSessionByID(context.Background(), added.ID())
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		what string
		s    *sessionpool.Session
	}{{"built", NewSession(t, p, sessionpool.SessionOptions{})}, {"added", added}, {"read back", read}} {
		s := c.s
		if !regexp.MustCompile(`^session_[A-Za-z0-9]{10}$`).MatchString(s.ID()) {
			t.Errorf("%s: ID %q does not match session_[A-Za-z0-9]{10}", c.what, s.ID())
		}
		if got, want := s.ExpiresAt().Sub(s.CreatedAt()), 3000*time.Second; got != want {
			t.Errorf("%s: MaxAge = %v, want %v", c.what, got, want)
		}
		if !s.CreatedAt().Equal(clock.Now()) {
			t.Errorf("%s: CreatedAt = %v, want the pool clock's %v", c.what, s.CreatedAt(), clock.Now())
		}
		if decr := s.State().ErrorScoreDecrement; s.MaxUsageCount() != 50 || s.MaxErrorScore() != 3 || decr != 0.5 {
			t.Errorf("%s: limits = %d, %v, %v; want 50, 3, 0.5", c.what, s.MaxUsageCount(), s.MaxErrorScore(), decr)
		}
		if s.ErrorScore() != 0 || s.UsageCount() != 0 || s.ProxyURL() != "" || !s.IsUsable() {
			t.Errorf("%s: fresh session: score %v, usage %d, proxy %q, usable %v", c.what, s.ErrorScore(), s.UsageCount(), s.ProxyURL(), s.IsUsable())
		}
		st := s.State()
		if st.UserData == nil || len(st.UserData) != 0 || st.Cookies != nil {
			t.Errorf("%s: State: UserData %#v, Cookies %#v; want an empty map and no cookies", c.what, st.UserData, st.Cookies)
		}
		if b.Inspect != nil && b.Inspect.UserDataAllocated(s) {
			t.Errorf("%s: user data allocated before use: %v", c.what, s.UserData())
		}
	}
}

func testSessionIDsUnique(t *testing.T, b Backend) {
	p := b.Open(t, sessionpool.Options{})
	seen := map[string]bool{}
	check := func(s *sessionpool.Session) {
		t.Helper()
		if seen[s.ID()] {
			t.Fatalf("duplicate ID %q", s.ID())
		}
		seen[s.ID()] = true
	}
	for range 2000 {
		check(NewSession(t, p, sessionpool.SessionOptions{}))
	}
	for range 2000 {
		check(AddSession(t, p, sessionpool.SessionOptions{}))
	}
	if n := HeldCount(p); n != 2000 {
		t.Errorf("held %d, want the 2000 added", n)
	}
}

func testSessionMarks(t *testing.T, b Backend) {
	type step int
	const (
		good step = iota
		bad
		retire
	)
	repeat := func(n int, s step) []step {
		out := make([]step, n)
		for i := range out {
			out[i] = s
		}
		return out
	}
	tests := []struct {
		name        string
		opts        sessionpool.SessionOptions
		steps       []step
		wantScore   float64
		wantUsage   int
		wantRetired bool
		wantEvents  int
	}{
		{"three bad", sessionpool.SessionOptions{}, repeat(3, bad), 3, 3, true, 1},
		{"two bad stay usable", sessionpool.SessionOptions{}, repeat(2, bad), 2, 2, false, 0},
		{"fifty good", sessionpool.SessionOptions{}, repeat(50, good), 0, 50, true, 1},
		{"forty-nine good", sessionpool.SessionOptions{}, repeat(49, good), 0, 49, false, 0},
		{"good never below zero", sessionpool.SessionOptions{}, []step{bad, good, good, good}, 0, 4, false, 0},
		{"good takes the decrement", sessionpool.SessionOptions{}, []step{bad, bad, good}, 1.5, 3, false, 0},
		{"custom decrement", sessionpool.SessionOptions{ErrorScoreDecrement: 0.25}, []step{bad, good}, 0.75, 2, false, 0},
		{"retire counts a use", sessionpool.SessionOptions{}, []step{retire}, 0, 1, true, 1},
		{"retire is idempotent", sessionpool.SessionOptions{}, []step{retire, retire, retire}, 0, 1, true, 1},
		{"marks after retire keep it retired", sessionpool.SessionOptions{}, []step{retire, good, good, bad}, 1, 4, true, 1},
		{"retire after self-retirement fires nothing", sessionpool.SessionOptions{}, append(repeat(3, bad), retire), 3, 3, true, 1},
		{"more bad after blocked: one event", sessionpool.SessionOptions{}, repeat(5, bad), 5, 5, true, 1},
		{"custom max error score", sessionpool.SessionOptions{MaxErrorScore: 1}, []step{bad}, 1, 1, true, 1},
		{"custom max usage", sessionpool.SessionOptions{MaxUsageCount: 2}, []step{good, good, good}, 0, 3, true, 1},
		{"good on blocked does not revive", sessionpool.SessionOptions{}, []step{bad, bad, bad, good, good, good, good, good, good}, 0, 9, true, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := b.Open(t, sessionpool.Options{})
			rec := RecordRetired(p)
			s := AddSession(t, p, tc.opts)
			for _, st := range tc.steps {
				switch st {
				case good:
					s.MarkGood()
				case bad:
					s.MarkBad()
				case retire:
					s.Retire()
				}
			}
			if got := s.ErrorScore(); got != tc.wantScore {
				t.Errorf("ErrorScore = %v, want %v", got, tc.wantScore)
			}
			if got := s.UsageCount(); got != tc.wantUsage {
				t.Errorf("UsageCount = %v, want %v", got, tc.wantUsage)
			}
			if got := s.Retired(); got != tc.wantRetired {
				t.Errorf("Retired = %v, want %v", got, tc.wantRetired)
			}
			if s.IsUsable() == tc.wantRetired {
				t.Errorf("IsUsable = %v with retired %v", s.IsUsable(), tc.wantRetired)
			}
			if got := rec.Count(s.ID()); got != tc.wantEvents {
				t.Errorf("retired events = %d, want %d", got, tc.wantEvents)
			}
			held := StateOf(t, p, s.ID())
			if held.ErrorScore != tc.wantScore || held.UsageCount != tc.wantUsage || held.Retired != tc.wantRetired {
				t.Errorf("the pool holds score %v usage %d retired %v; want %v %d %v",
					held.ErrorScore, held.UsageCount, held.Retired, tc.wantScore, tc.wantUsage, tc.wantRetired)
			}
		})
	}
}

func testSessionPredicates(t *testing.T, b Backend) {
	clock := NewClock()
	p := b.Open(t, sessionpool.Options{Now: clock.Now})
	rec := RecordRetired(p)

	s := AddSession(t, p, sessionpool.SessionOptions{MaxAge: time.Minute, MaxUsageCount: 2, MaxErrorScore: 2})
	check := func(what string, blocked, expired, worn, usable bool) {
		t.Helper()
		if s.IsBlocked() != blocked || s.IsExpired() != expired || s.IsMaxUsageCountReached() != worn || s.IsUsable() != usable {
			t.Errorf("%s: blocked %v expired %v worn %v usable %v; want %v %v %v %v", what,
				s.IsBlocked(), s.IsExpired(), s.IsMaxUsageCountReached(), s.IsUsable(), blocked, expired, worn, usable)
		}
	}
	check("fresh", false, false, false, true)
	clock.Advance(time.Minute - time.Nanosecond)
	check("just before ExpiresAt", false, false, false, true)
	if _, err := p.GetSessionByID(context.Background(), s.ID()); err != nil {
		t.Errorf("just before ExpiresAt: %v", err)
	}
	clock.Advance(time.Nanosecond)
	check("at ExpiresAt", false, true, false, false)
	if s.Retired() || rec.Total() != 0 {
		t.Errorf("expiry alone set the retired flag (%v) or fired an event (%d)", s.Retired(), rec.Total())
	}
	if _, err := p.GetSessionByID(context.Background(), s.ID()); err == nil {
		t.Errorf("an expired session was found by ID")
	}
	// A mark on an expired session retires it.
	s.MarkGood()
	if !s.Retired() || rec.Count(s.ID()) != 1 {
		t.Errorf("mark on an expired session: retired %v, events %d; want true, 1", s.Retired(), rec.Count(s.ID()))
	}
	if !StateOf(t, p, s.ID()).Retired {
		t.Errorf("the pool does not hold the session as retired")
	}

	blk := AddSession(t, p, sessionpool.SessionOptions{MaxErrorScore: 2})
	blk.MarkBad()
	blk.MarkBad()
	if !blk.IsBlocked() || blk.IsMaxUsageCountReached() || blk.IsUsable() {
		t.Errorf("after two bad with max 2: blocked %v worn %v usable %v", blk.IsBlocked(), blk.IsMaxUsageCountReached(), blk.IsUsable())
	}
	w := AddSession(t, p, sessionpool.SessionOptions{MaxUsageCount: 1})
	w.MarkGood()
	if w.IsBlocked() || !w.IsMaxUsageCountReached() || w.IsUsable() {
		t.Errorf("after one good with max 1: blocked %v worn %v usable %v", w.IsBlocked(), w.IsMaxUsageCountReached(), w.IsUsable())
	}
	if p.UsableSessionsCount() != 0 || p.RetiredSessionsCount() != 3 {
		t.Errorf("usable %d retired %d, want 0 and 3", p.UsableSessionsCount(), p.RetiredSessionsCount())
	}
}

func testRetireOnBlockedStatusCodes(t *testing.T, b Backend) {
	tests := []struct {
		name    string
		codes   []int
		status  int
		extra   []int
		want    bool
		wantUse int
	}{
		{"401 default", nil, 401, nil, true, 1},
		{"403 default", nil, 403, nil, true, 1},
		{"429 default", nil, 429, nil, true, 1},
		{"200 default", nil, 200, nil, false, 0},
		{"500 default", nil, 500, nil, false, 0},
		{"extra code", nil, 503, []int{503}, true, 1},
		{"extra does not match", nil, 500, []int{503}, false, 0},
		{"custom codes replace defaults", []int{418}, 403, nil, false, 0},
		{"custom code", []int{418}, 418, nil, true, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := b.Open(t, sessionpool.Options{BlockedStatusCodes: tc.codes})
			rec := RecordRetired(p)
			s := AddSession(t, p, sessionpool.SessionOptions{})
			if got := s.RetireOnBlockedStatusCodes(tc.status, tc.extra...); got != tc.want {
				t.Errorf("RetireOnBlockedStatusCodes(%d) = %v, want %v", tc.status, got, tc.want)
			}
			if s.Retired() != tc.want || s.UsageCount() != tc.wantUse || rec.Count(s.ID()) != tc.wantUse {
				t.Errorf("retired %v, usage %d, events %d; want %v, %d, %d", s.Retired(), s.UsageCount(), rec.Count(s.ID()), tc.want, tc.wantUse, tc.wantUse)
			}
			if held := StateOf(t, p, s.ID()); held.Retired != tc.want || held.UsageCount != tc.wantUse {
				t.Errorf("the pool holds retired %v usage %d", held.Retired, held.UsageCount)
			}
		})
	}
}

func testSessionUserData(t *testing.T, b Backend) {
	ctx := context.Background()
	p := b.Open(t, sessionpool.Options{})
	in := map[string]any{"n": 1, "s": "x"}
	s := AddSession(t, p, sessionpool.SessionOptions{UserData: in})
	in["n"] = 2 // the session keeps its own copy
	read := func() *sessionpool.Session {
		t.Helper()
		r, err := p.GetSessionByID(ctx, s.ID())
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	for what, s := range map[string]*sessionpool.Session{"added": s, "read back": read()} {
		got := s.UserData()
		if got["n"] != 1.0 || got["s"] != "x" || len(got) != 2 {
			t.Errorf("%s: UserData = %#v", what, got)
		}
	}
	got := s.UserData()
	got["s"] = "changed" // a copy: the session is not changed
	if s.UserData()["s"] != "x" {
		t.Errorf("UserData returned the session's own map")
	}
	if err := s.SetUserData(map[string]any{"ch": make(chan int)}); err == nil {
		t.Errorf("SetUserData with a channel succeeded")
	}
	if s.UserData()["s"] != "x" || read().UserData()["s"] != "x" {
		t.Errorf("a failed SetUserData changed the data: %#v / %#v", s.UserData(), read().UserData())
	}
	if err := s.SetUserData(map[string]any{"k": []any{"a", 2.5}}); err != nil {
		t.Fatal(err)
	}
	if ud := read().UserData(); len(ud) != 1 || len(ud["k"].([]any)) != 2 {
		t.Errorf("after SetUserData: the pool holds %#v", ud)
	}
	if err := s.SetUserData(nil); err != nil {
		t.Fatal(err)
	}
	for what, s := range map[string]*sessionpool.Session{"local": s, "read back": read()} {
		if ud := s.State().UserData; ud == nil || len(ud) != 0 {
			t.Errorf("%s: after SetUserData(nil): %#v, want an empty map", what, ud)
		}
	}
	if _, err := p.NewSession(sessionpool.SessionOptions{UserData: map[string]any{"f": func() {}}}); err == nil {
		t.Errorf("NewSession with a func in UserData succeeded")
	}
}

// testSessionCookies follows one session's jar through a story: Set-Cookie
// lines (the contract's examples), browser-style cookies, expiry on the
// pool's clock, deletion. It stays one function because each step starts
// from the cookies the steps before left, locally and in the pool.
func testSessionCookies(t *testing.T, b Backend) {
	clock := NewClock()
	p := b.Open(t, sessionpool.Options{Now: clock.Now})
	s := AddSession(t, p, sessionpool.SessionOptions{})
	u, _ := url.Parse("https://example.com/a")
	// held returns the cookies the pool holds for to (with Redis: read
	// back from the server).
	held := func(to *url.URL) string {
		t.Helper()
		r, err := p.GetSessionByID(context.Background(), s.ID())
		if err != nil {
			t.Fatal(err)
		}
		return r.CookieString(to)
	}

	// No Request: nothing happens, no panic.
	s.SetCookiesFromResponse(&http.Response{Header: http.Header{"Set-Cookie": {"x=1"}}})
	s.SetCookiesFromResponse(nil)
	if got := s.CookieString(u); got != "" || held(u) != "" {
		t.Errorf("cookies without a request: %q / %q", got, held(u))
	}

	resp := &http.Response{
		Header: http.Header{"Set-Cookie": {
			"CSRF=e8b667; Domain=example.com; Secure",
			"id=a3fWa; Expires=Wed, Domain=example.com; 21 Oct 2015 07:28:00 GMT",
			"evil=1; Domain=other.org",
		}},
		Request: &http.Request{URL: u},
	}
	s.SetCookiesFromResponse(resp)
	for what, got := range map[string]string{"local": s.CookieString(u), "held": held(u)} {
		if want := "CSRF=e8b667; id=a3fWa"; got != want {
			t.Errorf("%s: CookieString = %q, want %q", what, got, want)
		}
	}
	if got := string(s.AppendCookieString([]byte("x; "), u)); got != "x; CSRF=e8b667; id=a3fWa" {
		t.Errorf("AppendCookieString = %q", got)
	}
	www, _ := url.Parse("https://www.example.com/")
	// id's Domain sits inside the malformed Expires, so id is host-only.
	for what, got := range map[string]string{"local": s.CookieString(www), "held": held(www)} {
		if got != "CSRF=e8b667" {
			t.Errorf("%s: cookies for www: %q, want the domain cookie only", what, got)
		}
	}

	s.SetCookies(u, []*http.Cookie{{Name: "host", Value: "only"}})
	if got := s.CookieString(www); got != "CSRF=e8b667" {
		t.Errorf("host-only cookie sent to www: %q", got)
	}
	for what, got := range map[string]string{"local": s.CookieString(u), "held": held(u)} {
		if got != "CSRF=e8b667; id=a3fWa; host=only" {
			t.Errorf("%s: CookieString = %q after SetCookies", what, got)
		}
	}
	if cs := s.Cookies(u); len(cs) != 3 {
		t.Errorf("Cookies = %v, want 3", cs)
	}
	if got := len(s.State().Cookies); got != 3 {
		t.Errorf("State has %d cookies, want 3", got)
	}
	// Nil URLs are ignored.
	s.SetCookies(nil, []*http.Cookie{{Name: "a", Value: "b"}})
	if s.Cookies(nil) != nil || s.CookieString(nil) != "" {
		t.Errorf("nil URL returned cookies")
	}
	// The jar uses the pool's clock: a Max-Age cookie expires with it.
	s.SetCookiesFromResponse(&http.Response{Header: http.Header{"Set-Cookie": {"short=1; Max-Age=10"}}, Request: &http.Request{URL: u}})
	if got := len(s.Cookies(u)); got != 4 {
		t.Fatalf("%d cookies, want 4", got)
	}
	if got := held(u); got != "CSRF=e8b667; id=a3fWa; host=only; short=1" {
		t.Errorf("held: %q", got)
	}
	clock.Advance(11 * time.Second)
	if got := len(s.Cookies(u)); got != 3 {
		t.Errorf("after the pool clock passed Max-Age: %d cookies, want 3", got)
	}
	if got := held(u); got != "CSRF=e8b667; id=a3fWa; host=only" {
		t.Errorf("held after the pool clock passed Max-Age: %q", got)
	}
	// Max-Age=0 deletes.
	s.SetCookiesFromResponse(&http.Response{Header: http.Header{"Set-Cookie": {"host=; Max-Age=0"}}, Request: &http.Request{URL: u}})
	for what, got := range map[string]string{"local": s.CookieString(u), "held": held(u)} {
		if got != "CSRF=e8b667; id=a3fWa" {
			t.Errorf("%s after Max-Age=0: %q", what, got)
		}
	}
}

// testSessionFingerprint: a session keeps the fingerprint label it was
// made with, in the pool (with Redis: read back from the server) and
// across a change of its user data; a bad label is refused.
func testSessionFingerprint(t *testing.T, b Backend) {
	ctx := context.Background()
	p := b.Open(t, sessionpool.Options{})
	s := AddSession(t, p, sessionpool.SessionOptions{Fingerprint: "chrome", UserData: map[string]any{"a": 1}})
	plain := AddSession(t, p, sessionpool.SessionOptions{})
	if s.Fingerprint() != "chrome" || MustGetByID(t, p, s.ID()).Fingerprint() != "chrome" || s.State().Fingerprint != "chrome" {
		t.Errorf("fingerprint %q, read back %q, state %q; want chrome", s.Fingerprint(), MustGetByID(t, p, s.ID()).Fingerprint(), s.State().Fingerprint)
	}
	if err := s.SetUserData(map[string]any{"b": 2}); err != nil {
		t.Fatal(err)
	}
	if got := MustGetByID(t, p, s.ID()); got.Fingerprint() != "chrome" || got.UserData()["b"] != 2.0 {
		t.Errorf("after SetUserData: fingerprint %q, user data %v", got.Fingerprint(), got.UserData())
	}
	if plain.Fingerprint() != "" || MustGetByID(t, p, plain.ID()).Fingerprint() != "" {
		t.Errorf("a session made without one has fingerprint %q", MustGetByID(t, p, plain.ID()).Fingerprint())
	}
	for _, bad := range []string{"a b", "é", strings.Repeat("x", sessionpool.MaxFingerprintLen+1)} {
		if _, err := p.AddSession(ctx, sessionpool.SessionOptions{Fingerprint: bad}); !errors.Is(err, sessionpool.ErrInvalidOptions) {
			t.Errorf("fingerprint %q: %v, want ErrInvalidOptions", bad, err)
		}
	}
}

// testSessionPause: a pause is kept with the session (with Redis: read back
// from the server), only ever extended, kept across a change of its user
// data and its marks, and shown in its state; a session without one has
// the zero time.
func testSessionPause(t *testing.T, b Backend) {
	p := b.Open(t, sessionpool.Options{})
	s := AddSession(t, p, sessionpool.SessionOptions{Fingerprint: "chrome"})
	plain := AddSession(t, p, sessionpool.SessionOptions{})
	until := time.Now().Add(time.Hour).Truncate(time.Microsecond)
	if err := s.Pause(until); err != nil {
		t.Fatal(err)
	}
	if err := s.Pause(until.Add(-time.Minute)); err != nil {
		t.Fatal(err)
	}
	if got := MustGetByID(t, p, s.ID()).PausedUntil(); !got.Equal(until) {
		t.Errorf("read back: paused until %v, want %v (an earlier pause changes nothing)", got, until)
	}
	if err := s.SetUserData(map[string]any{"b": 2}); err != nil {
		t.Fatal(err)
	}
	s.MarkGood()
	if got := MustGetByID(t, p, s.ID()); !got.PausedUntil().Equal(until) || got.Fingerprint() != "chrome" || got.UserData()["b"] != 2.0 {
		t.Errorf("after SetUserData and a mark: paused until %v, fingerprint %q, user data %v", got.PausedUntil(), got.Fingerprint(), got.UserData())
	}
	if st := MustGetByID(t, p, s.ID()).State(); !st.PausedUntil.Equal(until) {
		t.Errorf("state: paused until %v, want %v", st.PausedUntil, until)
	}
	if !plain.PausedUntil().IsZero() || !MustGetByID(t, p, plain.ID()).PausedUntil().IsZero() {
		t.Errorf("a session never paused is paused until %v", MustGetByID(t, p, plain.ID()).PausedUntil())
	}
	// Beyond what an int64 of nanoseconds holds (2262): as far as it goes.
	far := time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC)
	if err := s.Pause(far); err != nil {
		t.Fatal(err)
	}
	if got := MustGetByID(t, p, s.ID()).PausedUntil(); got.Before(time.Date(2262, 1, 1, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("after Pause(%v): paused until %v, want the furthest time a session holds", far, got)
	}
}
