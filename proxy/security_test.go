package proxy

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/sessionproxy/sessionproxy/proxy/mitm"
)

// TestAdminBearerSchemeAnyCase: the scheme of the admin token is
// case-insensitive (RFC 7235); the token itself is not.
func TestAdminBearerSchemeAnyCase(t *testing.T) {
	h := startAdminProxy(t)
	for _, tc := range []struct {
		auth string
		want int
	}{
		{"Bearer " + h.cfg.AdminToken, http.StatusOK},
		{"bearer " + h.cfg.AdminToken, http.StatusOK},
		{"BEARER " + h.cfg.AdminToken, http.StatusOK},
		{"bEaReR " + h.cfg.AdminToken, http.StatusOK},
		{"Bearer S3CRET-TOKEN", http.StatusUnauthorized},
		{"Basic " + h.cfg.AdminToken, http.StatusUnauthorized},
		{"Bearer", http.StatusUnauthorized},
	} {
		req, err := http.NewRequest(http.MethodGet, h.adminURL+"/stats", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", tc.auth)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("Authorization %q: %d, want %d", tc.auth, resp.StatusCode, tc.want)
		}
	}
}

// TestRetirementLogLevels: a session that wore out (max_usage_count uses)
// logs its retirement at DEBUG; one retired by a rule logs at INFO; both
// name the site and the session's fingerprint mode.
func TestRetirementLogLevels(t *testing.T) {
	origin := httptest.NewServer(originMux())
	defer origin.Close()
	var buf syncBuffer
	logger := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	cfg := testConfig(t)
	cfg.Pool.Session.MaxUsageCount = 2
	h := startProxyLogging(t, cfg, logger)
	c := h.client("", "")
	for range 2 {
		get(t, c, origin.URL+"/echo", "worn")
	}
	get(t, c, origin.URL+"/status?code=429", "blocked")
	h.stop()
	levels := map[string]string{}
	for _, l := range strings.Split(buf.String(), "\n") {
		if !strings.Contains(l, `"msg":"session retired"`) {
			continue
		}
		var line struct{ Level, Session, Site, Fingerprint string }
		if err := json.Unmarshal([]byte(l), &line); err != nil {
			t.Fatal(err)
		}
		levels[line.Session] = line.Level
		if line.Site != "127.0.0.1" || line.Fingerprint != "mirror" {
			t.Errorf("retirement of %s names site %q and fingerprint %q, want 127.0.0.1 and mirror", line.Session, line.Site, line.Fingerprint)
		}
	}
	if want := map[string]string{"worn": "DEBUG", "blocked": "INFO"}; !reflect.DeepEqual(levels, want) {
		t.Errorf("retirement levels %v, want %v\n%s", levels, want, buf.String())
	}
}

