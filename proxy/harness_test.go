package proxy

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/sessionproxy/sessionproxy/proxy/config"
	"github.com/sessionproxy/sessionproxy/sessionpool"
)

// harness is one running proxy for an end-to-end test: the real Server on
// loopback listeners from :0, and a CA pool that trusts only its CA.
type harness struct {
	t        *testing.T
	srv      *Server
	cfg      *config.Config
	proxyURL *url.URL
	adminURL string
	caPool   *x509.CertPool
}

// testConfig is config.Default() with a fresh data directory and everything on
// loopback ports from :0.
func testConfig(t *testing.T) *config.Config {
	cfg := config.Default()
	cfg.DataDir = t.TempDir()
	cfg.Listen = "127.0.0.1:0"
	cfg.AdminListen = "127.0.0.1:0"
	return cfg
}

// startProxy runs a Server on cfg until the test ends.
func startProxy(t *testing.T, cfg *config.Config) *harness {
	t.Helper()
	return startProxyLogging(t, cfg, nil)
}

// startProxyLogging is startProxy with the proxy's logs going to logger.
func startProxyLogging(t *testing.T, cfg *config.Config, logger *slog.Logger) *harness {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return startProxyOn(t, Options{Config: cfg, Logger: logger}, ln)
}

// startProxyOn is startProxy with opts (opts.Config is required), serving
// proxy clients on ln.
func startProxyOn(t *testing.T, opts Options, ln net.Listener) *harness {
	t.Helper()
	cfg := opts.Config
	srv, err := Open(context.Background(), opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	adminLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); srv.Serve(ln) }()
	go func() { defer wg.Done(); srv.ServeAdmin(adminLn) }()
	h := &harness{
		t:        t,
		srv:      srv,
		cfg:      cfg,
		proxyURL: &url.URL{Scheme: "http", Host: ln.Addr().String()},
		adminURL: "http://" + adminLn.Addr().String(),
		caPool:   certPoolOf(t, srv.CA().CertPEM()),
	}
	t.Cleanup(func() {
		h.stop()
		wg.Wait()
	})
	return h
}

// stop shuts the proxy down (idempotent), as SIGTERM would.
func (h *harness) stop() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := h.srv.Shutdown(ctx); err != nil {
		h.t.Errorf("Shutdown: %v", err)
	}
}

// client returns an HTTP client that uses the proxy and trusts only its CA.
// user, when set, becomes the proxy username (password pass).
func (h *harness) client(user, pass string) *http.Client {
	pu := *h.proxyURL
	if user != "" {
		pu.User = url.UserPassword(user, pass)
	}
	return &http.Client{
		Transport: &http.Transport{
			Proxy:           http.ProxyURL(&pu),
			TLSClientConfig: &tls.Config{RootCAs: h.caPool},
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Timeout:       30 * time.Second,
	}
}

// get sends a GET through c, naming session (when not "") in the session
// header, and returns the response with its body read.
func get(t *testing.T, c *http.Client, rawURL, session string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, rawURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	if session != "" {
		req.Header.Set("X-Session-Id", session)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", rawURL, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: read body: %v", rawURL, err)
	}
	return resp, string(body)
}

// originSeen is what the origin saw of one request.
type originSeen struct {
	Cookie         string      `json:"cookie"`
	Header         http.Header `json:"header"`
	ProtoMajor     int         `json:"protoMajor"`
	RemoteAddr     string      `json:"remoteAddr"`
	AcceptEncoding string      `json:"acceptEncoding"`
}

