package sessionpool

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// populate fills p with sessions in known states and returns them.
func populate(t *testing.T, p *Pool) (good, bad, retired *Session) {
	t.Helper()
	ctx := context.Background()
	var err error
	good, err = p.AddSession(ctx, SessionOptions{ID: "good", MaxUsageCount: 7, MaxErrorScore: 5, ErrorScoreDecrement: 0.25,
		MaxAge: time.Hour, ProxyURL: "http://user:pw@127.0.0.1:3128", Fingerprint: "firefox", UserData: map[string]any{"n": 1, "s": "x\"y"}})
	if err != nil {
		t.Fatal(err)
	}
	good.MarkBad()
	good.MarkGood()
	if err := good.Pause(time.Now().Add(30 * time.Minute)); err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse("https://example.com/")
	good.SetCookiesFromResponse(&http.Response{
		Header:  http.Header{"Set-Cookie": {"uid=7; Path=/; HttpOnly; Max-Age=600", "pref=dark; Domain=example.com; SameSite=Lax"}},
		Request: &http.Request{URL: u},
	})
	bad, _ = p.AddSession(ctx, SessionOptions{ID: "bad"})
	bad.MarkBad()
	bad.MarkBad()
	bad.MarkBad()
	retired, _ = p.AddSession(ctx, SessionOptions{ID: "retired"})
	retired.Retire()
	return good, bad, retired
}

func TestPersistAndRestore(t *testing.T) {
	for _, kind := range []string{"memory", "file"} {
		// In a bubble, time.Now is a fake clock that time.Sleep moves.
		t.Run(kind, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				ctx := context.Background()
				var store Store = NewMemoryStore()
				if kind == "file" {
					fs, err := NewFileStore(filepath.Join(t.TempDir(), "state"))
					if err != nil {
						t.Fatal(err)
					}
					store = fs
				}
				p, err := Open(ctx, Options{Store: store, PersistStateKey: "k1"})
				if err != nil {
					t.Fatal(err)
				}
				good, _, _ := populate(t, p)
				wantCookies := good.State().Cookies
				if err := p.Teardown(ctx); err != nil { // persists once more
					t.Fatal(err)
				}

				data, err := store.Get(ctx, "k1")
				if err != nil {
					t.Fatal(err)
				}
				var doc PoolState
				if err := json.Unmarshal(data, &doc); err != nil {
					t.Fatalf("the document is not JSON: %v", err)
				}
				if doc.UsableSessionsCount != 1 || doc.RetiredSessionsCount != 2 || len(doc.Sessions) != 3 {
					t.Errorf("document counts %d/%d/%d", doc.UsableSessionsCount, doc.RetiredSessionsCount, len(doc.Sessions))
				}
				if !bytes.HasPrefix(data, []byte(`{"version":1,`)) {
					t.Errorf("document does not start with version 1: %.40s", data)
				}

				// Restore with other options: the saved limits win, the hook is
				// not called for restored sessions.
				time.Sleep(time.Minute)
				hookCalls := 0
				p2, err := Open(ctx, Options{Store: store, PersistStateKey: "k1",
					SessionOptions: SessionOptions{MaxUsageCount: 99, MaxErrorScore: 9},
					CreateSessionFunc: func(ctx context.Context, p *Pool, o SessionOptions) (*Session, error) {
						hookCalls++
						o.ProxyURL = "http://127.0.0.1:9"
						return p.NewSession(o)
					}})
				if err != nil {
					t.Fatal(err)
				}
				defer p2.Teardown(ctx)
				if p2.UsableSessionsCount() != 1 || p2.RetiredSessionsCount() != 0 {
					t.Fatalf("restored usable %d retired %d, want only the usable session", p2.UsableSessionsCount(), p2.RetiredSessionsCount())
				}
				r, err := p2.GetSessionByID(ctx, "good")
				if err != nil {
					t.Fatal(err)
				}
				if hookCalls != 0 {
					t.Errorf("CreateSessionFunc called %d times for restored sessions", hookCalls)
				}
				if r.MaxUsageCount() != 7 || r.MaxErrorScore() != 5 || r.errDecr != 0.25 || r.UsageCount() != 2 ||
					r.ErrorScore() != 0.75 || r.ProxyURL() != "http://user:pw@127.0.0.1:3128" || r.Fingerprint() != "firefox" ||
					!r.CreatedAt().Equal(good.CreatedAt()) || !r.ExpiresAt().Equal(good.ExpiresAt()) || !r.PausedUntil().Equal(good.PausedUntil()) {
					t.Errorf("restored session: %+v", r.State())
				}
				if ud := r.UserData(); ud["n"] != 1.0 || ud["s"] != "x\"y" {
					t.Errorf("restored user data %v", ud)
				}
				u, _ := url.Parse("https://example.com/")
				if got := r.CookieString(u); got != "uid=7; pref=dark" {
					t.Errorf("restored cookies %q", got)
				}
				gotCookies := r.State().Cookies
				if len(gotCookies) != len(wantCookies) {
					t.Fatalf("cookies %v, want %v", gotCookies, wantCookies)
				}
				for i := range gotCookies {
					g, w := gotCookies[i], wantCookies[i]
					if g.Name != w.Name || g.Value != w.Value || g.Domain != w.Domain || g.Path != w.Path || g.HostOnly != w.HostOnly ||
						g.HTTPOnly != w.HTTPOnly || g.SameSite != w.SameSite || !g.Expires.Equal(w.Expires) || !g.Creation.Equal(w.Creation) {
						t.Errorf("cookie %d: %+v, want %+v", i, g, w)
					}
				}
				// A new session still goes through the hook.
				if s, err := p2.GetSession(ctx); err != nil || (s != r && s.ProxyURL() != "http://127.0.0.1:9") {
					t.Errorf("new session after restore: %v %v", s, err)
				}
			})
		})
	}
}

