package proxy

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

const upTestPass = "s3cr3t-Pa55"

// helloHandler answers "hello <proto>" and counts its requests.
func helloHandler(n *atomic.Int64) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		w.Header().Set("X-Accept-Encoding", r.Header.Get("Accept-Encoding"))
		fmt.Fprintf(w, "hello %s", r.Proto)
	})
}

func startHTTPOrigin(t *testing.T, h http.Handler) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

// mergedRoots returns a pool with every certificate of the given pools'
// CAs (test pools are built from one CA each, so re-add by subject).
func mergedRoots(t *testing.T, pems ...[]byte) *x509.CertPool {
	t.Helper()
	pool := x509.NewCertPool()
	for _, p := range pems {
		if !pool.AppendCertsFromPEM(p) {
			t.Fatal("bad PEM")
		}
	}
	return pool
}

func newTestTransports(t *testing.T, opts TransportOptions) *Transports {
	t.Helper()
	ts := NewTransports(opts)
	t.Cleanup(ts.CloseAll)
	return ts
}

func TestUpstreamParse(t *testing.T) {
	for _, tc := range []struct {
		in      string
		ok      bool
		wantMsg string
	}{
		{"", true, ""},
		{"http://127.0.0.1:3128", true, ""},
		{"http://user:" + upTestPass + "@127.0.0.1:3128", true, ""},
		{"https://proxy.example", true, ""},
		{"socks5://u:" + upTestPass + "@10.0.0.2:1080", true, ""},
		{"socks5h://10.0.0.2", true, ""},
		{"http://127.0.0.1:3128/", true, ""},
		{"ftp://127.0.0.1:21", false, "unsupported scheme"},
		{"127.0.0.1:3128", false, "scheme"},
		{"user:" + upTestPass + "@127.0.0.1:3128", false, ""},
		{"http://", false, "missing host"},
		{"http://:3128", false, "missing host"},
		{"http://127.0.0.1:0", false, "invalid port"},
		{"http://127.0.0.1:99999", false, "invalid port"},
		{"http://user:" + upTestPass + "@127.0.0.1:port", false, ""},
		{"http://user:" + upTestPass + "%zz@127.0.0.1:3128", false, "cannot parse"},
		{"http://127.0.0.1:3128/path", false, "unexpected path"},
		{"http://127.0.0.1:3128?x=1", false, "unexpected path"},
		{"http://u:" + upTestPass + "@host\n:1", false, ""},
		{"http:opaque", false, "scheme"},
	} {
		u, err := ParseUpstream(tc.in)
		if tc.ok {
			if err != nil {
				t.Errorf("ParseUpstream(%q): %v", tc.in, err)
			} else if (u == nil) != (tc.in == "") {
				t.Errorf("ParseUpstream(%q) = %v", tc.in, u)
			}
			continue
		}
		if !errors.Is(err, ErrBadUpstream) {
			t.Errorf("ParseUpstream(%q) error = %v, want ErrBadUpstream", tc.in, err)
			continue
		}
		if !strings.Contains(err.Error(), tc.wantMsg) {
			t.Errorf("ParseUpstream(%q) error %q does not say %q", tc.in, err, tc.wantMsg)
		}
		assertNoSecret(t, err.Error(), upTestPass)
		assertNoSecret(t, err.Error(), "%zz")
	}
}