// TestAdminRefusesForeignHostsOriginsAndTypes: with the default config (no
// admin_token), the admin API answers only requests for its own address
// (or a name in admin_hosts), from its own origin, with JSON bodies; what
// it refuses changes nothing.
func TestAdminRefusesForeignHostsOriginsAndTypes(t *testing.T) {
	cfg := testConfig(t)
	cfg.AdminHosts = []string{"admin.example", "ops.example:8081"}
	h := startProxy(t, cfg)
	h.addSession(`{"id": "held"}`)
	own := strings.TrimPrefix(h.adminURL, "http://")
	_, port, _ := net.SplitHostPort(own)
	jar := "# Netscape HTTP Cookie File\nexample.com\tFALSE\t/\tFALSE\t0\ta\t1\n"
	for _, tc := range []struct {
		name                      string
		method, path, host, ctype string
		body                      string
		header                    map[string]string
		want                      int
	}{
		{name: "own address", method: "GET", path: "/sessions", want: 200},
		{name: "localhost and the port", method: "GET", path: "/sessions", host: "localhost:" + port, want: 200},
		{name: "LOCALHOST in capitals", method: "GET", path: "/sessions", host: "LOCALHOST:" + port, want: 200},
		{name: "rebound name", method: "GET", path: "/sessions", host: "rebind.attacker.example:" + port, want: 421},
		{name: "rebound name without port", method: "GET", path: "/sessions", host: "rebind.attacker.example", want: 421},
		{name: "own IP, other port", method: "GET", path: "/sessions", host: "127.0.0.1:1", want: 421},
		{name: "localhost, other port", method: "GET", path: "/sessions", host: "localhost:1", want: 421},
		{name: "rebound name, healthz", method: "GET", path: "/healthz", host: "rebind.attacker.example", want: 421},
		{name: "admin_hosts name, any port", method: "GET", path: "/sessions", host: "Admin.Example:9999", want: 200},
		{name: "admin_hosts host:port", method: "GET", path: "/sessions", host: "ops.example:8081", want: 200},
		{name: "admin_hosts host:port, other port", method: "GET", path: "/sessions", host: "ops.example:8082", want: 421},

		{name: "cross-origin POST", method: "POST", path: "/sessions", ctype: "application/json", body: `{"id": "evil"}`,
			header: map[string]string{"Origin": "http://evil.example"}, want: 403},
		{name: "cross-origin POST, text/plain", method: "POST", path: "/sessions", ctype: "text/plain", body: `{"id": "evil"}`,
			header: map[string]string{"Origin": "http://evil.example", "Sec-Fetch-Site": "cross-site"}, want: 403},
		{name: "null origin", method: "POST", path: "/persist", header: map[string]string{"Origin": "null"}, want: 403},
		{name: "cross-site GET of sessions", method: "GET", path: "/sessions", header: map[string]string{"Sec-Fetch-Site": "cross-site"}, want: 403},
		{name: "same-site GET of sessions", method: "GET", path: "/sessions", header: map[string]string{"Sec-Fetch-Site": "same-site"}, want: 403},
		{name: "cross-origin reload", method: "POST", path: "/reload", header: map[string]string{"Origin": "http://localhost:1"}, want: 403},
		{name: "cross-origin mark", method: "POST", path: "/sessions/held/bad", header: map[string]string{"Sec-Fetch-Site": "cross-site"}, want: 403},
		{name: "cross-origin retire", method: "DELETE", path: "/sessions/held", header: map[string]string{"Origin": "http://evil.example"}, want: 403},
		{name: "same-origin POST", method: "POST", path: "/sessions", ctype: "application/json", body: `{"id": "mine"}`,
			header: map[string]string{"Origin": "http://" + own, "Sec-Fetch-Site": "same-origin"}, want: 201},
		{name: "typed URL", method: "GET", path: "/", header: map[string]string{"Sec-Fetch-Site": "none"}, want: 200},
		{name: "cross-origin CA", method: "GET", path: "/ca.pem", header: map[string]string{"Origin": "http://evil.example", "Sec-Fetch-Site": "cross-site"}, want: 200},
		{name: "cross-origin SPKI", method: "GET", path: "/ca.spki", header: map[string]string{"Sec-Fetch-Site": "cross-site"}, want: 200},
		{name: "cross-origin healthz", method: "GET", path: "/healthz", header: map[string]string{"Sec-Fetch-Site": "cross-site"}, want: 200},

		{name: "POST text/plain", method: "POST", path: "/sessions", ctype: "text/plain", body: `{"id": "plain"}`, want: 415},
		{name: "POST form", method: "POST", path: "/sessions", ctype: "application/x-www-form-urlencoded", body: `{"id": "form"}`, want: 415},
		{name: "POST no type", method: "POST", path: "/sessions", body: `{"id": "untyped"}`, want: 415},
		{name: "POST bad type", method: "POST", path: "/sessions", ctype: "application/json; =", body: `{"id": "bad"}`, want: 415},
		{name: "POST JSON with charset", method: "POST", path: "/sessions", ctype: "application/json; charset=utf-8", body: `{"id": "j1"}`, want: 201},
		{name: "POST +json", method: "POST", path: "/sessions", ctype: "application/vnd.x+json", body: `{"id": "j2"}`, want: 201},
		{name: "reload text/plain", method: "POST", path: "/reload", ctype: "text/plain", body: "x", want: 415},
		{name: "POST without body", method: "POST", path: "/persist", want: 200},
		{name: "PUT cookies text/plain", method: "PUT", path: "/sessions/held/cookies", ctype: "text/plain", body: jar, want: 200},
		{name: "PUT cookies untyped", method: "PUT", path: "/sessions/held/cookies", body: jar, want: 200},
		{name: "PUT cookies form", method: "PUT", path: "/sessions/held/cookies", ctype: "application/x-www-form-urlencoded", body: jar, want: 415},
		{name: "PUT cookies multipart", method: "PUT", path: "/sessions/held/cookies", ctype: "multipart/form-data; boundary=x", body: jar, want: 415},
		{name: "unknown path keeps 404", method: "POST", path: "/nothing", ctype: "text/plain", body: "x", want: 404},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequest(tc.method, h.adminURL+tc.path, strings.NewReader(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			if tc.body == "" {
				req.Body = nil
			}
			if tc.host != "" {
				req.Host = tc.host
			}
			if tc.ctype != "" {
				req.Header.Set("Content-Type", tc.ctype)
			}
			for k, v := range tc.header {
				req.Header.Set(k, v)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Fatalf("%d %s, want %d", resp.StatusCode, b, tc.want)
			}
			if tc.want >= 400 && !strings.Contains(string(b), `"error"`) {
				t.Errorf("refusal without an error text: %s", b)
			}
			if tc.want == 421 && strings.Contains(string(b), "held") {
				t.Errorf("a refused request got data: %s", b)
			}
		})
	}
	var ids []string
	for _, p := range h.srv.Sites().Pools() {
		for _, sess := range p.Sessions() {
			ids = append(ids, sess.ID())
		}
	}
	slices.Sort(ids)
	if want := []string{"held", "j1", "j2", "mine"}; !slices.Equal(ids, want) {
		t.Errorf("sessions %v, want %v: a refused request added one", ids, want)
	}
	if st := stateOf(t, h, "held"); st.Retired || st.ErrorScore != 0 {
		t.Errorf("a refused request marked or retired held: %+v", st)
	}
}

