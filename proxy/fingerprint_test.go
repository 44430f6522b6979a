package proxy

import (
	"crypto/tls"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/sessionproxy/sessionproxy/proxy/config"
	"github.com/sessionproxy/sessionproxy/proxy/record"
	"github.com/sessionproxy/sessionproxy/sessionpool"
	"github.com/sessionproxy/sessionproxy/sessionpool/sessionpooltest"
)

// TestFingerprintRandomDraw: with random, each new session draws one of the
// browser profiles and keeps it; many sessions see more than one.
func TestFingerprintRandomDraw(t *testing.T) {
	cfg := testConfig(t)
	cfg.Fingerprint = config.FingerprintRandom
	h := startProxy(t, cfg)
	seen := map[string]int{}
	drawn := map[string]string{}
	for range 40 {
		st := h.addSession("")
		switch st.Fingerprint {
		case "chrome", "firefox", "safari", "edge":
		default:
			t.Fatalf("random drew %q", st.Fingerprint)
		}
		seen[st.Fingerprint]++
		drawn[st.ID] = st.Fingerprint
	}
	if len(seen) < 2 {
		t.Errorf("40 sessions all drew %v", seen)
	}
	for id, want := range drawn {
		if got := mustHeld(t, h, id).Fingerprint(); got != want {
			t.Errorf("session %s drew %q, keeps %q", id, want, got)
		}
	}
}

// TestFingerprintRestart: sessions keep their fingerprint across a restart
// whatever the key says then, and sessions from a state file written
// before fingerprints were kept use the configured mode.
func TestFingerprintRestart(t *testing.T) {
	cfg := testConfig(t)
	cfg.Fingerprint = config.FingerprintRandom
	h := startProxy(t, cfg)
	drawn := map[string]string{}
	for range 8 {
		st := h.addSession("")
		drawn[st.ID] = st.Fingerprint
	}
	h.stop()
	cfg.Fingerprint = config.FingerprintGo
	h = startProxy(t, cfg)
	for id, want := range drawn {
		if got := stateOf(t, h, id).Fingerprint; got != want {
			t.Errorf("after a restart session %s shows %q, want %q", id, got, want)
		}
	}
	h.stop()

	// The same state without the fingerprints, as written before them.
	files, _ := filepath.Glob(filepath.Join(cfg.DataDir, "*"))
	stripped := 0
	for _, f := range files {
		doc, err := os.ReadFile(f)
		if err != nil || !strings.Contains(string(doc), `"fingerprint"`) {
			continue
		}
		re := regexp.MustCompile(`,"fingerprint":"[a-z]+"`)
		stripped += len(re.FindAll(doc, -1))
		if err := os.WriteFile(f, re.ReplaceAll(doc, nil), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if stripped != len(drawn) {
		t.Fatalf("stripped %d fingerprints from %v, want %d", stripped, files, len(drawn))
	}
	cfg.Fingerprint = config.FingerprintFirefox
	h = startProxy(t, cfg)
	for id := range drawn {
		if got := stateOf(t, h, id).Fingerprint; got != "firefox" {
			t.Errorf("old session %s shows %q, want the configured firefox", id, got)
		}
		if got := mustHeld(t, h, id).Fingerprint(); got != "" {
			t.Errorf("old session %s was given %q: it should follow the key", id, got)
		}
	}
}

// TestFingerprintRequestLog: the request log names the answering session's
// fingerprint.
func TestFingerprintRequestLog(t *testing.T) {
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) }))
	defer origin.Close()
	cfg := testConfig(t)
	cfg.Fingerprint = config.FingerprintGo
	h := startProxy(t, cfg)
	h.addSession(`{"id": "ff", "fingerprint": "firefox"}`)
	c := h.client("", "")
	get(t, c, origin.URL+"/a", "ff")
	get(t, c, origin.URL+"/b", "other")
	var all struct{ Requests []record.Request }
	if code := h.adminGet("/requests", "", &all); code != http.StatusOK || len(all.Requests) != 2 {
		t.Fatalf("GET /requests: %d, %d requests", code, len(all.Requests))
	}
	if b, a := all.Requests[0], all.Requests[1]; a.Fingerprint != "firefox" || b.Fingerprint != "go" {
		t.Errorf("logged fingerprints %q (ff), %q (other); want firefox, go", a.Fingerprint, b.Fingerprint)
	}
}