func TestRestoreSkipsSessionsSpentSinceSaving(t *testing.T) {
	synctest.Test(t, testRestoreSkipsSessionsSpentSinceSaving)
}

func testRestoreSkipsSessionsSpentSinceSaving(t *testing.T) {
	ctx := context.Background()
	store := NewMemoryStore()
	p := openPool(t, Options{Store: store})
	if _, err := p.AddSession(ctx, SessionOptions{ID: "short", MaxAge: time.Minute}); err != nil {
		t.Fatal(err)
	}
	if _, err := p.AddSession(ctx, SessionOptions{ID: "long"}); err != nil {
		t.Fatal(err)
	}
	if err := p.PersistState(ctx); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Minute) // the bubble's clock
	p2 := openPool(t, Options{Store: store})
	if _, err := p2.GetSessionByID(ctx, "short"); !errors.Is(err, ErrSessionNotFound) {
		t.Errorf("expired session restored: %v", err)
	}
	if _, err := p2.GetSessionByID(ctx, "long"); err != nil {
		t.Errorf("usable session not restored: %v", err)
	}
	if held(p2) != 1 {
		t.Errorf("held %d, want 1", held(p2))
	}
}

func TestOpenRejectsBadDocument(t *testing.T) {
	valid := `{"version":1,"sessions":[` + "\n" + `{"id":"a","cookies":[],"userData":{},"proxyUrl":"","maxErrorScore":3,"errorScoreDecrement":0.5,"createdAt":"2026-11-27T10:00:00Z","expiresAt":"2026-11-27T10:50:00Z","usageCount":0,"maxUsageCount":50,"errorScore":0,"retired":false}` + "\n]}"
	replace := func(old, new string) string { return strings.Replace(valid, old, new, 1) }
	tests := []struct {
		name string
		doc  string
		want string // a regexp the error must match
	}{
		{"torn", valid[:len(valid)/2], `2:\d+: unexpected end of document`},
		{"empty", "", `1:1: unexpected end of document`},
		{"syntax", replace(`"usageCount":0`, `"usageCount":0,,`), `2:\d+: invalid character ','`},
		{"not an object", `[1,2]`, `1:1: the document is not a JSON object`},
		{"wrong type", replace(`"usageCount":0`, `"usageCount":"0"`), `2:\d+: sessions\[0\]\.usageCount: want an integer, got string$`},
		{"negative count", replace(`"usageCount":0`, `"usageCount":-1`), `2:1: sessions\[0\]: usageCount -1 is negative`},
		{"fractional count", replace(`"usageCount":0`, `"usageCount":0.5`), `2:\d+: sessions\[0\]\.usageCount: want an integer, got number 0\.5$`},
		{"huge score", replace(`"errorScore":0`, `"errorScore":1e999`), `2:\d+: sessions\[0\]\.errorScore: number 1e999 is out of range$`},
		{"negative score", replace(`"errorScore":0`, `"errorScore":-0.5`), `2:1: sessions\[0\]: errorScore -0.5 is negative`},
		{"zero max error", replace(`"maxErrorScore":3`, `"maxErrorScore":0`), `maxErrorScore 0 is not positive`},
		{"zero max usage", replace(`"maxUsageCount":50`, `"maxUsageCount":0`), `maxUsageCount 0 is not positive`},
		{"empty id", replace(`"id":"a"`, `"id":""`), `2:1: sessions\[0\]: empty id`},
		{"missing id", replace(`"id":"a",`, ``), `2:1: sessions\[0\]: missing id`},
		{"missing createdAt", replace(`"createdAt":"2026-11-27T10:00:00Z",`, ``), `missing createdAt`},
		{"bad time", replace(`"createdAt":"2026-11-27T10:00:00Z"`, `"createdAt":"yesterday"`), `2:1: sessions\[0\]\.createdAt: want an RFC 3339 time, got "yesterday"$`},
		{"expires before created", replace(`"expiresAt":"2026-11-27T10:50:00Z"`, `"expiresAt":"2026-11-27T09:00:00Z"`), `expiresAt is before createdAt`},
		{"user data not an object", replace(`"userData":{}`, `"userData":[1]`), `userData is not an object`},
		{"bad proxy", replace(`"proxyUrl":""`, `"proxyUrl":"no-scheme"`), `proxyUrl "no-scheme" has no scheme or host`},
		{"pause before 1970", replace(`"retired":false`, `"retired":false,"pausedUntil":"1960-01-01T00:00:00Z"`), `pausedUntil 1960-01-01 00:00:00 \+0000 UTC is out of range`},
		{"pause not a time", replace(`"retired":false`, `"retired":false,"pausedUntil":5`), `sessions\[0\]\.pausedUntil: want an RFC 3339 time, got 5$`},
		{"bad fingerprint", replace(`"proxyUrl":""`, `"proxyUrl":"","fingerprint":"a b"`), `fingerprint "a b" has a character that is not printable ASCII`},
		{"bad cookie", replace(`"cookies":[]`, `"cookies":[{"name":"","value":"v","domain":"example.com","path":"/","hostOnly":true,"creation":"2026-11-27T10:00:00Z"}]`), `2:1: sessions\[0\]: load cookie 0 "" \(domain "example.com"\): bad name$`},
		{"duplicate id", replace("\n]}", `,`+"\n"+`{"id":"a","cookies":[],"userData":{},"proxyUrl":"","maxErrorScore":3,"errorScoreDecrement":0.5,"createdAt":"2026-11-27T10:00:00Z","expiresAt":"2026-11-27T10:50:00Z","usageCount":0,"maxUsageCount":50,"errorScore":0,"retired":false}`+"\n]}"), `3:1: sessions\[1\]: duplicate id "a"`},
		{"wrong type of id", replace(`"id":"a"`, `"id":5`), `2:8: sessions\[0\]\.id: want a string, got number$`},
		{"wrong type of a cookie field", replace(`"cookies":[]`, `"cookies":[{"name":"a","value":"v","domain":"example.com","path":"/","creation":"2026-11-27T10:00:00Z"},{"name":7}]`), `2:\d+: sessions\[0\]\.cookies\[1\]\.name: want a string, got number$`},
		{"bad cookie time", replace(`"cookies":[]`, `"cookies":[{"name":"a","value":"v","domain":"example.com","path":"/","creation":"2026-11-27T10:00:00Z","expires":7}]`), `2:1: sessions\[0\]\.cookies\[0\]\.expires: want an RFC 3339 time, got 7$`},
		{"cookies not an array", replace(`"cookies":[]`, `"cookies":{}`), `2:\d+: sessions\[0\]\.cookies: want an array, got object$`},
		{"wrong type of version", replace(`"version":1`, `"version":"1"`), `1:\d+: version: want an integer, got string$`},
		{"missing version", replace(`"version":1,`, ``), `missing version`},
		{"version zero", replace(`"version":1`, `"version":0`), `version 0 is not supported`},
		{"negative top count", replace(`"version":1,`, `"version":1,"usableSessionsCount":-2,`), `usableSessionsCount -2 is negative`},
		{"duplicate key", replace(`"version":1,`, `"version":1,"version":1,`), `duplicate key "version"`},
		{"sessions not an array", `{"version":1,"sessions":{}}`, `1:25: sessions is not an array`},
		{"trailing data", valid + `{}`, `3:3: data after the document`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			fs, err := NewFileStore(dir)
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(dir, "pool.json")
			if err := os.WriteFile(path, []byte(tc.doc), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err = Open(context.Background(), Options{Store: fs, PersistStateKey: "pool"})
			if !errors.Is(err, ErrInvalidState) {
				t.Fatalf("Open: %v, want ErrInvalidState", err)
			}
			if !strings.Contains(err.Error(), `"pool"`) {
				t.Errorf("error does not name the key: %v", err)
			}
			if !regexp.MustCompile(tc.want).MatchString(err.Error()) {
				t.Errorf("error %q does not match %q", err, tc.want)
			}
			after, _ := os.ReadFile(path)
			if string(after) != tc.doc {
				t.Errorf("the file was changed")
			}
		})
	}
	// The valid document itself loads (the table's base is right).
	store := NewMemoryStore()
	store.Set(context.Background(), "pool", []byte(valid))
	clock := func() time.Time { return time.Date(2026, 11, 27, 10, 10, 0, 0, time.UTC) }
	p := openPool(t, Options{Store: store, PersistStateKey: "pool", Now: clock})
	if _, err := p.GetSessionByID(context.Background(), "a"); err != nil {
		t.Errorf("valid document: %v", err)
	}
}

