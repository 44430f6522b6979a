package sessionpool

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"math"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// encodeDoc returns the whole document for snaps, as persisting them writes
// it.
func encodeDoc(usable, retired int, snaps []sessionSnap, now time.Time) []byte {
	var doc []byte
	encodeState(nil, usable, retired, snaps, now, func(c []byte) ([]byte, error) {
		doc = c
		return c, nil // keep appending to the same buffer
	})
	return doc
}

// goldenPool builds a pool in a fixed state, with a MemoryStore.
func goldenPool(t testing.TB) (*Pool, time.Time) {
	now := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	p := openPool(t, Options{Store: NewMemoryStore(), Now: func() time.Time { return now }})
	ctx := context.Background()
	a, err := p.AddSession(ctx, SessionOptions{ID: "session_a1B2c3D4e5", ProxyURL: "http://127.0.0.1:3128", MaxAge: 50 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	for range 4 {
		a.MarkGood()
	}
	a.MarkBad()
	a.MarkGood()
	u, _ := url.Parse("https://example.com/")
	a.SetCookies(u, []*http.Cookie{{Name: "uid", Value: "7", HttpOnly: true, Expires: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)}})
	b, _ := p.AddSession(ctx, SessionOptions{ID: "odd \"id\"\n\u2028<&>", MaxErrorScore: 1e-7, ErrorScoreDecrement: 1e22,
		UserData: map[string]any{"list": []any{1, "two", nil}, "nested": map[string]any{"k": true}}})
	b.SetCookies(u, []*http.Cookie{{Name: "s", Value: "v", Domain: ".example.com", Path: "/p", Secure: true, SameSite: http.SameSiteStrictMode}})
	b.Retire()
	return p, now
}

func TestEncodeGolden(t *testing.T) {
	ctx := context.Background()
	p, _ := goldenPool(t)
	// The table's order depends on nothing random here (no evictions).
	if err := p.PersistState(ctx); err != nil {
		t.Fatal(err)
	}
	got, err := p.store.Get(ctx, DefaultPersistStateKey)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join("testdata", "state.golden.json")
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("encoded state differs from %s:\n got: %s\nwant: %s", path, got, want)
	}
	// encoding/json reads it back as the same PoolState that State returns.
	var decoded PoolState
	if err := json.Unmarshal(got, &decoded); err != nil {
		t.Fatalf("encoding/json cannot read the document: %v", err)
	}
	if st := p.State(); !reflect.DeepEqual(normalize(decoded), normalize(st)) {
		t.Errorf("decoded document:\n%+v\nState():\n%+v", decoded, st)
	}
}

// normalize makes states comparable with reflect.DeepEqual (time locations,
// nil and empty cookie slices).
func normalize(st PoolState) PoolState {
	for i := range st.Sessions {
		s := &st.Sessions[i]
		s.CreatedAt, s.ExpiresAt = s.CreatedAt.UTC(), s.ExpiresAt.UTC()
		if len(s.Cookies) == 0 {
			s.Cookies = nil
		}
		for j := range s.Cookies {
			c := &s.Cookies[j]
			c.Expires, c.Creation = c.Expires.UTC(), c.Creation.UTC()
		}
	}
	return st
}

func TestDecodeGoldenRoundTrip(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("testdata", "state.golden.json"))
	if err != nil {
		t.Fatal(err)
	}
	p, now := goldenPool(t)
	sessions, err := decodeState(data, p, now)
	if err != nil {
		t.Fatal(err)
	}
	snaps := make([]sessionSnap, len(sessions))
	for i, s := range sessions {
		snaps[i] = s.snapshot()
	}
	if again := encodeDoc(1, 1, snaps, now); !bytes.Equal(again, data) {
		t.Errorf("decode then encode changed the document:\n%s\n%s", again, data)
	}
}

// jsonString is encoding/json's encoding of s without HTML escaping.
func jsonString(t testing.TB, s string) string {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(s); err != nil {
		t.Fatal(err)
	}
	return strings.TrimSuffix(buf.String(), "\n")
}

func TestAppendStringMatchesEncodingJSON(t *testing.T) {
	for _, s := range []string{"", "plain", `q"uote`, `back\slash`, "ctl\x00\x01\x1f\x7f", "\n\r\t\b\f", "héllo wörld ☃ 𝄞",
		"bad\xffutf8\xc3", "\u2028\u2029", "<&>", "end\\"} {
		if got, want := string(appendString(nil, s)), jsonString(t, s); got != want {
			t.Errorf("appendString(%q) = %s, want %s", s, got, want)
		}
	}
}

func FuzzAppendString(f *testing.F) {
	for _, s := range []string{"", "a\"b", "\x00\xff", "\u2028"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := string(appendString(nil, s)), jsonString(t, s); got != want {
			t.Errorf("appendString(%q) = %s, want %s", s, got, want)
		}
	})
}

