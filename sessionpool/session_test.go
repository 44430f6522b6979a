package sessionpool

import (
	"context"
	"net/http"
	"net/url"
	"testing"
)

// The session's contract runs on both backends in the sessionpooltest
// suite (contract_test.go); the tests here need no pool.

// TestZeroSession checks that the zero Session (whose limits and cold part
// are not allocated) is unusable and that its methods neither panic nor
// report anything. It has no pool, so no backend.
func TestZeroSession(t *testing.T) {
	var s Session
	u, _ := url.Parse("https://example.com/")
	s.MarkGood()
	s.MarkBad()
	s.SetCookies(u, []*http.Cookie{{Name: "a", Value: "1"}})
	if err := s.SetUserData(map[string]any{"k": "v"}); err != nil {
		t.Fatal(err)
	}
	if err := s.Commit(context.Background(), nil, Retire); err != nil {
		t.Fatal(err)
	}
	if s.IsUsable() || s.ID() != "" || s.ProxyURL() != "" || s.MaxUsageCount() != 0 || s.MaxErrorScore() != 0 {
		t.Errorf("zero session: usable %v, id %q, proxy %q, limits %d/%v", s.IsUsable(), s.ID(), s.ProxyURL(), s.MaxUsageCount(), s.MaxErrorScore())
	}
	if got := s.CookieString(u); got != "" {
		t.Errorf("zero session cookies = %q, want none", got)
	}
	if got := s.UserData(); len(got) != 0 {
		t.Errorf("zero session user data = %v, want none", got)
	}
	if st := s.State(); st.ID != "" || st.Retired || st.UsageCount != 0 || st.ErrorScore != 0 {
		t.Errorf("zero session state = %+v, want nothing: the marks are not stored", st)
	}
	if s.UsageCount() != 0 || s.ErrorScore() != 0 || s.Retired() {
		t.Errorf("zero session after marks: usage %d, error score %v, retired %v; want nothing stored", s.UsageCount(), s.ErrorScore(), s.Retired())
	}
}
