package sessionpool

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"
)

// fuzzBackend is a Redis backend that is never connected, on a pool that
// owns no goroutine and is never torn down: enough for the parsers, which
// only read what a server returned.
func fuzzBackend(t *testing.T) *redisBackend {
	p, err := Open(context.Background(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	return &redisBackend{p: p, name: "redis://fuzz"}
}

// FuzzRedisRecord: whatever a session's record on the server holds,
// reading it gives a session or an error wrapping ErrInvalidState, never a
// panic; and a session read back from its own record is the same session.
func FuzzRedisRecord(f *testing.F) {
	f.Add("3 4 0.5 0 50 3 0.5 1764237600000000 1764240600000000\nhttp://u:p@10.0.0.1:3128\n{\"a\":1}")
	f.Add("3 4 0.5 0 50 3 0.5 1764237600000000 1764240600000000\nhttp://u:p@10.0.0.1:3128\n{\"a\":1}\nchrome")
	f.Add("3 4 0.5 0 50 3 0.5 1 2\n\n\nfirefox")
	f.Add("3 4 0.5 0 50 3 0.5 1 2\n\n{}\nchrome\n1764240600000000") // paused
	f.Add("3 4 0.5 0 50 3 0.5 1 2\n\n\n\n1764240600000000")         // paused, no fingerprint
	f.Add("3 4 0.5 0 50 3 0.5 1 2\n\n\n\n99999999999999999")        // a pause whose nanoseconds overflow
	f.Add("0 0 0 0 0 0 0 0 10000000000000000\n\n")                  // an expiry whose nanoseconds overflow
	f.Add("3 4 0.5 0 50 3 0.5 1 2\n\n\nfire fox")
	f.Add("0 0 0 1 1 1 0 -5 -4\n\n")
	f.Add("1 2 inf 0 50 3 0.5 1 2\n\n")
	f.Add("1 2 3 0 50 3 0.5 1 2\n")
	f.Add("not a record")
	f.Fuzz(func(t *testing.T, rec string) {
		b := fuzzBackend(t)
		s, err := b.sessionFrom("session_fuzz", rec, nil)
		if err != nil {
			if !errors.Is(err, ErrInvalidState) {
				t.Fatalf("error %v does not wrap ErrInvalidState", err)
			}
			return
		}
		s.mu.Lock()
		head, tail := recordParts(s)
		s.mu.Unlock()
		again := head + " " + strconv.FormatInt(micros(s.created), 10) + " " + strconv.FormatInt(micros(s.expires), 10) + tail
		s2, err := b.sessionFrom("session_fuzz", again, nil)
		if err != nil {
			t.Fatalf("the record written for %q does not read back: %v", rec, err)
		}
		a, c := s.State(), s2.State()
		if a.UsageCount != c.UsageCount || a.ErrorScore != c.ErrorScore || a.Retired != c.Retired ||
			a.MaxUsageCount != c.MaxUsageCount || a.MaxErrorScore != c.MaxErrorScore ||
			a.ErrorScoreDecrement != c.ErrorScoreDecrement || !a.CreatedAt.Equal(c.CreatedAt) ||
			!a.ExpiresAt.Equal(c.ExpiresAt) || a.ProxyURL != c.ProxyURL || a.Fingerprint != c.Fingerprint ||
			!a.PausedUntil.Equal(c.PausedUntil) {
			t.Fatalf("record %q: read back as %+v, then %+v", rec, a, c)
		}
	})
}

// FuzzRedisCookieValue: a stored cookie value that does not parse is
// skipped, never a panic; a cookie written by cookieValue reads back equal.
func FuzzRedisCookieValue(f *testing.F) {
	c := Cookie{Name: "sid", Value: `"a b"`, Domain: "example.com", Path: "/x", HostOnly: true, Secure: true,
		SameSite: "Lax", Expires: time.Date(9999, 1, 1, 0, 0, 0, 5, time.UTC), Creation: time.Unix(1764237600, 123).UTC()}
	f.Add(cookieValue(&c, 7))
	f.Add("0\t---\ta\t1\texample.com\t/\t\t-\t1.0")
	f.Add("0\thsx\ta\t1\texample.com\t/\t\t1.-1\t1.0")
	f.Add("x\t\t\t\t\t\t\t\t")
	f.Fuzz(func(t *testing.T, v string) {
		got, seq, ok := parseCookieValue(v)
		decodeCookies([]string{v}) // must not panic
		if !ok {
			return
		}
		back, seq2, ok := parseCookieValue(cookieValue(&got, seq))
		if !ok || seq2 != seq || back.Name != got.Name || back.Value != got.Value || back.Domain != got.Domain ||
			back.Path != got.Path || back.HostOnly != got.HostOnly || back.Secure != got.Secure ||
			back.HTTPOnly != got.HTTPOnly || back.SameSite != got.SameSite ||
			!back.Expires.Equal(got.Expires) || !back.Creation.Equal(got.Creation) {
			t.Fatalf("%q parsed as %+v, written and parsed again as %+v (%v)", v, got, back, ok)
		}
	})
}

// FuzzRedisEvent: a retirement event on the channel that is not one the
// scripts publish is an error, never a panic.
func FuzzRedisEvent(f *testing.F) {
	f.Add(`{"o":"session_a","id":"session_b","s":"1 1 0 1 50 3 0.5 1 2\n\n","c":["0\t---\ta\t1\texample.com\t/\t\t-\t1.0"]}`)
	f.Add(`{"o":"x","id":"y","s":"","c":{}}`)
	f.Add(`{"c":[1,2]}`)
	f.Add(`{not json`)
	f.Fuzz(func(t *testing.T, payload string) {
		b := fuzzBackend(t)
		b.decodeEvent(payload)
	})
}

// TestRedisRecordFingerprint: a record's fingerprint is the line after its
// user data; a record written before fingerprints has none and loads; a
// fingerprint that is not a label is an error naming the field, not a
// panic.
func TestRedisRecordFingerprint(t *testing.T) {
	b := fuzzBackend(t)
	for _, c := range []struct {
		tail, fingerprint string
		ok                bool
	}{
		{"", "", true}, // written before fingerprints
		{"{\"k\":1}", "", true},
		{"{\"k\":1}\nchrome", "chrome", true},
		{"\nsafari", "safari", true},
		{"\nsa fari", "", false},
		{"\n" + strings.Repeat("x", 33), "", false},
	} {
		s, err := b.sessionFrom("s", "1 0 0 0 50 3 0.5 1 2\nhttp://10.0.0.1:3128\n"+c.tail, nil)
		if !c.ok {
			if !errors.Is(err, ErrInvalidState) || !strings.Contains(err.Error(), `"fingerprint"`) {
				t.Errorf("record ending %q: %v, want ErrInvalidState naming the fingerprint", c.tail, err)
			}
			continue
		}
		if err != nil || s.ProxyURL() != "http://10.0.0.1:3128" || s.Fingerprint() != c.fingerprint {
			t.Errorf("record ending %q: %v, fingerprint %q", c.tail, err, s.Fingerprint())
		}
	}
}