func TestUpstreamRedactURL(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", ""},
		{"http://127.0.0.1:3128", "http://127.0.0.1:3128"},
		{"http://user:" + upTestPass + "@127.0.0.1:3128", "http://user:xxxxx@127.0.0.1:3128"},
		{"socks5://u:p@h:1080", "socks5://u:xxxxx@h:1080"},
		{"http://tokenonly@h:1", "http://tokenonly@h:1"},
		{"user:" + upTestPass + "@h:3128", "user:xxxxx@h:3128"},
		{"http://user:" + upTestPass + "%zz@h:1/x", "http://user:xxxxx@h:1/x"},
		{"http://user:pa@ss@h:1", "http://user:xxxxx@h:1"},
		{"http://u:" + upTestPass + "@host\n:1", "http://u:xxxxx@host\n:1"},
	} {
		if got := RedactURL(tc.in); got != tc.want {
			t.Errorf("RedactURL(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func FuzzUpstreamParse(f *testing.F) {
	f.Add("http", "u", "hunter~22", "127.0.0.1:3128", "")
	f.Add("socks5h", "", "hunter~22", "h", "/")
	f.Add("https", "user", "pa~ss%zz", "[::1]:443", "")
	f.Add("", "user", "pa~ss", "h:1", "")
	f.Add("http", "a b", "p~q:r", "c", "?x")
	f.Add("http", "u@v", "p~q", "h:1", "/x@y")
	f.Fuzz(func(t *testing.T, scheme, user, pass, host, rest string) {
		// pass must be a password: long enough to spot, only in its place,
		// and with a '~', which no message text has, so that a hit is a leak.
		if len(pass) < 3 || !strings.Contains(pass, "~") || strings.ContainsAny(pass, "@/?#") || strings.ContainsFunc(pass, isControl) || strings.ContainsAny(user, "/?#") ||
			strings.Contains(scheme+user+host+rest, pass) {
			return
		}
		in := user + ":" + pass + "@" + host + rest
		if scheme != "" {
			in = scheme + "://" + in
		}
		u, err := ParseUpstream(in)
		if err != nil {
			if !errors.Is(err, ErrBadUpstream) {
				t.Fatalf("error %v is not ErrBadUpstream", err)
			}
			assertNoSecret(t, err.Error(), pass)
		} else if u == nil {
			t.Fatalf("ParseUpstream(%q) = nil, nil", in)
		}
		assertNoSecret(t, RedactURL(in), pass)
		ue := ClassifyError(fmt.Errorf("dial %s: %w", in, io.EOF), in, host)
		assertNoSecret(t, ue.Error(), pass)
	})
}

func TestUpstreamLoadRootCAs(t *testing.T) {
	if pool, err := LoadRootCAs(nil); err != nil || pool != nil {
		t.Fatalf("LoadRootCAs(nil) = %v, %v; want nil, nil (system roots)", pool, err)
	}
	dir := t.TempDir()
	caPEM, keyPEM, _ := newTestCA(t)
	good := filepath.Join(dir, "good.pem")
	os.WriteFile(good, caPEM, 0o644)
	pool, err := LoadRootCAs([]string{good})
	if err != nil {
		t.Fatal(err)
	}
	leaf := newTestLeaf(t, caPEM, keyPEM, "origin.test")
	cert, _ := x509.ParseCertificate(leaf.Certificate[0])
	if _, err := cert.Verify(x509.VerifyOptions{DNSName: "origin.test", Roots: pool}); err != nil {
		t.Errorf("leaf of the added CA does not verify: %v", err)
	}

	garbage := filepath.Join(dir, "garbage.pem")
	os.WriteFile(garbage, []byte("nothing here"), 0o644)
	corrupt := filepath.Join(dir, "corrupt.pem")
	os.WriteFile(corrupt, []byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"), 0o644)
	for _, bad := range []string{garbage, corrupt, filepath.Join(dir, "missing.pem")} {
		_, err := LoadRootCAs([]string{good, bad})
		if !errors.Is(err, ErrRootCAs) || !strings.Contains(err.Error(), bad) {
			t.Errorf("LoadRootCAs(%s) error = %v, want ErrRootCAs naming the file", bad, err)
		}
	}
}

func TestTransportDirect(t *testing.T) {
	var hits atomic.Int64
	origin, roots := startTLSOrigin(t, helloHandler(&hits))
	ts := newTestTransports(t, TransportOptions{RootCAs: roots})
	tr, err := ts.Get("s1", "")
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest("GET", origin.URL, nil)
	req.Header.Set("Accept-Encoding", "gzip, deflate, br, zstd")
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "hello HTTP/2.0" {
		t.Errorf("body %q, want HTTP/2 to the origin", body)
	}
	if got := resp.Header.Get("X-Accept-Encoding"); got != "gzip, deflate, br, zstd" {
		t.Errorf("origin saw Accept-Encoding %q", got)
	}
	if hits.Load() != 1 {
		t.Errorf("origin hits %d", hits.Load())
	}
}

func TestTransportThroughHTTPUpstream(t *testing.T) {
	var hits atomic.Int64
	tlsOrigin, roots := startTLSOrigin(t, helloHandler(&hits))
	plainOrigin := startHTTPOrigin(t, helloHandler(&hits))
	for _, user := range []string{"", "alice"} {
		t.Run("user="+user, func(t *testing.T) {
			up, count := startGoproxyUpstream(t, user, upTestPass)
			ts := newTestTransports(t, TransportOptions{RootCAs: roots})
			tr, err := ts.Get("s1", up)
			if err != nil {
				t.Fatal(err)
			}
			before := hits.Load()
			for i, target := range []string{tlsOrigin.URL, plainOrigin.URL} {
				status, body, err := getThrough(t, tr, target+"/x")
				if err != nil || status != 200 || !strings.HasPrefix(body, "hello") {
					t.Fatalf("GET %s through %s: %d %q %v", target, RedactURL(up), status, body, err)
				}
				if got := count(); got != i+1 {
					t.Errorf("upstream accepted %d requests, want %d", got, i+1)
				}
			}
			if hits.Load()-before != 2 {
				t.Errorf("origins got %d requests, want 2", hits.Load()-before)
			}
		})
	}
}

func TestTransportThroughHTTPSUpstream(t *testing.T) {
	var hits atomic.Int64
	origin, originCA := tlsOriginWithCA(t, helloHandler(&hits))
	plainOrigin := startHTTPOrigin(t, helloHandler(&hits))
	proxyCA, proxyKey, _ := newTestCA(t)
	var accepted atomic.Int64
	srv := httptest.NewUnstartedServer(newTestGoproxy("bob", upTestPass, &accepted))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{newTestLeaf(t, proxyCA, proxyKey, "127.0.0.1")}}
	srv.Config.ErrorLog = discardServerLog
	srv.StartTLS()
	t.Cleanup(srv.Close)
	up := "https://bob:" + upTestPass + "@" + srv.Listener.Addr().String()

	ts := newTestTransports(t, TransportOptions{RootCAs: mergedRoots(t, originCA, proxyCA)})
	tr, err := ts.Get("s1", up)
	if err != nil {
		t.Fatal(err)
	}
	for i, target := range []string{origin.URL, plainOrigin.URL} {
		status, body, err := getThrough(t, tr, target)
		if err != nil || status != 200 || !strings.HasPrefix(body, "hello") {
			t.Fatalf("GET %s: %d %q %v", target, status, body, err)
		}
		if accepted.Load() != int64(i+1) {
			t.Errorf("upstream accepted %d, want %d", accepted.Load(), i+1)
		}
	}

	// The proxy's certificate is verified: without its CA, a TLS error at
	// the upstream hop.
	ts2 := newTestTransports(t, TransportOptions{RootCAs: mergedRoots(t, originCA)})
	tr2, _ := ts2.Get("s2", up)
	_, _, err = getThrough(t, tr2, origin.URL)
	ue := ClassifyError(err, up, origin.Listener.Addr().String())
	if ue == nil || ue.Kind != KindTLS || ue.Hop != "upstream proxy "+srv.Listener.Addr().String() {
		t.Fatalf("untrusted https upstream: %#v (%v)", ue, err)
	}
	assertNoSecret(t, ue.Error(), upTestPass)

	// The helper variant works the same way.
	up3, _, count := startHTTPSGoproxyUpstream(t, "", "")
	ts3 := newTestTransports(t, TransportOptions{InsecureSkipVerify: true})
	tr3, _ := ts3.Get("s3", up3)
	if status, _, err := getThrough(t, tr3, plainOrigin.URL); err != nil || status != 200 || count() != 1 {
		t.Errorf("InsecureSkipVerify through https upstream: %d %v count=%d", status, err, count())
	}
}

func TestTransportThroughSOCKS5(t *testing.T) {
	var hits atomic.Int64
	origin, roots := startTLSOrigin(t, helloHandler(&hits))
	for _, tc := range []struct{ scheme, user string }{{"socks5", ""}, {"socks5", "carol"}, {"socks5h", "carol"}} {
		t.Run(tc.scheme+"/user="+tc.user, func(t *testing.T) {
			addr, count := startSOCKS5(t, tc.user, upTestPass)
			up := tc.scheme + "://" + testUserinfo(tc.user, upTestPass) + addr
			ts := newTestTransports(t, TransportOptions{RootCAs: roots})
			tr, err := ts.Get("s1", up)
			if err != nil {
				t.Fatal(err)
			}
			before := hits.Load()
			status, body, err := getThrough(t, tr, origin.URL)
			if err != nil || status != 200 || body != "hello HTTP/2.0" {
				t.Fatalf("GET through %s: %d %q %v", RedactURL(up), status, body, err)
			}
			if count() != 1 || hits.Load()-before != 1 {
				t.Errorf("socks dials %d, origin hits %d; want 1 and 1", count(), hits.Load()-before)
			}
		})
	}
}

func TestTransportSessionsDoNotShareConnections(t *testing.T) {
	var hits atomic.Int64
	for _, mode := range []string{"direct", "http-upstream", "socks5-upstream"} {
		t.Run(mode, func(t *testing.T) {
			caPEM, keyPEM, roots := newTestCA(t)
			srv := httptest.NewUnstartedServer(helloHandler(&hits))
			srv.EnableHTTP2 = true
			srv.TLS = &tls.Config{Certificates: []tls.Certificate{newTestLeaf(t, caPEM, keyPEM, "127.0.0.1")}}
			srv.Config.ErrorLog = discardServerLog
			conns := watchOriginConns(srv)
			srv.StartTLS()
			t.Cleanup(srv.Close)

			up := ""
			switch mode {
			case "http-upstream":
				up, _ = startGoproxyUpstream(t, "", "")
			case "socks5-upstream":
				addr, _ := startSOCKS5(t, "", "")
				up = "socks5://" + addr
			}
			ts := newTestTransports(t, TransportOptions{RootCAs: roots})
			trA, err := ts.Get("A", up)
			if err != nil {
				t.Fatal(err)
			}
			trB, _ := ts.Get("B", up)
			if trA == trB {
				t.Fatal("two sessions got the same transport")
			}
			if again, _ := ts.Get("A", up); again != trA {
				t.Error("Get for the same session made a new transport")
			}
			if ts.Len() != 2 {
				t.Errorf("Len = %d", ts.Len())
			}
			for range 3 {
				for _, tr := range []*http.Transport{trA, trB} {
					if status, _, err := getThrough(t, tr, srv.URL); err != nil || status != 200 {
						t.Fatalf("GET: %d %v", status, err)
					}
				}
			}
			// Each session opened exactly one connection and kept reusing it.
			if got := conns.Accepted.Load(); got != 2 {
				t.Errorf("origin accepted %d connections for 2 sessions x 3 requests, want 2", got)
			}
		})
	}
}

func TestTransportCloseClosesIdleConns(t *testing.T) {
	var hits atomic.Int64
	srv := httptest.NewUnstartedServer(helloHandler(&hits))
	conns := watchOriginConns(srv)
	srv.Start()
	t.Cleanup(srv.Close)
	ts := newTestTransports(t, TransportOptions{})
	trA, _ := ts.Get("A", "")
	trB, _ := ts.Get("B", "")
	for _, tr := range []*http.Transport{trA, trB} {
		if _, _, err := getThrough(t, tr, srv.URL); err != nil {
			t.Fatal(err)
		}
	}
	ts.Close("A")
	select {
	case <-conns.Closed:
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not close the session's idle connection")
	}
	if ts.Len() != 1 {
		t.Errorf("Len after Close = %d, want 1", ts.Len())
	}
	ts.Close("unknown") // no-op
	if newA, _ := ts.Get("A", ""); newA == trA {
		t.Error("Get after Close returned the closed transport")
	}
	// B's connection is untouched: its next request reuses it.
	if _, _, err := getThrough(t, trB, srv.URL); err != nil {
		t.Fatal(err)
	}
	if got := conns.Accepted.Load(); got != 2 {
		t.Errorf("accepted %d connections, want 2 (B reused its own)", got)
	}
	ts.CloseAll()
	select {
	case <-conns.Closed:
	case <-time.After(5 * time.Second):
		t.Fatal("CloseAll did not close B's idle connection")
	}
	if ts.Len() != 0 {
		t.Errorf("Len after CloseAll = %d", ts.Len())
	}
}

func TestTransportUpstreamChangeReplaces(t *testing.T) {
	upA, countA := startGoproxyUpstream(t, "", "")
	upB, countB := startGoproxyUpstream(t, "", "")
	origin := startHTTPOrigin(t, helloHandler(new(atomic.Int64)))
	ts := newTestTransports(t, TransportOptions{})
	tr1, _ := ts.Get("s", upA)
	getThrough(t, tr1, origin.URL)
	tr2, err := ts.Get("s", upB)
	if err != nil {
		t.Fatal(err)
	}
	if tr1 == tr2 || ts.Len() != 1 {
		t.Fatalf("changed upstream: same transport %v, Len %d", tr1 == tr2, ts.Len())
	}
	getThrough(t, tr2, origin.URL)
	if countA() != 1 || countB() != 1 {
		t.Errorf("upstream counts %d, %d; want 1, 1", countA(), countB())
	}
}

func TestTransportGetBadUpstream(t *testing.T) {
	ts := newTestTransports(t, TransportOptions{})
	for _, up := range []string{"ftp://u:" + upTestPass + "@h:1", "http://u:" + upTestPass + "%zz@h:1", "u:" + upTestPass + "@h:1"} {
		tr, err := ts.Get("s", up)
		if tr != nil || !errors.Is(err, ErrBadUpstream) {
			t.Errorf("Get(%q) = %v, %v", up, tr, err)
			continue
		}
		assertNoSecret(t, err.Error(), upTestPass)
		ue := ClassifyError(err, up, "example.com:443")
		assertNoSecret(t, ue.Error(), upTestPass)
	}
	if ts.Len() != 0 {
		t.Errorf("Len = %d after failed Gets", ts.Len())
	}
}

func TestTransportConcurrentGet(t *testing.T) {
	ts := newTestTransports(t, TransportOptions{})
	const n = 8
	got := make([]*http.Transport, n)
	done := make(chan int)
	for i := range n {
		go func() {
			tr, err := ts.Get(fmt.Sprintf("s%d", i%2), "")
			if err != nil {
				t.Error(err)
			}
			got[i] = tr
			done <- i
		}()
	}
	for range n {
		<-done
	}
	for i := 2; i < n; i++ {
		if got[i] != got[i%2] {
			t.Errorf("concurrent Gets for one session returned different transports")
		}
	}
	if ts.Len() != 2 {
		t.Errorf("Len = %d", ts.Len())
	}
}

// upstreamFailure runs one request through a fresh transport for upstream
// and one DialUpstream, and returns both classified errors.
func upstreamFailure(t *testing.T, up, originURL string, opts TransportOptions) (rt, dial *UpstreamError) {
	t.Helper()
	ts := newTestTransports(t, opts)
	tr, err := ts.Get("s", up)
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(originURL)
	_, _, err = getThrough(t, tr, originURL)
	if err == nil {
		t.Fatalf("request through %s succeeded", RedactURL(up))
	}
	rt = ClassifyError(err, up, u.Host)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := DialUpstream(ctx, up, "tcp", u.Host, opts)
	if err == nil {
		conn.Close()
		t.Fatalf("DialUpstream through %s succeeded", RedactURL(up))
	}
	var ue *UpstreamError
	if !errors.As(err, &ue) {
		t.Fatalf("DialUpstream error %T %v is not an *UpstreamError", err, err)
	}
	if ClassifyError(err, up, u.Host) != ue {
		t.Error("ClassifyError did not pass an *UpstreamError through")
	}
	return rt, ue
}

func checkUpstreamError(t *testing.T, what string, ue *UpstreamError, kind, hop string) {
	t.Helper()
	if ue == nil {
		t.Fatalf("%s: nil error", what)
	}
	msg := ue.Error()
	t.Logf("%s: %s", what, msg)
	if ue.Kind != kind || ue.Hop != hop {
		t.Errorf("%s: Kind %q Hop %q, want %q %q (%s)", what, ue.Kind, ue.Hop, kind, hop, msg)
	}
	if !strings.Contains(msg, hop) || strings.ContainsAny(msg, "\r\n") {
		t.Errorf("%s: Error() %q: want one line naming %q", what, msg, hop)
	}
	assertNoSecret(t, msg, upTestPass)
}

func TestUpstreamDeadIsConnectError(t *testing.T) {
	dead := closedPort(t)
	origin := startHTTPOrigin(t, helloHandler(new(atomic.Int64)))
	tlsOrigin, roots := startTLSOrigin(t, helloHandler(new(atomic.Int64)))
	for _, scheme := range []string{"http", "https", "socks5"} {
		up := scheme + "://dave:" + upTestPass + "@" + dead
		for _, target := range []string{origin.URL, tlsOrigin.URL} {
			rt, dial := upstreamFailure(t, up, target, TransportOptions{RootCAs: roots})
			checkUpstreamError(t, scheme+" RoundTrip "+target, rt, KindConnect, "upstream proxy "+dead)
			checkUpstreamError(t, scheme+" DialUpstream", dial, KindConnect, "upstream proxy "+dead)
		}
	}
	// Direct to a dead origin names the origin.
	rt, dial := upstreamFailure(t, "", "http://"+dead+"/", TransportOptions{})
	checkUpstreamError(t, "direct RoundTrip", rt, KindConnect, "origin "+dead)
	checkUpstreamError(t, "direct DialUpstream", dial, KindConnect, "origin "+dead)
}

func TestUpstreamUntrustedOriginIsTLSError(t *testing.T) {
	origin, _ := startTLSOrigin(t, helloHandler(new(atomic.Int64)))
	host := origin.Listener.Addr().String()
	_, _, otherRoots := newTestCA(t)
	for _, up := range []string{"", mustUpstream(t, "http"), mustUpstream(t, "socks5")} {
		ts := newTestTransports(t, TransportOptions{RootCAs: otherRoots})
		tr, _ := ts.Get("s", up)
		_, _, err := getThrough(t, tr, origin.URL)
		checkUpstreamError(t, "via "+RedactURL(up), ClassifyError(err, up, host), KindTLS, "origin "+host)
	}
}

// mustUpstream starts an upstream of the given kind with user/upTestPass.
func mustUpstream(t *testing.T, kind string) string {
	t.Helper()
	switch kind {
	case "http":
		up, _ := startGoproxyUpstream(t, "erin", upTestPass)
		return up
	default:
		addr, _ := startSOCKS5(t, "erin", upTestPass)
		return "socks5://erin:" + upTestPass + "@" + addr
	}
}

func TestUpstreamWrongPassword(t *testing.T) {
	tlsOrigin, roots := startTLSOrigin(t, helloHandler(new(atomic.Int64)))
	goodHTTP, countHTTP := startGoproxyUpstream(t, "frank", "right-password")
	socksAddr, countSOCKS := startSOCKS5(t, "frank", "right-password")
	for _, up := range []string{
		strings.Replace(goodHTTP, "right-password", upTestPass, 1),
		"socks5://frank:" + upTestPass + "@" + socksAddr,
	} {
		u, _ := url.Parse(up)
		rt, dial := upstreamFailure(t, up, tlsOrigin.URL, TransportOptions{RootCAs: roots})
		checkUpstreamError(t, "RoundTrip "+u.Scheme, rt, KindConnect, "upstream proxy "+u.Host)
		checkUpstreamError(t, "DialUpstream "+u.Scheme, dial, KindConnect, "upstream proxy "+u.Host)
		if u.Scheme == "http" {
			for _, e := range []*UpstreamError{rt, dial} {
				if !errors.Is(e, ErrConnectRefused) || !strings.Contains(e.Error(), "407") {
					t.Errorf("wrong password: %q, want ErrConnectRefused with the status 407", e)
				}
			}
		}
	}
	if countHTTP() != 0 || countSOCKS() != 0 {
		t.Errorf("upstreams accepted %d / %d requests with a wrong password", countHTTP(), countSOCKS())
	}
}

func TestUpstreamTimeouts(t *testing.T) {
	silent := silentServer(t)
	opts := TransportOptions{DialTimeout: 300 * time.Millisecond, TLSHandshakeTimeout: 200 * time.Millisecond, ResponseHeaderTimeout: 200 * time.Millisecond}
	for _, scheme := range []string{"http", "https", "socks5"} {
		up := scheme + "://gina:" + upTestPass + "@" + silent
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, err := DialUpstream(ctx, up, "tcp", "example.com:443", opts)
		cancel()
		checkUpstreamError(t, scheme+" silent upstream", ClassifyError(err, up, "example.com:443"), KindTimeout, "upstream proxy "+silent)
	}

	// An origin that never answers: a response header timeout at the origin.
	release := make(chan struct{})
	origin := startHTTPOrigin(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer close(release)
	up, _ := startGoproxyUpstream(t, "", "")
	for _, u := range []string{"", up} {
		ts := newTestTransports(t, opts)
		tr, _ := ts.Get("s", u)
		_, _, err := getThrough(t, tr, origin.URL)
		host := origin.Listener.Addr().String()
		checkUpstreamError(t, "slow origin via "+u, ClassifyError(err, u, origin.URL), KindTimeout, "origin "+host)
	}

	// The caller's context bounds DialUpstream's CONNECT exchange too.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := DialUpstream(ctx, "http://"+silent, "tcp", "example.com:443", TransportOptions{})
	if ue := ClassifyError(err, "http://"+silent, "example.com:443"); ue == nil || !errors.Is(ue, context.Canceled) {
		t.Errorf("canceled DialUpstream: %v", err)
	}
}

func TestDialUpstreamTunnels(t *testing.T) {
	var hits atomic.Int64
	origin := startHTTPOrigin(t, helloHandler(&hits))
	host := origin.Listener.Addr().String()

	httpUp, httpCount := startGoproxyUpstream(t, "hank", upTestPass)
	httpsUp, httpsRoots, httpsCount := startHTTPSGoproxyUpstream(t, "hank", upTestPass)
	socksAddr, socksCount := startSOCKS5(t, "hank", upTestPass)
	socksOpen, socksOpenCount := startSOCKS5(t, "", "")
	direct := new(atomic.Int64)
	for _, tc := range []struct {
		name  string
		up    string
		count func() int
	}{
		{"direct", "", func() int { return int(direct.Load()) }},
		{"http", httpUp, httpCount},
		{"https", httpsUp, httpsCount},
		{"socks5", "socks5://hank:" + upTestPass + "@" + socksAddr, socksCount},
		{"socks5h-noauth", "socks5h://" + socksOpen, socksOpenCount},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := hits.Load()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			conn, err := DialUpstream(ctx, tc.up, "tcp", host, TransportOptions{RootCAs: httpsRoots})
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			if tc.up == "" {
				direct.Add(1)
			}
			fmt.Fprintf(conn, "GET /raw HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", host)
			resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || string(body) != "hello HTTP/1.1" {
				t.Errorf("tunnelled GET: %d %q", resp.StatusCode, body)
			}
			if hits.Load()-before != 1 || tc.count() != 1 {
				t.Errorf("origin hits %d, upstream count %d; want 1, 1", hits.Load()-before, tc.count())
			}
		})
	}
}

func TestDialUpstreamBadInput(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct{ up, network, addr string }{
		{"", "udp", "127.0.0.1:53"},
		{"", "tcp", "no-port"},
		{"ftp://u:" + upTestPass + "@h:1", "tcp", "example.com:443"},
		{"http://u:" + upTestPass + "@h:1", "tcp", "example.com"},
	} {
		conn, err := DialUpstream(ctx, tc.up, tc.network, tc.addr, TransportOptions{})
		if err == nil {
			conn.Close()
			t.Errorf("DialUpstream(%q, %q, %q) succeeded", tc.up, tc.network, tc.addr)
			continue
		}
		assertNoSecret(t, err.Error(), upTestPass)
	}
}

// TestUpstreamDialBufferedBytes: bytes an upstream sends right after its
// CONNECT answer reach the caller.
func TestUpstreamDialBufferedBytes(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		req, err := http.ReadRequest(bufio.NewReader(c))
		if err != nil || req.Method != http.MethodConnect {
			return
		}
		io.WriteString(c, "HTTP/1.1 200 Connection established\r\n\r\nSSH-2.0-banner\r\n")
	}()
	conn, err := DialUpstream(context.Background(), "http://"+ln.Addr().String(), "tcp", "example.com:22", TransportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil || line != "SSH-2.0-banner\r\n" {
		t.Errorf("read %q, %v", line, err)
	}
	<-done
}

func TestUpstreamClassifyScrubsCredentials(t *testing.T) {
	up := "http://ivan:" + upTestPass + "@127.0.0.1:3128"
	for _, tc := range []struct {
		name string
		err  error
		kind string
		hop  string
	}{
		{
			name: "proxy URL embedded in a url.Error",
			err:  &url.Error{Op: "Get", URL: "http://ivan:" + upTestPass + "@127.0.0.1:3128/", Err: errors.New("EOF")},
			kind: KindProtocol, hop: "origin example.com:443",
		},
		{
			name: "proxyconnect with the password in the text",
			err:  &net.OpError{Op: "proxyconnect", Net: "tcp", Err: fmt.Errorf("auth %s rejected\nsecond line", upTestPass)},
			kind: KindConnect, hop: "upstream proxy 127.0.0.1:3128",
		},
		{
			name: "escaped password",
			err:  fmt.Errorf("dial socks5://ivan:%s@127.0.0.1:3128: %w", url.QueryEscape(upTestPass+"/x"), context.DeadlineExceeded),
			kind: KindTimeout, hop: "origin example.com:443",
		},
		{
			name: "refused CONNECT",
			err:  fmt.Errorf("%w: 403 Forbidden", ErrConnectRefused),
			kind: KindConnect, hop: "upstream proxy 127.0.0.1:3128",
		},
		{
			name: "x509 at the origin",
			err:  &tls.CertificateVerificationError{Err: x509.UnknownAuthorityError{}},
			kind: KindTLS, hop: "origin example.com:443",
		},
		{
			name: "client went away",
			err:  context.Canceled,
			kind: KindProtocol, hop: "origin example.com:443",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ue := ClassifyError(tc.err, up, "https://example.com/path?q=1")
			if ue.Kind != tc.kind || ue.Hop != tc.hop {
				t.Errorf("Kind %q Hop %q, want %q %q", ue.Kind, ue.Hop, tc.kind, tc.hop)
			}
			msg := ue.Error()
			assertNoSecret(t, msg, upTestPass)
			assertNoSecret(t, msg, url.QueryEscape(upTestPass))
			if strings.ContainsAny(msg, "\r\n") {
				t.Errorf("Error() %q is not one line", msg)
			}
			if !errors.Is(ue, tc.err) {
				t.Error("Unwrap lost the cause")
			}
		})
	}
	if ClassifyError(nil, up, "x:1") != nil {
		t.Error("ClassifyError(nil) != nil")
	}
	// Targets are named host:port only.
	for target, want := range map[string]string{
		"example.com:443":                  "origin example.com:443",
		"http://u:p@example.com/x":         "origin example.com:80",
		"wss://example.com:8443/ws":        "origin example.com:8443",
		"u:" + upTestPass + "@example.com": "origin example.com",
		"":                                 "origin",
	} {
		if got := ClassifyError(io.EOF, "", target).Hop; got != want {
			t.Errorf("hop for %q = %q, want %q", target, got, want)
		}
	}
}

func BenchmarkTransportsGetHit(b *testing.B) {
	ts := NewTransports(TransportOptions{})
	defer ts.CloseAll()
	for i := range 1000 {
		ts.Get(fmt.Sprintf("session-%d", i), "http://user:pass@127.0.0.1:3128")
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := ts.Get("session-500", "http://user:pass@127.0.0.1:3128"); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// TestTransportsRetain: Retain closes exactly the transports whose session
// is no longer kept.
func TestTransportsRetain(t *testing.T) {
	ts := NewTransports(TransportOptions{})
	for _, id := range []string{"a", "b", "c"} {
		if _, err := ts.Get(id, ""); err != nil {
			t.Fatal(err)
		}
	}
	ts.Retain(func(id string) bool { return id != "b" })
	if ts.Len() != 2 {
		t.Fatalf("%d transports after Retain, want 2", ts.Len())
	}
	trA, _ := ts.Get("a", "")
	if again, _ := ts.Get("a", ""); again != trA {
		t.Errorf("a kept transport was replaced")
	}
}
