package proxy

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/sessionproxy/sessionproxy/proxy/config"
	"github.com/sessionproxy/sessionproxy/proxy/proxytest"
	"github.com/sessionproxy/sessionproxy/proxy/rules"
)

// rulesConfig is a test config with the given rules compiled.
func rulesConfig(t *testing.T, specs ...rules.Spec) *config.Config {
	t.Helper()
	cfg := testConfig(t)
	rs, err := rules.Compile(specs, "")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Rules = rs
	return cfg
}

// TestBodyRuleEncodings: a body rule sees the decoded start of the body in
// every Content-Encoding, whether the origin writes it in one piece or in
// many small flushed pieces, and the client gets the original bytes.
func TestBodyRuleEncodings(t *testing.T) {
	page := []byte("<html><head><title>Just a moment</title></head><body>Please solve this CAPTCHA to continue" +
		strings.Repeat(" padding", 200) + "</body></html>")
	for _, enc := range []string{"identity", "gzip", "deflate", "br", "zstd"} {
		for _, pieces := range []int{1, 7} {
			for _, retry := range []bool{false, true} {
				name := fmt.Sprintf("%s/pieces=%d/retry=%v", enc, pieces, retry)
				t.Run(name, func(t *testing.T) {
					wire := page
					if enc != "identity" {
						wire = proxytest.Encode(t, enc, page)
					}
					origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
						w.Header().Set("Content-Type", "text/html; charset=utf-8")
						if enc != "identity" {
							w.Header().Set("Content-Encoding", enc)
						}
						step := (len(wire) + pieces - 1) / pieces
						for i := 0; i < len(wire); i += step {
							w.Write(wire[i:min(i+step, len(wire))])
							w.(http.Flusher).Flush()
						}
					}))
					defer origin.Close()
					cfg := rulesConfig(t, rules.Spec{Name: "captcha", Body: `(?i)captcha`, Action: rules.ActionRetire, Retry: retry})
					cfg.Retry.MaxAttempts = 0 // a retry would meet the same page: keep the count simple
					h := startProxy(t, cfg)
					c := h.client("", "")
					c.Transport.(*http.Transport).DisableCompression = true
					resp, body := get(t, c, origin.URL+"/", "cap")
					if !bytes.Equal([]byte(body), wire) {
						t.Errorf("the client got %d bytes that differ from the origin's %d", len(body), len(wire))
					}
					if got := resp.Header.Get("Content-Encoding"); enc != "identity" && got != enc {
						t.Errorf("Content-Encoding %q, want %q", got, enc)
					}
					st := stateOf(t, h, "cap")
					if !st.Retired || st.UsageCount != 1 {
						t.Errorf("session after a captcha page: retired %v, uses %d; want retired after 1 use", st.Retired, st.UsageCount)
					}
				})
			}
		}
	}
}

// TestBodyRuleEmptyBody: with a body rule that decides while the body
// streams, a response without a body still has its verdict carried out,
// before the client has it: one use, and its Set-Cookie in the jar.
func TestBodyRuleEmptyBody(t *testing.T) {
	mux := originMux()
	mux.HandleFunc("/login", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Set-Cookie", "sid="+r.URL.Query().Get("sid")+"; Path=/")
		w.Header().Set("Location", "/echo")
		w.Header().Set("Content-Length", "0")
		w.WriteHeader(http.StatusFound)
	})
	mux.HandleFunc("/none", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Set-Cookie", "sid="+r.URL.Query().Get("sid")+"; Path=/")
		w.WriteHeader(http.StatusNoContent)
	})
	origin := httptest.NewServer(mux)
	defer origin.Close()
	h := startProxy(t, rulesConfig(t, rules.Spec{Name: "captcha", Body: "(?i)captcha", Action: rules.ActionRetire}))
	c := h.client("", "")
	for _, path := range []string{"/login", "/none"} {
		session := "s" + path[1:]
		resp, _ := get(t, c, origin.URL+path+"?sid="+session, session)
		if resp.Header.Get("Set-Cookie") == "" {
			t.Fatalf("%s: the client got no Set-Cookie", path)
		}
		if st := stateOf(t, h, session); st.UsageCount != 1 || len(st.Cookies) != 1 {
			t.Errorf("%s: session uses %d, cookies %d; want 1 use and the sid cookie in the jar", path, st.UsageCount, len(st.Cookies))
		}
		if _, body := get(t, c, origin.URL+"/echo", session); decodeSeen(t, body).Cookie != "sid="+session {
			t.Errorf("%s: the next request carried Cookie %q, want sid=%s", path, decodeSeen(t, body).Cookie, session)
		}
	}
}