func TestOpenIgnoresUnknownFields(t *testing.T) {
	doc := `{"version":2,"future":{"x":[1,2]},"sessions":[{"id":"a","newField":true,"cookies":null,"maxErrorScore":3,"errorScoreDecrement":0.5,"createdAt":"2026-11-27T10:00:00Z","expiresAt":"2026-11-27T10:50:00Z","usageCount":1,"maxUsageCount":50,"errorScore":0.5}],"more":null}`
	store := NewMemoryStore()
	store.Set(context.Background(), DefaultPersistStateKey, []byte(doc))
	clock := func() time.Time { return time.Date(2026, 11, 27, 10, 10, 0, 0, time.UTC) }
	p := openPool(t, Options{Store: store, Now: clock})
	s, err := p.GetSessionByID(context.Background(), "a")
	if err != nil {
		t.Fatal(err)
	}
	if s.UsageCount() != 1 || s.ErrorScore() != 0.5 || len(s.UserData()) != 0 {
		t.Errorf("restored %+v", s.State())
	}
}

func TestOpenWithoutDocument(t *testing.T) {
	fs, err := NewFileStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	p := openPool(t, Options{Store: fs})
	if held(p) != 0 {
		t.Errorf("held %d", held(p))
	}
}

// failingStore fails every call.
type failingStore struct{ err error }

