package upstream

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
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sessionproxy/sessionproxy/proxy/proxytest"
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

func newTestTransports(t *testing.T, opts Options) *Transports[string] {
	t.Helper()
	ts := NewTransports[string](opts)
	t.Cleanup(ts.CloseAll)
	return ts
}

func TestUpstreamParse(t *testing.T) {
	const (
		notURL   = "must be a URL like http://host:port"
		scheme   = "scheme must be one of http, https, socks5, socks5h"
		noHost   = "needs a host"
		noPort   = "needs a port (host:port)"
		badPort  = "port must be a number from 1 to 65535"
		trailing = "must not have a path, query or fragment"
	)
	for _, tc := range []struct {
		in      string
		want    string // the parsed URL, or "" for an error
		problem string
	}{
		{"http://127.0.0.1:3128", "http://127.0.0.1:3128", ""},
		{"http://user:" + upTestPass + "@127.0.0.1:3128", "http://user:" + upTestPass + "@127.0.0.1:3128", ""},
		{"https://proxy.example:443", "https://proxy.example:443", ""},
		{"socks5://u:" + upTestPass + "@10.0.0.2:1080", "socks5://u:" + upTestPass + "@10.0.0.2:1080", ""},
		{"socks5h://10.0.0.2:1080", "socks5h://10.0.0.2:1080", ""},
		{"http://127.0.0.1:3128/", "http://127.0.0.1:3128", ""},
		{"HTTP://[::1]:3128", "http://[::1]:3128", ""},
		{"", "", notURL},
		{"https://proxy.example", "", noPort},
		{"socks5h://10.0.0.2", "", noPort},
		{"http://user:" + upTestPass + "@127.0.0.1", "", noPort},
		{"ftp://127.0.0.1:21", "", scheme},
		{"127.0.0.1:3128", "", notURL},
		{"user:" + upTestPass + "@127.0.0.1:3128", "", notURL},
		{"http://", "", noHost},
		{"http://:3128", "", noHost},
		{"http://127.0.0.1:0", "", badPort},
		{"http://127.0.0.1:99999", "", badPort},
		{"http://user:" + upTestPass + "@127.0.0.1:port", "", notURL},
		{"http://user:" + upTestPass + "%zz@127.0.0.1:3128", "", notURL},
		{"http://127.0.0.1:3128/path", "", trailing},
		{"http://127.0.0.1:3128?x=1", "", trailing},
		{"http://127.0.0.1:3128?", "", trailing},
		{"http://127.0.0.1:3128#top", "", trailing},
		{"http://u:" + upTestPass + "@host\n:1", "", notURL},
		{"http:opaque", "", notURL},
	} {
		u, err := Parse(tc.in)
		if tc.want != "" {
			if err != nil {
				t.Errorf("Parse(%q): %v", tc.in, err)
			} else if u.String() != tc.want {
				t.Errorf("Parse(%q) = %q, want %q", tc.in, u, tc.want)
			}
			continue
		}
		var pe *ParseError
		if !errors.As(err, &pe) || !errors.Is(err, ErrInvalidURL) {
			t.Errorf("Parse(%q) error = %v, want a *ParseError wrapping ErrInvalidURL", tc.in, err)
			continue
		}
		if pe.Problem != tc.problem || pe.URL != Redact(tc.in) {
			t.Errorf("Parse(%q): problem %q with URL %q, want %q with %q", tc.in, pe.Problem, pe.URL, tc.problem, Redact(tc.in))
		}
		if want := "upstream: invalid proxy URL " + strconv.Quote(Redact(tc.in)) + ": " + tc.problem; err.Error() != want {
			t.Errorf("Parse(%q) error %q, want %q", tc.in, err, want)
		}
		proxytest.AssertNoSecret(t, err.Error(), upTestPass)
		proxytest.AssertNoSecret(t, err.Error(), "%zz")
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
		// A '#', '?' or '/' in the password ends the authority where
		// url.Parse reads it: the rest, password included, is fragment,
		// query or path, and Redacted would leave it.
		{"http://user:#S3cret@proxy.example:8080", "http://user:xxxxx@proxy.example:8080"},
		{"http://user:?S3cret@proxy.example:8080", "http://user:xxxxx@proxy.example:8080"},
		{"http://user:8080/S3cret@proxy.example:8080", "http://user:xxxxx@proxy.example:8080"},
		{"redis://:#S3cret@redis.example:6379/0", "redis://:xxxxx@redis.example:6379/0"},
		// Credentials in the query or the fragment: each value goes, the
		// names stay.
		{"redis://10.0.0.5:6379/0?password=" + upTestPass, "redis://10.0.0.5:6379/0?password=xxxxx"},
		{"socks5://10.0.0.2:1080?user=bob&pass=" + upTestPass, "socks5://10.0.0.2:1080?user=xxxxx&pass=xxxxx"},
		{"redis://:" + upTestPass + "@h:6379/0?pool_size=many&&" + upTestPass, "redis://:xxxxx@h:6379/0?pool_size=xxxxx&&xxxxx"},
		{"http://h:1/?" + upTestPass, "http://h:1/?xxxxx"},
		{"http://h:1/#" + upTestPass, "http://h:1/#xxxxx"},
		{"http://h:1/?", "http://h:1/?"},
		{"user:" + upTestPass + "@h:3128?token=" + upTestPass + "#" + upTestPass, "user:xxxxx@h:3128?token=xxxxx#xxxxx"},
		{"http://h:1/x?pass=" + upTestPass + " x", "http://h:1/x?pass=xxxxx"},
		{"http://h:1/x y#" + upTestPass, "http://h:1/x y#xxxxx"},
	} {
		if got := Redact(tc.in); got != tc.want {
			t.Errorf("Redact(%q) = %q, want %q", tc.in, got, tc.want)
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
	f.Add("http", "user-session-{session}", "pw~{session}", "127.0.0.1:3128", "")
	f.Fuzz(func(t *testing.T, scheme, user, pass, host, rest string) {
		// pass must be a password: long enough to spot, only in its place,
		// and with a '~', which no message text has, so that a hit is a leak.
		if len(pass) < 3 || !strings.Contains(pass, "~") || strings.ContainsAny(pass, "@/?#") || strings.ContainsFunc(pass, isControl) || strings.ContainsAny(user, "/?#") ||
			appearsOutside(scheme+user+host+rest, pass) {
			return
		}
		in := user + ":" + pass + "@" + host + rest
		if scheme != "" {
			in = scheme + "://" + in
		}
		u, err := Parse(in)
		if err != nil {
			if !errors.Is(err, ErrInvalidURL) {
				t.Fatalf("error %v is not ErrInvalidURL", err)
			}
			proxytest.AssertNoSecret(t, err.Error(), pass)
		} else if u == nil {
			t.Fatalf("Parse(%q) = nil, nil", in)
		} else if r := ForSession(u, "a.1"); HasPlaceholder(r) {
			t.Fatalf("ForSession(%q) kept the placeholder: %q", in, r.Redacted())
		} else if _, err := Parse(r.String()); err != nil {
			t.Fatalf("ForSession(%q) made a URL Parse refuses: %v", in, err)
		}
		proxytest.AssertNoSecret(t, Redact(in), pass)
		ue := Classify(fmt.Errorf("dial %s: %w", in, io.EOF), in, host)
		proxytest.AssertNoSecret(t, ue.Error(), pass)
	})
}

// appearsOutside reports whether pass could show in a message through the
// rest of the URL: as written, with control characters as spaces (OneLine),
// or quoted.
func appearsOutside(rest, pass string) bool {
	return strings.Contains(rest, pass) || strings.Contains(OneLine(rest), pass) || strings.Contains(strconv.Quote(rest), pass)
}

func TestUpstreamLoadRootCAs(t *testing.T) {
	if pool, err := LoadRootCAs(nil); err != nil || pool != nil {
		t.Fatalf("LoadRootCAs(nil) = %v, %v; want nil, nil (system roots)", pool, err)
	}
	dir := t.TempDir()
	caPEM, keyPEM, _ := proxytest.NewCA(t)
	good := filepath.Join(dir, "good.pem")
	os.WriteFile(good, caPEM, 0o644)
	pool, err := LoadRootCAs([]string{good})
	if err != nil {
		t.Fatal(err)
	}
	leaf := proxytest.NewLeaf(t, caPEM, keyPEM, "origin.test")
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
	origin, roots := proxytest.StartTLSOrigin(t, helloHandler(&hits))
	ts := newTestTransports(t, Options{RootCAs: roots})
	tr, err := ts.Get("s1", "", "go")
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
	tlsOrigin, roots := proxytest.StartTLSOrigin(t, helloHandler(&hits))
	plainOrigin := startHTTPOrigin(t, helloHandler(&hits))
	for _, user := range []string{"", "alice"} {
		t.Run("user="+user, func(t *testing.T) {
			up, count := proxytest.StartGoproxyUpstream(t, user, upTestPass)
			ts := newTestTransports(t, Options{RootCAs: roots})
			tr, err := ts.Get("s1", up, "go")
			if err != nil {
				t.Fatal(err)
			}
			before := hits.Load()
			for i, target := range []string{tlsOrigin.URL, plainOrigin.URL} {
				status, body, err := proxytest.GetThrough(t, tr, target+"/x")
				if err != nil || status != 200 || !strings.HasPrefix(body, "hello") {
					t.Fatalf("GET %s through %s: %d %q %v", target, Redact(up), status, body, err)
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
	origin, originCA := proxytest.StartTLSOriginWithCA(t, helloHandler(&hits))
	plainOrigin := startHTTPOrigin(t, helloHandler(&hits))
	proxyCA, proxyKey, _ := proxytest.NewCA(t)
	var accepted atomic.Int64
	srv := httptest.NewUnstartedServer(proxytest.NewGoproxy("bob", upTestPass, &accepted))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{proxytest.NewLeaf(t, proxyCA, proxyKey, "127.0.0.1")}}
	srv.Config.ErrorLog = proxytest.DiscardLog()
	srv.StartTLS()
	t.Cleanup(srv.Close)
	up := "https://bob:" + upTestPass + "@" + srv.Listener.Addr().String()

	ts := newTestTransports(t, Options{RootCAs: mergedRoots(t, originCA, proxyCA)})
	tr, err := ts.Get("s1", up, "go")
	if err != nil {
		t.Fatal(err)
	}
	for i, target := range []string{origin.URL, plainOrigin.URL} {
		status, body, err := proxytest.GetThrough(t, tr, target)
		if err != nil || status != 200 || !strings.HasPrefix(body, "hello") {
			t.Fatalf("GET %s: %d %q %v", target, status, body, err)
		}
		if accepted.Load() != int64(i+1) {
			t.Errorf("upstream accepted %d, want %d", accepted.Load(), i+1)
		}
	}

	// The proxy's certificate is verified: without its CA, a TLS error at
	// the upstream hop.
	ts2 := newTestTransports(t, Options{RootCAs: mergedRoots(t, originCA)})
	tr2, _ := ts2.Get("s2", up, "go")
	_, _, err = proxytest.GetThrough(t, tr2, origin.URL)
	ue := Classify(err, up, origin.Listener.Addr().String())
	if ue == nil || ue.Kind != KindTLS || ue.Hop != "upstream proxy "+srv.Listener.Addr().String() {
		t.Fatalf("untrusted https upstream: %#v (%v)", ue, err)
	}
	proxytest.AssertNoSecret(t, ue.Error(), upTestPass)

	// The helper variant works the same way.
	up3, _, count := proxytest.StartHTTPSGoproxyUpstream(t, "", "")
	ts3 := newTestTransports(t, Options{InsecureSkipVerify: true})
	tr3, _ := ts3.Get("s3", up3, "go")
	if status, _, err := proxytest.GetThrough(t, tr3, plainOrigin.URL); err != nil || status != 200 || count() != 1 {
		t.Errorf("InsecureSkipVerify through https upstream: %d %v count=%d", status, err, count())
	}
}

func TestTransportThroughSOCKS5(t *testing.T) {
	var hits atomic.Int64
	origin, roots := proxytest.StartTLSOrigin(t, helloHandler(&hits))
	for _, tc := range []struct{ scheme, user string }{{"socks5", ""}, {"socks5", "carol"}, {"socks5h", "carol"}} {
		t.Run(tc.scheme+"/user="+tc.user, func(t *testing.T) {
			addr, count := proxytest.StartSOCKS5(t, tc.user, upTestPass)
			up := tc.scheme + "://" + proxytest.Userinfo(tc.user, upTestPass) + addr
			ts := newTestTransports(t, Options{RootCAs: roots})
			tr, err := ts.Get("s1", up, "go")
			if err != nil {
				t.Fatal(err)
			}
			before := hits.Load()
			status, body, err := proxytest.GetThrough(t, tr, origin.URL)
			if err != nil || status != 200 || body != "hello HTTP/2.0" {
				t.Fatalf("GET through %s: %d %q %v", Redact(up), status, body, err)
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
			caPEM, keyPEM, roots := proxytest.NewCA(t)
			srv := httptest.NewUnstartedServer(helloHandler(&hits))
			srv.EnableHTTP2 = true
			srv.TLS = &tls.Config{Certificates: []tls.Certificate{proxytest.NewLeaf(t, caPEM, keyPEM, "127.0.0.1")}}
			srv.Config.ErrorLog = proxytest.DiscardLog()
			conns := proxytest.WatchOriginConns(srv)
			srv.StartTLS()
			t.Cleanup(srv.Close)

			up := ""
			switch mode {
			case "http-upstream":
				up, _ = proxytest.StartGoproxyUpstream(t, "", "")
			case "socks5-upstream":
				addr, _ := proxytest.StartSOCKS5(t, "", "")
				up = "socks5://" + addr
			}
			ts := newTestTransports(t, Options{RootCAs: roots})
			trA, err := ts.Get("A", up, "go")
			if err != nil {
				t.Fatal(err)
			}
			trB, _ := ts.Get("B", up, "go")
			if trA == trB {
				t.Fatal("two sessions got the same transport")
			}
			if again, _ := ts.Get("A", up, "go"); again != trA {
				t.Error("Get for the same session made a new transport")
			}
			if again, _ := ts.Get("B", up, "go"); again != trB {
				t.Error("Get for the other session made a new transport")
			}
			for range 3 {
				for _, tr := range []http.RoundTripper{trA, trB} {
					if status, _, err := proxytest.GetThrough(t, tr, srv.URL); err != nil || status != 200 {
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
	conns := proxytest.WatchOriginConns(srv)
	srv.Start()
	t.Cleanup(srv.Close)
	ts := newTestTransports(t, Options{})
	trA, _ := ts.Get("A", "", "go")
	trB, _ := ts.Get("B", "", "go")
	for _, tr := range []http.RoundTripper{trA, trB} {
		if _, _, err := proxytest.GetThrough(t, tr, srv.URL); err != nil {
			t.Fatal(err)
		}
	}
	ts.Close("A")
	select {
	case <-conns.Closed:
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not close the session's idle connection")
	}
	if again, _ := ts.Get("B", "", "go"); again != trB {
		t.Error("Close of A dropped B's transport")
	}
	ts.Close("unknown") // no-op
	if newA, _ := ts.Get("A", "", "go"); newA == trA {
		t.Error("Get after Close returned the closed transport")
	}
	// B's connection is untouched: its next request reuses it.
	if _, _, err := proxytest.GetThrough(t, trB, srv.URL); err != nil {
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
	if again, _ := ts.Get("B", "", "go"); again == trB {
		t.Error("Get after CloseAll returned the closed transport")
	}
}

func TestTransportUpstreamChangeReplaces(t *testing.T) {
	upA, countA := proxytest.StartGoproxyUpstream(t, "", "")
	upB, countB := proxytest.StartGoproxyUpstream(t, "", "")
	origin := startHTTPOrigin(t, helloHandler(new(atomic.Int64)))
	ts := newTestTransports(t, Options{})
	tr1, _ := ts.Get("s", upA, "go")
	proxytest.GetThrough(t, tr1, origin.URL)
	tr2, err := ts.Get("s", upB, "go")
	if err != nil {
		t.Fatal(err)
	}
	if tr1 == tr2 {
		t.Fatal("changed upstream: same transport")
	}
	if again, _ := ts.Get("s", upB, "go"); again != tr2 {
		t.Fatal("the new transport did not replace the old one")
	}
	proxytest.GetThrough(t, tr2, origin.URL)
	if countA() != 1 || countB() != 1 {
		t.Errorf("upstream counts %d, %d; want 1, 1", countA(), countB())
	}
}

func TestTransportGetBadUpstream(t *testing.T) {
	ts := newTestTransports(t, Options{})
	held, _ := ts.Get("s", "", "go")
	for _, up := range []string{"ftp://u:" + upTestPass + "@h:1", "http://u:" + upTestPass + "%zz@h:1", "u:" + upTestPass + "@h:1"} {
		tr, err := ts.Get("s", up, "go")
		if tr != nil || !errors.Is(err, ErrInvalidURL) {
			t.Errorf("Get(%q) = %v, %v", up, tr, err)
			continue
		}
		proxytest.AssertNoSecret(t, err.Error(), upTestPass)
		ue := Classify(err, up, "example.com:443")
		proxytest.AssertNoSecret(t, ue.Error(), upTestPass)
	}
	if again, _ := ts.Get("s", "", "go"); again != held {
		t.Error("failed Gets replaced the session's transport")
	}
}

func TestTransportConcurrentGet(t *testing.T) {
	ts := newTestTransports(t, Options{})
	const n = 8
	got := make([]http.RoundTripper, n)
	done := make(chan int)
	for i := range n {
		go func() {
			tr, err := ts.Get(fmt.Sprintf("s%d", i%2), "", "go")
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
	if got[0] == got[1] {
		t.Error("two sessions share a transport")
	}
}

// upstreamFailure runs one request through a fresh transport for upstream
// and one Dial, and returns both classified errors.
func upstreamFailure(t *testing.T, up, originURL string, opts Options) (rt, dial *Error) {
	t.Helper()
	ts := newTestTransports(t, opts)
	tr, err := ts.Get("s", up, "go")
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(originURL)
	_, _, err = proxytest.GetThrough(t, tr, originURL)
	if err == nil {
		t.Fatalf("request through %s succeeded", Redact(up))
	}
	rt = Classify(err, up, u.Host)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := Dial(ctx, up, "tcp", u.Host, opts)
	if err == nil {
		conn.Close()
		t.Fatalf("Dial through %s succeeded", Redact(up))
	}
	var ue *Error
	if !errors.As(err, &ue) {
		t.Fatalf("Dial error %T %v is not an *Error", err, err)
	}
	if Classify(err, up, u.Host) != ue {
		t.Error("Classify did not pass an *Error through")
	}
	return rt, ue
}

func checkUpstreamError(t *testing.T, what string, ue *Error, kind ErrorKind, hop string) {
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
	proxytest.AssertNoSecret(t, msg, upTestPass)
}

func TestUpstreamDeadIsConnectError(t *testing.T) {
	dead := proxytest.ClosedPort(t)
	origin := startHTTPOrigin(t, helloHandler(new(atomic.Int64)))
	tlsOrigin, roots := proxytest.StartTLSOrigin(t, helloHandler(new(atomic.Int64)))
	for _, scheme := range []string{"http", "https", "socks5"} {
		up := scheme + "://dave:" + upTestPass + "@" + dead
		for _, target := range []string{origin.URL, tlsOrigin.URL} {
			rt, dial := upstreamFailure(t, up, target, Options{RootCAs: roots})
			checkUpstreamError(t, scheme+" RoundTrip "+target, rt, KindConnect, "upstream proxy "+dead)
			checkUpstreamError(t, scheme+" Dial", dial, KindConnect, "upstream proxy "+dead)
		}
	}
	// Direct to a dead origin names the origin.
	rt, dial := upstreamFailure(t, "", "http://"+dead+"/", Options{})
	checkUpstreamError(t, "direct RoundTrip", rt, KindConnect, "origin "+dead)
	checkUpstreamError(t, "direct Dial", dial, KindConnect, "origin "+dead)
}

func TestUpstreamUntrustedOriginIsTLSError(t *testing.T) {
	origin, _ := proxytest.StartTLSOrigin(t, helloHandler(new(atomic.Int64)))
	host := origin.Listener.Addr().String()
	_, _, otherRoots := proxytest.NewCA(t)
	for _, up := range []string{"", mustUpstream(t, "http"), mustUpstream(t, "socks5")} {
		ts := newTestTransports(t, Options{RootCAs: otherRoots})
		tr, _ := ts.Get("s", up, "go")
		_, _, err := proxytest.GetThrough(t, tr, origin.URL)
		checkUpstreamError(t, "via "+Redact(up), Classify(err, up, host), KindTLS, "origin "+host)
	}
}

// mustUpstream starts an upstream of the given kind with user/upTestPass.
func mustUpstream(t *testing.T, kind string) string {
	t.Helper()
	switch kind {
	case "http":
		up, _ := proxytest.StartGoproxyUpstream(t, "erin", upTestPass)
		return up
	default:
		addr, _ := proxytest.StartSOCKS5(t, "erin", upTestPass)
		return "socks5://erin:" + upTestPass + "@" + addr
	}
}

func TestUpstreamWrongPassword(t *testing.T) {
	tlsOrigin, roots := proxytest.StartTLSOrigin(t, helloHandler(new(atomic.Int64)))
	goodHTTP, countHTTP := proxytest.StartGoproxyUpstream(t, "frank", "right-password")
	socksAddr, countSOCKS := proxytest.StartSOCKS5(t, "frank", "right-password")
	for _, up := range []string{
		strings.Replace(goodHTTP, "right-password", upTestPass, 1),
		"socks5://frank:" + upTestPass + "@" + socksAddr,
	} {
		u, _ := url.Parse(up)
		rt, dial := upstreamFailure(t, up, tlsOrigin.URL, Options{RootCAs: roots})
		checkUpstreamError(t, "RoundTrip "+u.Scheme, rt, KindConnect, "upstream proxy "+u.Host)
		checkUpstreamError(t, "Dial "+u.Scheme, dial, KindConnect, "upstream proxy "+u.Host)
		if u.Scheme == "http" {
			for _, e := range []*Error{rt, dial} {
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
	silent := proxytest.SilentServer(t)
	opts := Options{DialTimeout: 300 * time.Millisecond, TLSHandshakeTimeout: 200 * time.Millisecond, ResponseHeaderTimeout: 200 * time.Millisecond}
	for _, scheme := range []string{"http", "https", "socks5"} {
		up := scheme + "://gina:" + upTestPass + "@" + silent
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, err := Dial(ctx, up, "tcp", "example.com:443", opts)
		cancel()
		checkUpstreamError(t, scheme+" silent upstream", Classify(err, up, "example.com:443"), KindTimeout, "upstream proxy "+silent)
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
	up, _ := proxytest.StartGoproxyUpstream(t, "", "")
	for _, u := range []string{"", up} {
		ts := newTestTransports(t, opts)
		tr, _ := ts.Get("s", u, "go")
		_, _, err := proxytest.GetThrough(t, tr, origin.URL)
		host := origin.Listener.Addr().String()
		checkUpstreamError(t, "slow origin via "+u, Classify(err, u, origin.URL), KindTimeout, "origin "+host)
	}

	// The caller's context bounds Dial's CONNECT exchange too.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := Dial(ctx, "http://"+silent, "tcp", "example.com:443", Options{})
	if ue := Classify(err, "http://"+silent, "example.com:443"); ue == nil || !errors.Is(ue, context.Canceled) {
		t.Errorf("canceled Dial: %v", err)
	}
}

// TestTransportSilentUpstreamTimesOut: an upstream that accepts the
// connection and never answers its CONNECT or SOCKS5 handshake fails the
// request within the Options' timeouts, as a timeout at the upstream, in
// every fingerprint mode: not when the client gives up (net/http's own
// CONNECT waits a minute, its SOCKS5 for ever, detached from the request).
func TestTransportSilentUpstreamTimesOut(t *testing.T) {
	silent := proxytest.SilentServer(t)
	opts := Options{DialTimeout: 300 * time.Millisecond, TLSHandshakeTimeout: 200 * time.Millisecond, ResponseHeaderTimeout: 200 * time.Millisecond}
	for _, tc := range []struct{ scheme, target string }{
		{"http", "https://example.com/"},
		{"socks5", "https://example.com/"},
		{"socks5", "http://example.com/"},
		{"socks5h", "https://example.com/"},
	} {
		for _, fp := range []string{"go", "chrome"} {
			up := tc.scheme + "://gina:" + upTestPass + "@" + silent
			what := fp + " via " + tc.scheme + " to " + tc.target
			ts := newTestTransports(t, opts)
			tr, err := ts.Get("s", up, fp)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, tc.target, nil)
			resp, err := tr.RoundTrip(req)
			if err == nil {
				resp.Body.Close()
				t.Fatalf("%s: a response from a silent upstream", what)
			}
			if ctx.Err() != nil {
				t.Errorf("%s: failed only when the request's own deadline passed: %v", what, err)
			}
			cancel()
			checkUpstreamError(t, what, Classify(err, up, req.URL.Host), KindTimeout, "upstream proxy "+silent)
		}
	}
}

func TestDialUpstreamTunnels(t *testing.T) {
	var hits atomic.Int64
	origin := startHTTPOrigin(t, helloHandler(&hits))
	host := origin.Listener.Addr().String()

	httpUp, httpCount := proxytest.StartGoproxyUpstream(t, "hank", upTestPass)
	httpsUp, httpsRoots, httpsCount := proxytest.StartHTTPSGoproxyUpstream(t, "hank", upTestPass)
	socksAddr, socksCount := proxytest.StartSOCKS5(t, "hank", upTestPass)
	socksOpen, socksOpenCount := proxytest.StartSOCKS5(t, "", "")
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
			conn, err := Dial(ctx, tc.up, "tcp", host, Options{RootCAs: httpsRoots})
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
		conn, err := Dial(ctx, tc.up, tc.network, tc.addr, Options{})
		if err == nil {
			conn.Close()
			t.Errorf("Dial(%q, %q, %q) succeeded", tc.up, tc.network, tc.addr)
			continue
		}
		proxytest.AssertNoSecret(t, err.Error(), upTestPass)
	}
}

// TestUpstreamDialBufferedBytes: bytes an upstream sends right after its
// CONNECT answer reach the caller, and the connection still half-closes
// (a relay's client that ends its side waits for the rest of the answer).
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
		br := bufio.NewReader(c)
		req, err := http.ReadRequest(br)
		if err != nil || req.Method != http.MethodConnect {
			return
		}
		io.WriteString(c, "HTTP/1.1 200 Connection established\r\n\r\nSSH-2.0-banner\r\n")
		got, _ := io.ReadAll(br) // until the caller half-closes
		fmt.Fprintf(c, "got %q\n", got)
	}()
	conn, err := Dial(context.Background(), "http://"+ln.Addr().String(), "tcp", "example.com:22", Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	br := bufio.NewReader(conn)
	line, err := br.ReadString('\n')
	if err != nil || line != "SSH-2.0-banner\r\n" {
		t.Errorf("read %q, %v", line, err)
	}
	io.WriteString(conn, "hello")
	cw, ok := conn.(interface{ CloseWrite() error })
	if !ok {
		t.Fatalf("%T cannot half-close", conn)
	}
	if err := cw.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	if rest, err := io.ReadAll(br); err != nil || string(rest) != "got \"hello\"\n" {
		t.Errorf("after the half-close: %q, %v", rest, err)
	}
	<-done
}

// TestUpstreamDialHeadBounded: an upstream's answer to CONNECT is read up to
// MaxResponseHeaderBytes, not for as long as it writes.
func TestUpstreamDialHeadBounded(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		if _, err := http.ReadRequest(bufio.NewReader(c)); err != nil {
			return
		}
		io.WriteString(c, "HTTP/1.1 200 OK\r\nX-Pad: ")
		pad := []byte(strings.Repeat("a", 32<<10))
		for {
			if _, err := c.Write(pad); err != nil {
				return // the caller gave up
			}
		}
	}()
	_, err = Dial(context.Background(), "http://"+ln.Addr().String(), "tcp", "example.com:443",
		Options{MaxResponseHeaderBytes: 64 << 10, ResponseHeaderTimeout: time.Minute})
	if err == nil || !strings.Contains(err.Error(), "head over 65536 bytes") {
		t.Fatalf("Dial: %v; want the head refused past 65536 bytes", err)
	}
}

// TestUpstreamErrorMessage: Error() names the kind and the hop, then the
// cause with its own wording, once.
func TestUpstreamErrorMessage(t *testing.T) {
	for _, tc := range []struct {
		err  *Error
		want string
	}{
		{
			&Error{Hop: "upstream proxy 127.0.0.1:3128", Kind: KindConnect, Err: fmt.Errorf("%w: 407 Proxy Authentication Required", ErrConnectRefused)},
			"connect error at upstream proxy 127.0.0.1:3128: upstream: proxy refused CONNECT: 407 Proxy Authentication Required",
		},
		{
			Classify(&ParseError{URL: "http://u:xxxxx@h", Problem: "needs a port (host:port)"}, "http://u:"+upTestPass+"@h", "example.com:443"),
			`protocol error at upstream proxy (invalid URL): upstream: invalid proxy URL "http://u:xxxxx@h": needs a port (host:port)`,
		},
		{&Error{Hop: "origin\nx:1", Kind: KindTimeout}, "timeout error at origin x:1: unknown error"},
		{ // the resolver's address is left out, the host that failed stays
			Classify(&net.OpError{Op: "dial", Net: "tcp", Err: &net.DNSError{Err: "no such host", Name: "nosuch.example", Server: "127.0.0.53:53", IsNotFound: true}}, "", "nosuch.example:80"),
			"connect error at origin nosuch.example:80: dial tcp: lookup nosuch.example: no such host",
		},
	} {
		if got := tc.err.Error(); got != tc.want {
			t.Errorf("Error() = %q, want %q", got, tc.want)
		}
	}
}

func TestUpstreamClassifyScrubsCredentials(t *testing.T) {
	up := "http://ivan:" + upTestPass + "@127.0.0.1:3128"
	for _, tc := range []struct {
		name string
		err  error
		kind ErrorKind
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
			ue := Classify(tc.err, up, "https://example.com/path?q=1")
			if ue.Kind != tc.kind || ue.Hop != tc.hop {
				t.Errorf("Kind %q Hop %q, want %q %q", ue.Kind, ue.Hop, tc.kind, tc.hop)
			}
			msg := ue.Error()
			proxytest.AssertNoSecret(t, msg, upTestPass)
			proxytest.AssertNoSecret(t, msg, url.QueryEscape(upTestPass))
			if strings.ContainsAny(msg, "\r\n") {
				t.Errorf("Error() %q is not one line", msg)
			}
			if !errors.Is(ue, tc.err) {
				t.Error("Unwrap lost the cause")
			}
		})
	}
	if Classify(nil, up, "x:1") != nil {
		t.Error("Classify(nil) != nil")
	}
	// Targets are named host:port only.
	for target, want := range map[string]string{
		"example.com:443":                  "origin example.com:443",
		"http://u:p@example.com/x":         "origin example.com:80",
		"wss://example.com:8443/ws":        "origin example.com:8443",
		"u:" + upTestPass + "@example.com": "origin example.com",
		"":                                 "origin",
	} {
		if got := Classify(io.EOF, "", target).Hop; got != want {
			t.Errorf("hop for %q = %q, want %q", target, got, want)
		}
	}
}

func BenchmarkTransportsGetHit(b *testing.B) {
	ts := NewTransports[string](Options{})
	defer ts.CloseAll()
	for i := range 1000 {
		ts.Get(fmt.Sprintf("session-%d", i), "http://user:pass@127.0.0.1:3128", "go")
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := ts.Get("session-500", "http://user:pass@127.0.0.1:3128", "go"); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// TestTransportsRetain: Retain closes exactly the transports whose session
// is no longer kept.
func TestTransportsRetain(t *testing.T) {
	ts := NewTransports[string](Options{})
	before := map[string]http.RoundTripper{}
	for _, id := range []string{"a", "b", "c"} {
		tr, err := ts.Get(id, "", "go")
		if err != nil {
			t.Fatal(err)
		}
		before[id] = tr
	}
	ts.Retain(func(id string) bool { return id != "b" })
	for id, tr := range before {
		again, _ := ts.Get(id, "", "go")
		if kept := again == tr; kept != (id != "b") {
			t.Errorf("after Retain, session %s kept its transport: %v", id, kept)
		}
	}
}