// FuzzAdminHost: whatever the Host header, adminHostAllowed does not panic,
// and with admin_hosts empty it allows only what names the address the
// request came in on (127.0.0.1:8081 here): that address, or localhost, on
// port 8081.
func FuzzAdminHost(f *testing.F) {
	for _, s := range []string{"127.0.0.1:8081", "localhost:8081", "LOCALHOST.:8081", "[::ffff:127.0.0.1]:8081",
		"rebind.attacker.example", "127.0.0.1", "[::1]:8081", ":8081", "", "127.0.0.1:08081", "admin.example:1"} {
		f.Add(s)
	}
	local := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 8081}
	f.Fuzz(func(t *testing.T, host string) {
		r := httptest.NewRequest(http.MethodGet, "/sessions", nil)
		r.Host = host
		r = r.WithContext(context.WithValue(r.Context(), http.LocalAddrContextKey, net.Addr(local)))
		adminHostAllowed(r, []string{"admin.example", "ops.example:8081"})
		if !adminHostAllowed(r, nil) {
			return
		}
		h, port, err := net.SplitHostPort(host)
		if err != nil || port != "8081" {
			t.Fatalf("Host %q allowed without port 8081", host)
		}
		h = strings.ToLower(strings.TrimSuffix(h, "."))
		if ip, err := netip.ParseAddr(h); h != "localhost" && (err != nil || ip.Unmap() != netip.MustParseAddr("127.0.0.1")) {
			t.Fatalf("Host %q allowed for 127.0.0.1:8081", host)
		}
	})
}

// TestNamedCAMustExist: a CA named by mitm.ca_cert and mitm.ca_key is
// loaded, never generated: with the files missing (a typo) the proxy does
// not start and creates nothing, instead of a CA no client trusts.
func TestNamedCAMustExist(t *testing.T) {
	cfg := testConfig(t)
	dir := filepath.Join(t.TempDir(), "typo")
	cfg.MITM.CACert, cfg.MITM.CAKey = filepath.Join(dir, "ca.pem"), filepath.Join(dir, "ca-key.pem")
	srv, err := Open(context.Background(), Options{Config: cfg})
	if err == nil {
		srv.Shutdown(context.Background())
		t.Fatal("the proxy started with a CA whose files do not exist")
	}
	if !errors.Is(err, mitm.ErrCANotFound) || !strings.Contains(err.Error(), cfg.MITM.CACert) {
		t.Errorf("Open: %v; want mitm.ErrCANotFound naming %s", err, cfg.MITM.CACert)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a CA directory was made at %s (%v)", dir, err)
	}
}