func (f failingStore) Get(context.Context, string) ([]byte, error) { return nil, f.err }
func (f failingStore) Set(context.Context, string, []byte) error   { return f.err }
func (f failingStore) Delete(context.Context, string) error        { return f.err }

func TestStoreErrors(t *testing.T) {
	boom := errors.New("disk on fire")
	if _, err := Open(context.Background(), Options{Store: failingStore{boom}}); !errors.Is(err, boom) {
		t.Errorf("Open with a failing Get: %v", err)
	}
	store := &switchStore{mem: NewMemoryStore()}
	p, err := Open(context.Background(), Options{Store: store})
	if err != nil {
		t.Fatal(err)
	}
	store.fail.Store(true)
	if err := p.PersistState(context.Background()); !errors.Is(err, errSwitch) {
		t.Errorf("PersistState: %v", err)
	}
	if err := p.Teardown(context.Background()); !errors.Is(err, errSwitch) {
		t.Errorf("Teardown: %v", err)
	}
	if _, err := p.GetSession(context.Background()); !errors.Is(err, ErrPoolClosed) {
		t.Errorf("a failed Teardown left the pool open: %v", err)
	}
}

// TestPersistSkipsUnchanged: the persist loop writes only when something
// changed since the last write (on synctest's clock: the loop ticks a
// hundred times while the test sleeps); PersistState always writes.
func TestPersistSkipsUnchanged(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := &notifyStore{mem: NewMemoryStore(), sets: make(chan struct{}, 1000)}
		var reported atomic.Int64
		p := openPool(t, Options{Store: store, PersistInterval: time.Millisecond,
			OnPersist: func(time.Duration, error) { reported.Add(1) }})
		x, err := p.AddSession(context.Background(), SessionOptions{ID: "x"})
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
		if n := len(store.sets); n != 1 {
			t.Fatalf("an unchanged pool was written %d times in 100 ticks, want once", n)
		}
		x.MarkBad()
		time.Sleep(100 * time.Millisecond)
		if n := len(store.sets); n != 2 {
			t.Errorf("after one change the pool was written %d times, want 2", n)
		}
		// An explicit PersistState writes whatever changed.
		if err := p.PersistState(context.Background()); err != nil {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
		if n := len(store.sets); n != 3 {
			t.Errorf("a PersistState and 100 idle ticks wrote %d times in all, want 3", n)
		}
		if n := reported.Load(); n != 3 {
			t.Errorf("OnPersist saw %d persists, want the 3 that wrote", n)
		}
	})
}