func TestAppendFloatMatchesEncodingJSON(t *testing.T) {
	for _, f := range []float64{0, 1, -1, 0.5, 3, 1.0 / 3, 1e-6, 1e-7, 9.99e-7, 1e20, 1e21, 1e22, 123456789.125, math.MaxFloat64, math.SmallestNonzeroFloat64, -2.5e-9} {
		want, _ := json.Marshal(f)
		if got := appendFloat(nil, f); string(got) != string(want) {
			t.Errorf("appendFloat(%v) = %s, want %s", f, got, want)
		}
	}
	for _, f := range []float64{math.NaN(), math.Inf(1), math.Inf(-1)} {
		if got := appendFloat(nil, f); string(got) != "0" {
			t.Errorf("appendFloat(%v) = %s, want 0 (a valid document)", f, got)
		}
	}
}

func TestAppendTimeClamps(t *testing.T) {
	for _, tc := range []struct {
		in   time.Time
		want string
	}{
		{time.Date(2026, 1, 2, 3, 4, 5, 6, time.FixedZone("X", 3600)), `"2026-01-02T02:04:05.000000006Z"`},
		{time.Date(12000, 1, 1, 0, 0, 0, 0, time.UTC), `"9999-12-31T23:59:59.999999999Z"`},
		{time.Date(-5, 1, 1, 0, 0, 0, 0, time.UTC), `"0000-01-01T00:00:00Z"`},
	} {
		if got := string(appendTime(nil, tc.in)); got != tc.want {
			t.Errorf("appendTime(%v) = %s, want %s", tc.in, got, tc.want)
		}
	}
}

var positionRE = regexp.MustCompile(`invalid state: \d+:\d+: `)

func FuzzDecodeState(f *testing.F) {
	if data, err := os.ReadFile(filepath.Join("testdata", "state.golden.json")); err == nil {
		f.Add(data)
	}
	f.Add([]byte(`{"version":1,"sessions":[{"id":"a","cookies":[{"name":"n","value":"v","domain":"example.com","path":"/","hostOnly":true,"creation":"2026-11-27T10:00:00Z"}],"maxErrorScore":3,"errorScoreDecrement":0.5,"createdAt":"2026-11-27T10:00:00Z","expiresAt":"2026-11-27T10:50:00Z","usageCount":1,"maxUsageCount":50,"errorScore":0.5}]}`))
	f.Add([]byte(`{"version":1,"sessions":null}`))
	f.Add([]byte(`{"version":1,"sessions":[{"id":"a","usageCount":-1}]}`))
	f.Add([]byte(`{"version":1,"sessions":[{"id":"","errorScore":1e400}]}`))
	f.Add([]byte(`{"version":1} {}`))
	f.Add([]byte(`[]`))
	now := time.Date(2026, 11, 27, 10, 10, 0, 0, time.UTC)
	p, err := Open(context.Background(), Options{Now: func() time.Time { return now }})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		sessions, err := decodeState(data, p, now)
		if err != nil {
			if !positionRE.MatchString(err.Error()) {
				t.Fatalf("error without ErrInvalidState and a position: %v", err)
			}
			return
		}
		ids := map[string]bool{}
		snaps := make([]sessionSnap, len(sessions))
		for i, s := range sessions {
			sn := s.snapshot()
			snaps[i] = sn
			switch {
			case s.id == "" || ids[s.id]:
				t.Fatalf("accepted an empty or duplicate id %q", s.id)
			case sn.usage < 0 || s.maxUsage < 1:
				t.Fatalf("accepted counts %d/%d", sn.usage, s.maxUsage)
			case !(sn.errScore >= 0) || math.IsInf(sn.errScore, 0) || !(s.maxErr > 0) || math.IsInf(s.maxErr, 0) ||
				!(s.errDecr >= 0) || math.IsInf(s.errDecr, 0):
				t.Fatalf("accepted scores %v/%v/%v", sn.errScore, s.maxErr, s.errDecr)
			case s.expires < s.created:
				t.Fatalf("accepted expiresAt before createdAt")
			}
			ids[s.id] = true
			if ud := sn.userData; len(ud) > 0 && !json.Valid(ud) {
				t.Fatalf("accepted user data %q", ud)
			}
		}
		// What was accepted encodes to a document that loads the same.
		doc := encodeDoc(0, len(snaps), snaps, now)
		again, err := decodeState(doc, p, now)
		if err != nil {
			t.Fatalf("re-encoded document does not load: %v\n%s", err, doc)
		}
		if len(again) != len(sessions) {
			t.Fatalf("round trip: %d sessions, want %d", len(again), len(sessions))
		}
		for i := range again {
			if a, b := again[i].State(), sessions[i].State(); !reflect.DeepEqual(normalize(PoolState{Sessions: []SessionState{a}}), normalize(PoolState{Sessions: []SessionState{b}})) {
				t.Fatalf("round trip changed a session:\n%+v\n%+v", a, b)
			}
		}
	})
}
