package proxy

import (
	"encoding/base64"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/elazarl/goproxy"

	"github.com/sessionproxy/sessionproxy/proxy/upstream"
)

// userRecorder is an upstream goproxy that records the Basic user name of
// every request and CONNECT it forwards.
type userRecorder struct {
	mu    sync.Mutex
	users []string
}

func (r *userRecorder) record(req *http.Request) {
	user := "-"
	if b, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(req.Header.Get("Proxy-Authorization"), "Basic ")); err == nil {
		user, _, _ = strings.Cut(string(b), ":")
	}
	r.mu.Lock()
	r.users = append(r.users, user)
	r.mu.Unlock()
}

// take returns the user names recorded since the last take.
func (r *userRecorder) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.users
	r.users = nil
	return out
}

func startUserRecorder(t *testing.T) (*userRecorder, string) {
	rec := &userRecorder{}
	gp := goproxy.NewProxyHttpServer()
	gp.Logger = log.New(io.Discard, "", 0)
	gp.KeepAcceptEncoding = true
	gp.OnRequest().HandleConnectFunc(func(host string, ctx *goproxy.ProxyCtx) (*goproxy.ConnectAction, string) {
		rec.record(ctx.Req)
		return goproxy.OkConnect, host
	})
	gp.OnRequest().DoFunc(func(r *http.Request, _ *goproxy.ProxyCtx) (*http.Request, *http.Response) {
		rec.record(r)
		return r, nil
	})
	srv := httptest.NewServer(gp)
	t.Cleanup(srv.Close)
	return rec, srv.Listener.Addr().String()
}

// TestUpstreamSessionPlaceholder: {session} in an upstream's user name
// becomes each session's id, so every session reaches the upstream under
// its own name (a provider's sticky exit IP), over plain HTTP and through
// interception; the admin API shows the rendered URL without its password,
// and a session added with a templated proxyUrl gets it rendered too.
func TestUpstreamSessionPlaceholder(t *testing.T) {
	origin := httptest.NewServer(originMux())
	defer origin.Close()
	tlsOrigin := httptest.NewTLSServer(originMux())
	defer tlsOrigin.Close()
	rec, addr := startUserRecorder(t)

	cfg := testConfig(t)
	trustOrigin(t, cfg, tlsOrigin)
	u, err := upstream.Parse("http://cust-session-{session}:pw-secret@" + addr)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Upstreams = []*url.URL{u}
	h := startProxy(t, cfg)
	c := h.client("", "")

	for _, tc := range []struct{ session, user string }{
		{"alice", "cust-session-alice"},
		{"bob.2", "cust-session-bob2"},
	} {
		for _, o := range []string{origin.URL, tlsOrigin.URL} {
			if resp, body := get(t, c, o+"/echo", tc.session); resp.StatusCode != http.StatusOK {
				t.Fatalf("%s to %s: %d %s", tc.session, o, resp.StatusCode, body)
			}
		}
		if got := rec.take(); len(got) != 2 || got[0] != tc.user || got[1] != tc.user {
			t.Errorf("session %s reached the upstream as %q, want %q twice", tc.session, got, tc.user)
		}
		st := stateOf(t, h, tc.session)
		if want := "http://" + tc.user + ":xxxxx@" + addr; st.ProxyURL != want {
			t.Errorf("admin shows %q, want %q", st.ProxyURL, want)
		}
	}

	// A pool session's generated id is rendered the same way.
	resp, _ := get(t, c, origin.URL+"/echo", "")
	id := resp.Header.Get("X-Session-Id")
	if got, want := rec.take(), "cust-session-"+strings.ReplaceAll(id, "_", ""); len(got) != 1 || got[0] != want {
		t.Errorf("pool session %s reached the upstream as %q, want %q", id, got, want)
	}

	// A session added through the admin API with a templated proxyUrl.
	r := h.admin(http.MethodPost, "/sessions", "application/json",
		`{"id":"carol","proxyUrl":"http://named-{session}:pw-secret@`+addr+`"}`)
	if r.status != http.StatusCreated {
		t.Fatalf("POST /sessions: %d %s", r.status, r.body)
	}
	get(t, c, origin.URL+"/echo", "carol")
	if got := rec.take(); len(got) != 1 || got[0] != "named-carol" {
		t.Errorf("carol reached the upstream as %q, want named-carol", got)
	}
}