func TestPeriodicPersistence(t *testing.T) {
	store := &notifyStore{mem: NewMemoryStore(), sets: make(chan struct{}, 100)}
	p, err := Open(context.Background(), Options{Store: store, PersistInterval: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	x, err := p.AddSession(context.Background(), SessionOptions{ID: "x"})
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		<-store.sets // persisted by the loop, without PersistState
		x.MarkGood() // a change, for the next one to write
	}
	if err := p.Teardown(context.Background()); err != nil {
		t.Fatal(err)
	}
	// Drain, then check that nothing persists after Teardown returned.
	n := len(store.sets)
	data, err := store.Get(context.Background(), DefaultPersistStateKey)
	if err != nil || !bytes.Contains(data, []byte(`"id":"x"`)) {
		t.Errorf("persisted %s, %v", data, err)
	}
	select {
	case <-p.done:
	default:
		t.Error("the persist loop still runs after Teardown")
	}
	if len(store.sets) != n {
		t.Errorf("persisted after Teardown")
	}
}

func TestFileStore(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "new")
	fs, err := NewFileStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fs.Get(ctx, "k"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get absent: %v", err)
	}
	if err := fs.Set(ctx, "k", []byte("one")); err != nil {
		t.Fatal(err)
	}
	if err := fs.Set(ctx, "k", []byte("two")); err != nil {
		t.Fatal(err)
	}
	if got, err := fs.Get(ctx, "k"); err != nil || string(got) != "two" {
		t.Errorf("Get = %q, %v", got, err)
	}
	info, err := os.Stat(filepath.Join(dir, "k.json"))
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode().Perm() != 0o600 {
		t.Errorf("file mode %v, want 0600", info.Mode().Perm())
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("directory holds %d entries (temporary files left?)", len(entries))
	}
	if err := fs.Delete(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	if err := fs.Delete(ctx, "k"); err != nil {
		t.Errorf("deleting an absent key: %v", err)
	}
	if _, err := fs.Get(ctx, "k"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get after Delete: %v", err)
	}
	// The longest key there is makes files the file system takes.
	longest := strings.Repeat("k", maxKeyLen)
	if err := fs.Set(ctx, longest, []byte("x")); err != nil {
		t.Errorf("Set with a key of %d bytes: %v", len(longest), err)
	}
	if err := fs.Delete(ctx, longest); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"", "a/b", `a\b`, "..", "a..b", "../x", "a\x00b", longest + "k"} {
		if err := fs.Set(ctx, key, []byte("x")); !errors.Is(err, ErrInvalidKey) {
			t.Errorf("Set(%q): %v, want ErrInvalidKey", key, err)
		}
		if _, err := fs.Get(ctx, key); !errors.Is(err, ErrInvalidKey) {
			t.Errorf("Get(%q): %v, want ErrInvalidKey", key, err)
		}
		if err := fs.Delete(ctx, key); !errors.Is(err, ErrInvalidKey) {
			t.Errorf("Delete(%q): %v, want ErrInvalidKey", key, err)
		}
	}
	if _, err := Open(ctx, Options{Store: fs, PersistStateKey: "../escape"}); !errors.Is(err, ErrInvalidOptions) {
		t.Errorf("Open with a bad key: %v", err)
	} else if want := `open pool: sessionpool: invalid options: PersistStateKey "../escape" holds a path separator or NUL`; err.Error() != want {
		t.Errorf("Open with a bad key: %q, want %q (the sentinel's prefix once)", err, want)
	}
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	if err := fs.Set(canceled, "k", nil); !errors.Is(err, context.Canceled) {
		t.Errorf("Set with a canceled context: %v", err)
	}
	if _, err := NewFileStore(""); err == nil {
		t.Error("NewFileStore(\"\") succeeded")
	}
}