// originMux is the test origin:
//
//	/set?name=N&value=V   sets cookie N=V (Path=/)
//	/echo                 answers originSeen as JSON
//	/status?code=C        answers status C
func originMux() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("/set", func(w http.ResponseWriter, r *http.Request) {
		http.SetCookie(w, &http.Cookie{Name: r.URL.Query().Get("name"), Value: r.URL.Query().Get("value"), Path: "/"})
		io.WriteString(w, "set\n")
	})
	mux.HandleFunc("/echo", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(originSeen{
			Cookie: r.Header.Get("Cookie"), Header: r.Header, ProtoMajor: r.ProtoMajor,
			RemoteAddr: r.RemoteAddr, AcceptEncoding: r.Header.Get("Accept-Encoding"),
		})
	})
	mux.HandleFunc("/status", func(w http.ResponseWriter, r *http.Request) {
		code, err := strconv.Atoi(r.URL.Query().Get("code"))
		if err != nil {
			code = http.StatusBadRequest
		}
		w.WriteHeader(code)
		io.WriteString(w, http.StatusText(code))
	})
	return mux
}

func decodeSeen(t *testing.T, body string) originSeen {
	t.Helper()
	var s originSeen
	if err := json.Unmarshal([]byte(body), &s); err != nil {
		t.Fatalf("origin answer %q: %v", body, err)
	}
	return s
}

// origins starts an HTTP and an HTTPS origin serving handler until the
// test ends, and a test config that trusts the HTTPS one.
func origins(t *testing.T, handler http.Handler) (plain, secure *httptest.Server, cfg *config.Config) {
	plain = httptest.NewServer(handler)
	t.Cleanup(plain.Close)
	secure = httptest.NewTLSServer(handler)
	t.Cleanup(secure.Close)
	cfg = testConfig(t)
	trustOrigin(t, cfg, secure)
	return plain, secure, cfg
}

// trustOrigin makes the proxy trust the TLS origin's certificate for
// upstream TLS, through a file in mitm.upstream_ca.
func trustOrigin(t *testing.T, cfg *config.Config, origin *httptest.Server) {
	t.Helper()
	trustCA(t, cfg, certPEMOf(origin))
}

// trustCA makes cfg trust origins whose certificates caPEM signs (it goes
// into a file of mitm.upstream_ca).
func trustCA(t *testing.T, cfg *config.Config, caPEM []byte) {
	t.Helper()
	f := filepath.Join(t.TempDir(), "origin-ca.pem")
	if err := os.WriteFile(f, caPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	cfg.MITM.UpstreamCA = append(cfg.MITM.UpstreamCA, f)
}

// certPEMOf returns a TLS test server's certificate as PEM.
func certPEMOf(srv *httptest.Server) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
}

// writeCertPEM writes a TLS test server's certificate to path.
func writeCertPEM(tb testing.TB, path string, srv *httptest.Server) {
	tb.Helper()
	if err := os.WriteFile(path, certPEMOf(srv), 0o644); err != nil {
		tb.Fatal(err)
	}
}

// certPoolOf returns a pool holding the PEM certificates.
func certPoolOf(tb testing.TB, pemBytes []byte) *x509.CertPool {
	tb.Helper()
	p := x509.NewCertPool()
	if !p.AppendCertsFromPEM(pemBytes) {
		tb.Fatal("no certificate in PEM")
	}
	return p
}

// adminGet fetches an admin endpoint and decodes its JSON into v (when v is
// not nil), returning the status.
func (h *harness) adminGet(path, token string, v any) int {
	h.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, h.adminURL+path, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatalf("admin GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	if v != nil {
		if err := json.NewDecoder(resp.Body).Decode(v); err != nil && !errors.Is(err, io.EOF) {
			h.t.Fatalf("admin GET %s: decode: %v", path, err)
		}
	}
	return resp.StatusCode
}

// originSite is the site of the tests' origins: an IP literal is its own
// site.
const originSite = "127.0.0.1"

// pool returns the proxy's pool of the tests' origins' site.
func (h *harness) pool() *sessionpool.Pool {
	h.t.Helper()
	return sitePoolOf(h.t, h.srv, originSite)
}

// sitePoolOf returns srv's pool of site, opening it.
func sitePoolOf(tb testing.TB, srv *Server, site string) *sessionpool.Pool {
	tb.Helper()
	p, err := srv.Sites().Pool(context.Background(), site)
	if err != nil {
		tb.Fatal(err)
	}
	return p
}