// TestBodyRuleNoDelay: a body rule without retry does not hold the response:
// the client reads the first bytes while the origin is still waiting to send
// the rest.
func TestBodyRuleNoDelay(t *testing.T) {
	for _, scheme := range []string{"http", "https"} {
		t.Run(scheme, func(t *testing.T) { testBodyRuleNoDelay(t, scheme) })
	}
}

func testBodyRuleNoDelay(t *testing.T, scheme string) {
	release := make(chan struct{})
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		io.WriteString(w, "<html>first")
		w.(http.Flusher).Flush()
		select { // the rest comes only once the client has the first bytes
		case <-release:
		case <-r.Context().Done():
			return
		}
		io.WriteString(w, " captcha</html>")
	})
	cfg := rulesConfig(t, rules.Spec{Name: "captcha", Body: `captcha`, Action: rules.ActionRetire},
		rules.Spec{Name: "blocked", Status: []string{"403"}, Action: rules.ActionRetire, Retry: true})
	var origin *httptest.Server
	if scheme == "https" {
		origin = httptest.NewTLSServer(handler)
		trustOrigin(t, cfg, origin)
	} else {
		origin = httptest.NewServer(handler)
	}
	defer origin.Close()
	h := startProxy(t, cfg)
	req, _ := http.NewRequest(http.MethodGet, origin.URL+"/", nil)
	req.Header.Set("X-Session-Id", "trickle")
	resp, err := h.client("", "").Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	first := make([]byte, len("<html>first"))
	got := make(chan error, 1)
	go func() { _, err := io.ReadFull(resp.Body, first); got <- err }()
	select {
	case err := <-got:
		if err != nil || string(first) != "<html>first" {
			t.Fatalf("first bytes %q, %v", first, err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the first bytes did not reach the client while the origin held back the rest: the proxy delayed the body")
	}
	if st := stateOf(t, h, "trickle"); st.UsageCount != 0 {
		t.Errorf("the verdict came before the body's start was complete: %d uses", st.UsageCount)
	}
	release <- struct{}{}
	rest, _ := io.ReadAll(resp.Body)
	if string(rest) != " captcha</html>" {
		t.Errorf("rest of the body %q", rest)
	}
	resp.Body.Close()
	// The verdict is applied when the body has passed; Close has happened.
	if st := stateOf(t, h, "trickle"); !st.Retired || st.UsageCount != 1 {
		t.Errorf("after the captcha page: retired %v, uses %d; want retired, 1 use", st.Retired, st.UsageCount)
	}
}

// blockingOrigin answers 403 to the first `blocks` distinct sessions it sees
// (told apart by a cookie it sets) and 200 to the rest; it records every
// request's body.
type blockingOrigin struct {
	*httptest.Server
	mu     sync.Mutex
	blocks int
	seen   int
	bodies []string
}

func newBlockingOrigin(blocks int) *blockingOrigin {
	o := &blockingOrigin{blocks: blocks}
	o.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		o.mu.Lock()
		o.bodies = append(o.bodies, string(body))
		o.seen++
		blocked := o.seen <= o.blocks
		o.mu.Unlock()
		if blocked {
			w.WriteHeader(http.StatusForbidden)
			io.WriteString(w, "go away")
			return
		}
		io.WriteString(w, "welcome")
	}))
	return o
}

func (o *blockingOrigin) requests() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]string(nil), o.bodies...)
}