// mustHeld returns the one session the pools hold as id.
func mustHeld(t *testing.T, h *harness, id string) *sessionpool.Session {
	t.Helper()
	held := h.srv.heldSessions(id, "", false)
	if len(held) != 1 {
		t.Fatalf("session %s held %d times", id, len(held))
	}
	return held[0]
}

// TestFingerprintReload: a reloaded fingerprint key applies to the sessions
// created after it; the earlier ones keep theirs.
func TestFingerprintReload(t *testing.T) {
	dir := t.TempDir()
	base := "listen: 127.0.0.1:0\nadmin_listen: 127.0.0.1:0\ndata_dir: " + filepath.Join(dir, "data") + "\n"
	path := writeConfig(t, dir, base+"fingerprint: chrome\n")
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	h := startProxy(t, cfg)
	before := h.addSession("")
	writeConfig(t, dir, base+"fingerprint: edge\n")
	if restart, err := h.srv.Reload(); err != nil || len(restart) != 0 {
		t.Fatalf("Reload: %v, restart needed for %q", err, restart)
	}
	after := h.addSession("")
	if before.Fingerprint != "chrome" || after.Fingerprint != "edge" {
		t.Errorf("fingerprints before and after the reload: %q, %q; want chrome, edge", before.Fingerprint, after.Fingerprint)
	}
	if got := stateOf(t, h, before.ID).Fingerprint; got != "chrome" {
		t.Errorf("the session created before the reload now shows %q", got)
	}
}

// TestFingerprintRedis: in a Redis pool a session's fingerprint is the
// same for every proxy sharing it, whatever each one's key says.
func TestFingerprintRedis(t *testing.T) {
	rs := sessionpooltest.Start(t)
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) }))
	defer origin.Close()
	cfgA, cfgB := redisConfig(t, rs.URL(0)), redisConfig(t, rs.URL(0))
	cfgA.Fingerprint, cfgB.Fingerprint = config.FingerprintRandom, config.FingerprintGo
	a, b := startProxy(t, cfgA), startProxy(t, cfgB)
	drawn := map[string]string{}
	for range 6 {
		st := a.addSession("")
		drawn[st.ID] = st.Fingerprint
	}
	get(t, a.client("", ""), origin.URL+"/", "by-a") // created by A's CreateSessionFunc
	drawn["by-a"] = mustHeld(t, a, "by-a").Fingerprint()
	for id, want := range drawn {
		if got := stateOf(t, b, id).Fingerprint; got != want || want == "go" {
			t.Errorf("session %s: B shows %q, A drew %q", id, got, want)
		}
	}
}

// TestFingerprintSessionModeUnderGo: a session keeps its own mode when the
// configured one is go (made before a reload to go, or by POST /sessions):
// a mirror session sends its client's own hello, where it sent the
// fallback profile's (Chrome's, with GREASE, which Go's client never
// sends) because the request carried nothing of its client.
func TestFingerprintSessionModeUnderGo(t *testing.T) {
	suites := make(chan []uint16, 4)
	origin := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) }))
	origin.TLS = &tls.Config{GetConfigForClient: func(hi *tls.ClientHelloInfo) (*tls.Config, error) {
		suites <- slices.Clone(hi.CipherSuites)
		return nil, nil
	}}
	origin.StartTLS()
	defer origin.Close()
	cfg := testConfig(t)
	cfg.Pool.Scope = config.ScopeGlobal
	cfg.Fingerprint = config.FingerprintGo
	trustOrigin(t, cfg, origin)
	h := startProxy(t, cfg)
	if st := h.addSession(`{"id": "m", "fingerprint": "mirror"}`); st.Fingerprint != "mirror" {
		t.Fatalf("session made with %q", st.Fingerprint)
	}
	resp, body := get(t, h.client("", ""), origin.URL+"/", "m") // a Go client: no GREASE
	if resp.StatusCode != http.StatusOK || resp.Header.Get("X-Session-Id") != "m" {
		t.Fatalf("%d %q, session %q", resp.StatusCode, body, resp.Header.Get("X-Session-Id"))
	}
	got := <-suites
	if slices.ContainsFunc(got, func(s uint16) bool { return s&0x0f0f == 0x0a0a && s>>8 == s&0xff }) {
		t.Errorf("the mirror session's origin got GREASE cipher suites (%x): the fallback's hello, not the Go client's own", got)
	}
}