// TestFileStoreRemovesLeftovers: NewFileStore deletes the temporary files
// of writes a crash interrupted (they hold cookies and credentials), of this
// version and of earlier ones, and nothing else.
func TestFileStoreRemovesLeftovers(t *testing.T) {
	dir := t.TempDir()
	keep := []string{"k.json", "notes.txt", "k.json.tmp-abc", ".k.json.tmp-short"}
	leftovers := []string{".k.json.tmp-" + strings.Repeat("A", 26), "k.json.tmp-123456789"}
	for _, n := range append(slices.Clone(keep), leftovers...) {
		if err := os.WriteFile(filepath.Join(dir, n), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := NewFileStore(dir); err != nil {
		t.Fatal(err)
	}
	var got []string
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		got = append(got, e.Name())
	}
	slices.Sort(keep)
	if !slices.Equal(got, keep) {
		t.Errorf("after NewFileStore: %q, want %q", got, keep)
	}
}

func TestMemoryStore(t *testing.T) {
	ctx := context.Background()
	m := NewMemoryStore()
	if _, err := m.Get(ctx, "k"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get absent: %v", err)
	}
	v := []byte("abc")
	m.Set(ctx, "k", v)
	v[0] = 'X'
	got, _ := m.Get(ctx, "k")
	if string(got) != "abc" {
		t.Errorf("the store shares the caller's slice: %q", got)
	}
	got[1] = 'Y'
	if again, _ := m.Get(ctx, "k"); string(again) != "abc" {
		t.Errorf("Get returned the stored slice: %q", again)
	}
	m.Delete(ctx, "k")
	if _, err := m.Get(ctx, "k"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get after Delete: %v", err)
	}
}

// TestPersistLargeDocument persists a document of many chunks through the
// three write paths (FileStore streaming, MemoryStore chunks, a plain Store
// getting one slice): the documents are identical and load back whole.
func TestPersistLargeDocument(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	fs, err := NewFileStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	plain := &notifyStore{mem: NewMemoryStore(), sets: make(chan struct{}, 1)}
	stores := map[string]Store{"file": fs, "memory": NewMemoryStore(), "plain": plain}
	p := openPool(t, Options{MaxPoolSize: 3000, Now: clock})
	u, _ := url.Parse("https://example.com/")
	for i := range 3000 {
		s, err := p.GetSession(ctx)
		if err != nil {
			t.Fatal(err)
		}
		s.SetCookies(u, []*http.Cookie{{Name: "a", Value: strings.Repeat("x", 200)}, {Name: "b", Value: strings.Repeat("y", i%300)}})
	}
	snaps, usable := p.snapshot(now)
	want := encodeDoc(usable, len(snaps)-usable, snaps, now)
	if len(want) < 2*chunkSize {
		t.Fatalf("document of %d bytes: too small to span chunks", len(want))
	}
	for name, store := range stores {
		p.store, p.key, p.persisted = store, "big", false // a new store: write whatever changed
		if err := p.PersistState(ctx); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		got, err := store.Get(ctx, "big")
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s: document of %d bytes differs from the %d expected", name, len(got), len(want))
		}
		p2 := openPool(t, Options{Store: store, PersistStateKey: "big", Now: clock})
		if n := p2.UsableSessionsCount(); n != 3000 {
			t.Errorf("%s: %d sessions restored, want 3000", name, n)
		}
	}
	p.store = nil
}