// TestRetries: a blocked request is sent again on fresh sessions until one
// gets through or the attempts run out; each session is used once.
func TestRetries(t *testing.T) {
	tests := []struct {
		name        string
		blocks      int
		wantStatus  int
		wantRetries string
		wantRule    string
	}{
		{"succeeds after one retry", 1, http.StatusOK, "1", ""},
		{"succeeds on the last attempt", 2, http.StatusOK, "2", ""},
		{"runs out", 5, http.StatusForbidden, "2", "blocked-status"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			origin := newBlockingOrigin(tt.blocks)
			defer origin.Close()
			h := startProxy(t, testConfig(t)) // the default rules: 403 retires and retries
			resp, body := get(t, h.client("", ""), origin.URL+"/page", "")
			if resp.StatusCode != tt.wantStatus || resp.Header.Get("X-Session-Retries") != tt.wantRetries {
				t.Fatalf("status %d retries %q body %q; want %d after %s retries", resp.StatusCode,
					resp.Header.Get("X-Session-Retries"), body, tt.wantStatus, tt.wantRetries)
			}
			if got := resp.Header.Get("X-Session-Rule"); got != tt.wantRule {
				t.Errorf("X-Session-Rule %q, want %q", got, tt.wantRule)
			}
			attempts := len(origin.requests())
			st := h.pool().State()
			if retired := st.RetiredSessionsCount; retired != min(tt.blocks, attempts) {
				t.Errorf("%d sessions retired, want %d", retired, min(tt.blocks, attempts))
			}
			for _, s := range st.Sessions {
				if s.UsageCount != 1 {
					t.Errorf("session %s counted %d uses for one attempt", s.ID, s.UsageCount)
				}
			}
			if got := h.srv.Stats().Retries; got != int64(attempts-1) {
				t.Errorf("stats count %d retries, want %d", got, attempts-1)
			}
		})
	}
}

// TestRetryBodies: a small POST is retried with its whole body each time; a
// body over 1 MiB streams once and is never retried.
func TestRetryBodies(t *testing.T) {
	for _, size := range []int{100, 2 << 20} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			origin := newBlockingOrigin(100)
			defer origin.Close()
			h := startProxy(t, testConfig(t))
			payload := strings.Repeat("p", size)
			req, _ := http.NewRequest(http.MethodPost, origin.URL+"/form", strings.NewReader(payload))
			resp, err := h.client("", "").Do(req)
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			bodies := origin.requests()
			wantAttempts := 3
			if size > maxReplayBody {
				wantAttempts = 1
			}
			if len(bodies) != wantAttempts {
				t.Fatalf("origin saw %d attempts, want %d", len(bodies), wantAttempts)
			}
			for i, b := range bodies {
				if b != payload {
					t.Errorf("attempt %d carried %d bytes, want the whole %d", i, len(b), size)
				}
			}
		})
	}
}

// TestRetryOnDeadUpstream: a session whose upstream is down is marked bad and
// the request moves to a session with a working upstream.
func TestRetryOnDeadUpstream(t *testing.T) {
	origin := httptest.NewServer(originMux())
	defer origin.Close()
	up, count := startGoproxyUpstream(t, "", "")
	cfg := testConfig(t)
	cfg.Upstreams = []*url.URL{{Scheme: "http", Host: closedPort(t)}, mustURL(t, up)}
	cfg.Affinity = "request"
	h := startProxy(t, cfg)
	resp, body := get(t, h.client("", ""), origin.URL+"/echo", "")
	if resp.StatusCode != http.StatusOK || resp.Header.Get("X-Session-Retries") != "1" || count() != 1 {
		t.Fatalf("status %d retries %q upstream uses %d: %s; want 200 after 1 retry through the live upstream",
			resp.StatusCode, resp.Header.Get("X-Session-Retries"), count(), body)
	}
	var bad int
	for _, s := range h.pool().State().Sessions {
		if s.ErrorScore == 1 {
			bad++
		}
	}
	if bad != 1 {
		t.Errorf("%d sessions marked bad, want the dead upstream's one", bad)
	}
}

// TestUpstreamRefusesCredentials: an upstream that refuses the session's
// credentials is an upstream failure (502 naming it), over plain HTTP (where
// it answers 407 itself) and inside a tunnel.
func TestUpstreamRefusesCredentials(t *testing.T) {
	origin := httptest.NewServer(originMux())
	defer origin.Close()
	tlsOrigin := httptest.NewTLSServer(originMux())
	defer tlsOrigin.Close()
	up, _ := startGoproxyUpstream(t, "up", "right-pw")
	cfg := testConfig(t)
	trustOrigin(t, cfg, tlsOrigin)
	u := mustURL(t, up)
	u.User = url.UserPassword("up", "wrong-pw")
	cfg.Upstreams = []*url.URL{u}
	cfg.Retry.MaxAttempts = 0
	h := startProxy(t, cfg)
	for i, o := range []string{origin.URL, tlsOrigin.URL} {
		resp, body := get(t, h.client("", ""), o+"/echo", "refused")
		if resp.StatusCode != http.StatusBadGateway || !strings.Contains(body, "upstream proxy "+u.Host) {
			t.Errorf("%s: status %d body %q, want 502 naming the upstream", o, resp.StatusCode, body)
		}
		if strings.Contains(body, "wrong-pw") {
			t.Errorf("%s: body leaks the password: %q", o, body)
		}
		if st := stateOf(t, h, "refused"); st.ErrorScore != float64(i+1) {
			t.Errorf("%s: error score %v, want %d", o, st.ErrorScore, i+1)
		}
	}
}

// TestOrigin407ThroughATunnel: a 407 that can only be the origin's (an
// https origin through an upstream's CONNECT, anything through SOCKS5)
// reaches the client as the origin sent it; it is no upstream failure.
func TestOrigin407ThroughATunnel(t *testing.T) {
	socks, _ := startSOCKS5(t, "", "")
	httpUp, _ := startGoproxyUpstream(t, "", "")
	plain, secure, _ := origins(t, originMux())
	for _, tc := range []struct{ name, up, origin string }{
		{"socks5, https origin", "socks5://u:pw-secret@" + socks, secure.URL},
		{"socks5, http origin", "socks5://u:pw-secret@" + socks, plain.URL},
		{"http upstream, https origin", httpUp, secure.URL},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, cfg := origins(t, originMux())
			trustOrigin(t, cfg, secure)
			cfg.Upstreams = []*url.URL{mustURL(t, tc.up)}
			h := startProxy(t, cfg)
			resp, body := get(t, h.client("", ""), tc.origin+"/status?code=407", "s")
			if resp.StatusCode != http.StatusProxyAuthRequired {
				t.Errorf("client got %d %q, want the origin's 407", resp.StatusCode, body)
			}
			if st := stateOf(t, h, "s"); st.ErrorScore != 0 {
				t.Errorf("error score %v: the origin's answer counted as an upstream failure", st.ErrorScore)
			}
		})
	}
}

// TestRetirementLogLine: each retirement logs one structured line with the
// session, rule, status and host, and never the upstream's credentials.
func TestRetirementLogLine(t *testing.T) {
	origin := httptest.NewServer(originMux())
	defer origin.Close()
	up, _ := startGoproxyUpstream(t, "", "")
	var buf syncBuffer
	logger := slog.New(slog.NewJSONHandler(&buf, nil))
	cfg := testConfig(t)
	u := mustURL(t, up)
	u.User = url.UserPassword("lg", "log-secret")
	cfg.Upstreams = []*url.URL{u}
	h := startProxyLogging(t, cfg, logger)
	get(t, h.client("", ""), origin.URL+"/status?code=429", "logged")
	h.stop()
	var lines []string
	for _, l := range strings.Split(buf.String(), "\n") {
		if strings.Contains(l, `"msg":"session retired"`) {
			lines = append(lines, l)
		}
	}
	if len(lines) != 1 {
		t.Fatalf("%d retirement lines, want 1:\n%s", len(lines), buf.String())
	}
	for _, want := range []string{`"session":"logged"`, `"rule":"blocked-status"`, `"status":429`, `"host":"127.0.0.1"`} {
		if !strings.Contains(lines[0], want) {
			t.Errorf("retirement line lacks %s: %s", want, lines[0])
		}
	}
	if strings.Contains(buf.String(), "log-secret") {
		t.Errorf("the logs leak the upstream password")
	}
}

// syncBuffer is a bytes.Buffer safe for the proxy's concurrent logging.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestRetryBodyWholeOverHTTP2: a request retried on a fresh session after an
// HTTP/2 origin blocked it before taking its whole body sends the retry's
// origin the client's body whole: the first attempt's stream never reads
// the body the retry was given.
func TestRetryBodyWholeOverHTTP2(t *testing.T) {
	const size = 900 << 10
	body := make([]byte, size)
	for i := range body {
		body[i] = byte(i / 4093)
	}
	var conns atomic.Int32
	got := make(chan []byte, 1)
	origin := httptest.NewUnstartedServer(http.NotFoundHandler())
	origin.EnableHTTP2 = true
	origin.Config.TLSNextProto = map[string]func(*http.Server, *tls.Conn, http.Handler){
		"h2": func(_ *http.Server, c *tls.Conn, _ http.Handler) {
			n := conns.Add(1) // one connection a session: the first is the blocked one
			fr, err := proxytest.H2ServerFramer(c)
			if err != nil {
				return
			}
			var enc bytes.Buffer
			head := func(id uint32, status string, end bool) {
				enc.Reset()
				hpack.NewEncoder(&enc).WriteField(hpack.HeaderField{Name: ":status", Value: status})
				fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: enc.Bytes(), EndHeaders: true, EndStream: end})
			}
			var recv []byte
			for {
				f, err := fr.ReadFrame()
				if err != nil {
					return
				}
				switch f := f.(type) {
				case *http2.SettingsFrame:
					if !f.IsAck() {
						fr.WriteSettingsAck()
					}
				case *http2.MetaHeadersFrame:
					if n == 1 { // blocked at once, the body still coming
						head(f.StreamID, "403", false)
						fr.WriteData(f.StreamID, true, []byte("blocked"))
					}
				case *http2.DataFrame:
					if k := uint32(len(f.Data())); k > 0 { // taken, slowly by the first
						if n == 1 {
							time.Sleep(2 * time.Millisecond)
						}
						fr.WriteWindowUpdate(0, k)
						fr.WriteWindowUpdate(f.StreamID, k)
					}
					if n != 1 {
						recv = append(recv, f.Data()...)
						if f.StreamEnded() {
							got <- recv
							head(f.StreamID, "200", true)
						}
					}
				}
			}
		},
	}
	origin.StartTLS()
	t.Cleanup(origin.Close)
	cfg := rulesConfig(t, rules.Spec{Name: "forbidden", Status: []string{"403"}, Action: rules.ActionBad, Retry: true})
	trustOrigin(t, cfg, origin)
	h := startProxy(t, cfg)
	req, _ := http.NewRequest(http.MethodPost, origin.URL+"/upload", bytes.NewReader(body))
	c := h.client("", "")
	c.Transport.(*http.Transport).ForceAttemptHTTP2 = true
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("X-Session-Retries") != "1" {
		t.Fatalf("status %d, retries %q; want 200 after one retry", resp.StatusCode, resp.Header.Get("X-Session-Retries"))
	}
	if second := <-got; !bytes.Equal(second, body) {
		t.Errorf("the retry's origin got %d bytes (equal: false), want the client's %d", len(second), size)
	}
}

// TestRetryNotHeldByStalledBlock: a blocked answer whose body stalls after
// its head (a tarpit) does not hold the retry: the proxy read up to 64 KiB
// of it first, without a bound in time.
func TestRetryNotHeldByStalledBlock(t *testing.T) {
	var n atomic.Int32
	hang := make(chan struct{})
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) == 1 {
			w.Header().Set("Content-Length", "100000")
			w.WriteHeader(http.StatusForbidden)
			io.WriteString(w, "blocked")
			w.(http.Flusher).Flush()
			select { // the rest of the body never comes
			case <-hang:
			case <-r.Context().Done():
			}
			return
		}
		io.WriteString(w, "welcome")
	}))
	defer origin.Close()
	defer close(hang)
	h := startProxy(t, testConfig(t)) // the default rules: a 403 retires and retries
	c := h.client("", "")
	c.Timeout = 10 * time.Second
	resp, err := c.Get(origin.URL + "/page")
	if err != nil {
		t.Fatalf("%v (the origin saw %d requests)", err, n.Load())
	}
	defer resp.Body.Close()
	if body, _ := io.ReadAll(resp.Body); resp.StatusCode != http.StatusOK || string(body) != "welcome" {
		t.Errorf("%d %q, want the retry's 200", resp.StatusCode, body)
	}
}
