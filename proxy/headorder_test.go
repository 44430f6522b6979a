package proxy

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"net/textproto"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/sessionproxy/sessionproxy/proxy/config"
	"github.com/sessionproxy/sessionproxy/proxy/proxytest"
	"github.com/sessionproxy/sessionproxy/proxy/wire"
)

func TestReorderHead(t *testing.T) {
	for _, tc := range []struct {
		name  string
		head  string
		names []string
		want  string
	}{
		{"origin order and case, added lines last",
			"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\nX-A: 2\r\nX-B: 1\r\nX-Session-Id: s\r\n\r\n",
			[]string{"x-b", "SET-COOKIE", "Content-Length", "X-a", "Set-Cookie"},
			"HTTP/1.1 200 OK\r\nx-b: 1\r\nSET-COOKIE: a=1\r\nContent-Length: 2\r\nX-a: 2\r\nSet-Cookie: b=2\r\nX-Session-Id: s\r\n\r\n"},
		{"names with no line left are skipped",
			"HTTP/1.1 204 No Content\r\nB: 1\r\nA: 2\r\n\r\n",
			[]string{"Connection", "a", "Keep-Alive", "b", "b"},
			"HTTP/1.1 204 No Content\r\na: 2\r\nb: 1\r\n\r\n"},
		{"a name is not a prefix of another",
			"HTTP/1.1 200 OK\r\nX-AB: 1\r\nX-A: 2\r\n\r\n",
			[]string{"x-a", "x-ab"},
			"HTTP/1.1 200 OK\r\nx-a: 2\r\nx-ab: 1\r\n\r\n"},
		{"bare line feeds",
			"HTTP/1.1 200 OK\nB: 1\nA: 2\n\n",
			[]string{"A", "B"},
			"HTTP/1.1 200 OK\nA: 2\nB: 1\n\n"},
		{"no names: as written",
			"HTTP/1.1 200 OK\r\nB: 1\r\nA: 2\r\n\r\n", nil,
			"HTTP/1.1 200 OK\r\nB: 1\r\nA: 2\r\n\r\n"},
		{"a folded line: as written",
			"HTTP/1.1 200 OK\r\nB: 1\r\n more\r\nA: 2\r\n\r\n", []string{"A", "B"},
			"HTTP/1.1 200 OK\r\nB: 1\r\n more\r\nA: 2\r\n\r\n"},
		{"not a whole head: as written",
			"HTTP/1.1 200 OK\r\nB: 1\r\nA: 2", []string{"A", "B"},
			"HTTP/1.1 200 OK\r\nB: 1\r\nA: 2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := string(reorderHead(nil, []byte(tc.head), tc.names)); got != tc.want {
				t.Errorf("reorderHead =\n%q\nwant\n%q", got, tc.want)
			}
		})
	}
}

// lineSet is a head's lines, case folded and sorted: what reordering keeps.
func lineSet(head []byte) []string {
	lines := strings.SplitAfter(strings.ToLower(string(head)), "\n")
	slices.Sort(lines)
	return lines
}

// FuzzReorderHead: whatever the head and the names, reordering keeps every
// line (its length and, case aside, its bytes) and the start line.
func FuzzReorderHead(f *testing.F) {
	f.Add([]byte("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-A: 2\r\n\r\n"), "x-a\nCONTENT-LENGTH")
	f.Add([]byte("HTTP/1.1 200 OK\nA: 1\n\tb\n\n"), "a")
	f.Fuzz(func(t *testing.T, head []byte, names string) {
		got := reorderHead(nil, head, strings.Split(names, "\n"))
		if len(got) != len(head) {
			t.Fatalf("%d bytes from %d", len(got), len(head))
		}
		if !slices.Equal(lineSet(got), lineSet(head)) {
			t.Fatalf("lines changed:\n%q\nfrom\n%q", got, head)
		}
		if first, _, _ := bytes.Cut(head, []byte("\n")); !bytes.HasPrefix(got, first) {
			t.Fatalf("start line changed: %q from %q", got, head)
		}
	})
}

// TestHeadOrdererWrites: an armed orderer gathers a head written in pieces,
// passes a 100 Continue on as it is, reorders the head it was armed for
// (a final one, or an interim one passed on) and writes it in one piece
// with the body that came with it; then it passes writes through until
// armed again. A head too large to hold goes as written.
func TestHeadOrdererWrites(t *testing.T) {
	final := "HTTP/1.1 200 OK\r\nB: 1\r\nA: 2\r\n\r\n"
	ordered := "HTTP/1.1 200 OK\r\na: 2\r\nb: 1\r\n\r\n"
	cont := "HTTP/1.1 100 Continue\r\n\r\n"
	for _, tc := range []struct {
		name   string
		pieces []string
		want   []string // the writes that reach the connection
	}{
		{"head and body in one write", []string{final + "body"}, []string{ordered + "body"}},
		{"head in pieces", []string{final[:5], final[5:20], final[20:] + "bo", "dy"}, []string{ordered + "bo", "dy"}},
		{"a 100 Continue first", []string{cont + final[:10], final[10:] + "x"}, []string{cont, ordered + "x"}},
		{"a 100 Continue alone", []string{cont, final}, []string{cont, ordered}},
		{"an interim head passed on", []string{"HTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\nA: 1\r\n\r\n"},
			[]string{"HTTP/1.1 103 Early Hints\r\na: 1\r\nLink: </s.css>\r\n\r\n"}},
		{"a switch of protocols is final", []string{"HTTP/1.1 101 Switching Protocols\r\nUpgrade: ws\r\nConnection: Upgrade\r\n\r\nframe"},
			[]string{"HTTP/1.1 101 Switching Protocols\r\nconnection: Upgrade\r\nupgrade: ws\r\n\r\nframe"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			w := func(p []byte) (int, error) { got = append(got, string(p)); return len(p), nil }
			o := headOrderer{buffers: newHeldBuffers()}
			o.expect([]string{"a", "b", "connection", "upgrade"})
			for _, p := range tc.pieces {
				if n, err := o.write([]byte(p), w); n != len(p) || err != nil {
					t.Fatalf("write %q: %d, %v", p, n, err)
				}
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("wrote\n%q\nwant\n%q", got, tc.want)
			}
			if o.armed() {
				t.Error("still armed after the final head")
			}
			got = nil
			o.write([]byte(final), w)
			if !slices.Equal(got, []string{final}) {
				t.Errorf("unarmed: wrote %q, want it as written", got)
			}
		})
	}

	t.Run("too large", func(t *testing.T) {
		var got bytes.Buffer
		w := func(p []byte) (int, error) { return got.Write(p) }
		o := headOrderer{buffers: newHeldBuffers()}
		o.expect([]string{"a", "b"})
		big := "HTTP/1.1 200 OK\r\nB: 1\r\nX: " + strings.Repeat("v", heldSize) + "\r\nA: 2\r\n\r\nbody"
		for p := []byte(big); len(p) > 0; p = p[min(len(p), 1000):] {
			o.write(p[:min(len(p), 1000)], w)
		}
		if got.String() != big || o.armed() {
			t.Errorf("a head over %d bytes was changed (armed %v)", heldSize, o.armed())
		}
	})

	t.Run("a failed write", func(t *testing.T) {
		failure := errors.New("gone")
		o := headOrderer{buffers: newHeldBuffers()}
		o.expect([]string{"a"})
		n, err := o.write([]byte(final), func([]byte) (int, error) { return 0, failure })
		if n != 0 || !errors.Is(err, failure) {
			t.Errorf("write = %d, %v; want 0, %v", n, err, failure)
		}
	})
}

// rawOrigins starts an HTTP and an HTTPS origin that answer every request
// with response as it is, and a proxy that trusts the HTTPS one.
func rawOrigins(t *testing.T, response string) (plain, secure *httptest.Server, h *harness) {
	plain, secure, cfg := origins(t, rawOriginOf(response))
	return plain, secure, startProxy(t, cfg)
}

// dialProxy opens a connection to h's proxy listener, closed when the test
// ends.
func dialProxy(t *testing.T, h *harness) net.Conn {
	conn, err := net.Dial("tcp", h.proxyURL.Host)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	return conn
}

// readHead reads one response head: its lines, without their endings.
func readHead(t *testing.T, br *bufio.Reader) []string {
	t.Helper()
	var lines []string
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("reading a head: %v (after %q)", err, lines)
		}
		if line == "\r\n" {
			return lines
		}
		lines = append(lines, strings.TrimSuffix(line, "\r\n"))
	}
}

// namesOf returns the header names of a head's lines (readHead's).
func namesOf(head []string) []string {
	var names []string
	for _, line := range head[1:] {
		name, _, _ := strings.Cut(line, ":")
		names = append(names, name)
	}
	return names
}

// orderOrigin answers every request with these bytes: header lines in an
// order no sorting gives, names in mixed case, a repeated name apart.
const orderOrigin = "HTTP/1.1 200 OK\r\nx-b: 1\r\nSET-COOKIE: a=1; Path=/\r\nContent-Length: 2\r\ncontent-type: text/plain\r\nX-a: 2\r\nSet-Cookie: b=2; Path=/\r\n\r\nok"

// TestResponseHeadOrder: an HTTP/1.1 client gets the origin's header lines
// in the origin's order and case, then the proxy's X-Session-* lines;
// plain HTTP and inside an intercepted tunnel, on every response of a
// kept-alive connection.
func TestResponseHeadOrder(t *testing.T) {
	plain, secure, h := rawOrigins(t, orderOrigin)
	wantNames := wire.HeadNames(orderOrigin)
	check := func(t *testing.T, br *bufio.Reader) {
		t.Helper()
		head := readHead(t, br)
		names := namesOf(head)
		if len(names) < len(wantNames) || !slices.Equal(names[:len(wantNames)], wantNames) {
			t.Fatalf("header lines\n%q\nwant the origin's first: %q", head, wantNames)
		}
		for _, name := range names[len(wantNames):] {
			if !strings.HasPrefix(name, "X-Session-") {
				t.Errorf("line %q added after the origin's", name)
			}
		}
		if !slices.Contains(head, "SET-COOKIE: a=1; Path=/") {
			t.Errorf("the origin's first cookie line changed: %q", head)
		}
		if body := make([]byte, 2); func() error { _, err := io.ReadFull(br, body); return err }() != nil || string(body) != "ok" {
			t.Errorf("body %q", body)
		}
	}

	t.Run("plain", func(t *testing.T) {
		conn := dialProxy(t, h)
		br := bufio.NewReader(conn)
		for range 2 {
			fmt.Fprintf(conn, "GET %s/x HTTP/1.1\r\nHost: %s\r\n\r\n", plain.URL, plain.Listener.Addr())
			check(t, br)
		}
	})
	t.Run("tunnel", func(t *testing.T) {
		target := secure.Listener.Addr().String()
		tc := tunnelTo(t, h.proxyURL.Host, target, h.caPool)
		defer tc.Close()
		br := bufio.NewReader(tc)
		for range 2 {
			fmt.Fprintf(tc, "GET /x HTTP/1.1\r\nHost: %s\r\n\r\n", target)
			check(t, br)
		}
	})
}

// getOverH2 sends GET url through an intercepted tunnel of h's proxy over
// HTTP/2 and returns the response, its body read, and the interim
// responses' headers in the order they came.
func getOverH2(t *testing.T, h *harness, url string) (*http.Response, []http.Header) {
	t.Helper()
	c := h.client("", "")
	c.Transport.(*http.Transport).ForceAttemptHTTP2 = true
	var hints []http.Header
	ctx := httptrace.WithClientTrace(context.Background(), &httptrace.ClientTrace{
		Got1xxResponse: func(code int, h textproto.MIMEHeader) error {
			hints = append(hints, http.Header(h).Clone())
			return nil
		},
	})
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.ProtoMajor != 2 {
		t.Fatalf("the client spoke %s", resp.Proto)
	}
	return resp, hints
}

// hintsOrigin answers every request with an Early Hints response, then
// the final one.
const hintsOrigin = "HTTP/1.1 103 Early Hints\r\nlink: </style.css>; rel=preload\r\nX-Hint: 1\r\n\r\n" +
	"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"

// TestInterimResponses: an origin's 103 Early Hints reaches the client
// before the final response, with its own header lines in the origin's
// order and case, none of them left on the final response: plain HTTP, in
// an intercepted tunnel over HTTP/1.1 and HTTP/2. An HTTP/1.0 client,
// which knows no interim responses, gets the final response alone.
func TestInterimResponses(t *testing.T) {
	plain, secure, h := rawOrigins(t, hintsOrigin)
	wantHints := []string{"HTTP/1.1 103 Early Hints", "link: </style.css>; rel=preload", "X-Hint: 1"}
	checkFinal := func(t *testing.T, head []string) {
		t.Helper()
		if len(head) == 0 || head[0] != "HTTP/1.1 200 OK" {
			t.Fatalf("final head %q", head)
		}
		for _, name := range namesOf(head) {
			if strings.EqualFold(name, "Link") || strings.EqualFold(name, "X-Hint") {
				t.Errorf("the interim response's %q is on the final one", name)
			}
		}
	}

	t.Run("plain", func(t *testing.T) {
		conn := dialProxy(t, h)
		br := bufio.NewReader(conn)
		fmt.Fprintf(conn, "GET %s/x HTTP/1.1\r\nHost: %s\r\n\r\n", plain.URL, plain.Listener.Addr())
		if got := readHead(t, br); !slices.Equal(got, wantHints) {
			t.Fatalf("first head %q, want %q", got, wantHints)
		}
		checkFinal(t, readHead(t, br))
	})
	t.Run("plain HTTP/1.0", func(t *testing.T) {
		conn := dialProxy(t, h)
		br := bufio.NewReader(conn)
		fmt.Fprintf(conn, "GET %s/x HTTP/1.0\r\nHost: %s\r\n\r\n", plain.URL, plain.Listener.Addr())
		head := readHead(t, br)
		if len(head) == 0 || !strings.HasSuffix(head[0], " 200 OK") {
			t.Fatalf("an HTTP/1.0 client got %q first", head)
		}
	})
	t.Run("tunnel HTTP/1.1", func(t *testing.T) {
		target := secure.Listener.Addr().String()
		tc := tunnelTo(t, h.proxyURL.Host, target, h.caPool)
		defer tc.Close()
		br := bufio.NewReader(tc)
		fmt.Fprintf(tc, "GET /x HTTP/1.1\r\nHost: %s\r\n\r\n", target)
		if got := readHead(t, br); !slices.Equal(got, wantHints) {
			t.Fatalf("first head %q, want %q", got, wantHints)
		}
		checkFinal(t, readHead(t, br))
	})
	t.Run("tunnel HTTP/2", func(t *testing.T) {
		resp, hints := getOverH2(t, h, secure.URL+"/x")
		if len(hints) != 1 || hints[0].Get("Link") != "</style.css>; rel=preload" || hints[0].Get("X-Hint") != "1" {
			t.Errorf("interim responses %v, want one 103 with the origin's lines", hints)
		}
		if resp.Header.Get("Link") != "" || resp.Header.Get("X-Hint") != "" {
			t.Errorf("the interim response's lines are on the final one: %v", resp.Header)
		}
	})
}

// TestInterimDropsHopByHop: an interim response's lines of the origin's
// hop (Connection, Keep-Alive, what Connection names) do not go on, over
// HTTP/2 (where they make the message malformed) or HTTP/1.1.
func TestInterimDropsHopByHop(t *testing.T) {
	const response = "HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\nConnection: keep-alive, X-Hop\r\nKeep-Alive: timeout=5\r\nX-Hop: 1\r\n\r\n" +
		"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
	plain, secure, h := rawOrigins(t, response)
	hop := func(name string) bool {
		return slices.ContainsFunc([]string{"Connection", "Keep-Alive", "X-Hop"}, func(n string) bool { return strings.EqualFold(n, name) })
	}

	t.Run("HTTP/1.1", func(t *testing.T) {
		conn := dialProxy(t, h)
		br := bufio.NewReader(conn)
		fmt.Fprintf(conn, "GET %s/x HTTP/1.1\r\nHost: %s\r\n\r\n", plain.URL, plain.Listener.Addr())
		head := readHead(t, br)
		if !strings.Contains(head[0], " 103 ") || !slices.Equal(namesOf(head), []string{"Link"}) {
			t.Errorf("interim head %q, want the 103 with its Link alone", head)
		}
	})
	t.Run("HTTP/2", func(t *testing.T) {
		_, hints := getOverH2(t, h, secure.URL+"/x")
		if len(hints) != 1 || hints[0].Get("Link") != "</a.css>" {
			t.Fatalf("interim responses %v", hints)
		}
		for name := range hints[0] {
			if hop(name) {
				t.Errorf("an HTTP/2 interim response carries %s", name)
			}
		}
	})
}

// TestResponseHeadOrderLargeHead: a head longer than the origin
// connection's read buffer (4 KiB) but within what the client's side
// holds (16 KiB) keeps the origin's order and case too.
func TestResponseHeadOrderLargeHead(t *testing.T) {
	response := "HTTP/1.1 200 OK\r\nx-b: 1\r\nx-a: 2\r\nX-Pad: " + strings.Repeat("p", 9000) + "\r\nContent-Length: 2\r\n\r\nok"
	plain, _, h := rawOrigins(t, response)
	conn := dialProxy(t, h)
	br := bufio.NewReader(conn)
	fmt.Fprintf(conn, "GET %s/x HTTP/1.1\r\nHost: %s\r\n\r\n", plain.URL, plain.Listener.Addr())
	names := namesOf(readHead(t, br))
	if want := wire.HeadNames(response); len(names) < len(want) || !slices.Equal(names[:len(want)], want) {
		t.Errorf("a %d-byte head reached the client with names %q, want the origin's %q first", len(response), names, want)
	}
}

// TestInterimFromHTTP2Origin: an HTTP/2 origin's 103 (a browser profile
// speaks HTTP/2 to it) reaches the client before the final response, over
// HTTP/1.1 and HTTP/2 inside the tunnel, without its lines on the final
// response.
func TestInterimFromHTTP2Origin(t *testing.T) {
	origin := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ProtoMajor != 2 {
			http.Error(w, "want HTTP/2, got "+r.Proto, http.StatusHTTPVersionNotSupported)
			return
		}
		w.Header().Set("Link", "</style.css>; rel=preload")
		w.WriteHeader(http.StatusEarlyHints)
		w.Header().Del("Link")
		w.Header().Set("Content-Length", "2")
		io.WriteString(w, "ok")
	}))
	origin.EnableHTTP2 = true
	origin.StartTLS()
	t.Cleanup(origin.Close)
	cfg := testConfig(t)
	cfg.Fingerprint = config.FingerprintChrome
	trustOrigin(t, cfg, origin)
	h := startProxy(t, cfg)

	t.Run("HTTP/1.1", func(t *testing.T) {
		target := origin.Listener.Addr().String()
		tc := tunnelTo(t, h.proxyURL.Host, target, h.caPool)
		defer tc.Close()
		br := bufio.NewReader(tc)
		fmt.Fprintf(tc, "GET /x HTTP/1.1\r\nHost: %s\r\n\r\n", target)
		hints := readHead(t, br)
		if len(hints) < 2 || !strings.HasPrefix(hints[0], "HTTP/1.1 103 ") || !slices.ContainsFunc(hints, func(l string) bool {
			return strings.EqualFold(l, "Link: </style.css>; rel=preload")
		}) {
			t.Fatalf("first head %q, want a 103 with the origin's Link", hints)
		}
		final := readHead(t, br)
		if final[0] != "HTTP/1.1 200 OK" || slices.ContainsFunc(namesOf(final), func(n string) bool { return strings.EqualFold(n, "Link") }) {
			t.Errorf("final head %q", final)
		}
	})
	t.Run("HTTP/2", func(t *testing.T) {
		resp, hints := getOverH2(t, h, origin.URL+"/x")
		if resp.StatusCode != http.StatusOK || len(hints) != 1 || hints[0].Get("Link") != "</style.css>; rel=preload" {
			t.Errorf("status %d, interim responses %v; want 200 after one 103 with the origin's Link", resp.StatusCode, hints)
		}
		if resp.Header.Get("Link") != "" {
			t.Errorf("the interim response's Link is on the final one: %v", resp.Header)
		}
	})
}

// rawH2Origin starts an HTTPS origin that speaks HTTP/2 itself, frame by
// frame: on each request's HEADERS it sends a 103 with a link, then a 200
// whose fields come in the order fields gives (an order no sorting gives),
// and "ok" ending the stream, without waiting for a request body.
func rawH2Origin(t *testing.T, fields ...string) *httptest.Server {
	origin := httptest.NewUnstartedServer(http.NotFoundHandler())
	origin.EnableHTTP2 = true
	origin.Config.TLSNextProto = map[string]func(*http.Server, *tls.Conn, http.Handler){
		"h2": func(_ *http.Server, c *tls.Conn, _ http.Handler) { serveRawH2(c, fields) },
	}
	origin.StartTLS()
	t.Cleanup(origin.Close)
	return origin
}

// serveRawH2 is rawH2Origin's side of one connection, until it ends.
func serveRawH2(c net.Conn, fields []string) {
	fr, err := proxytest.H2ServerFramer(c)
	if err != nil {
		return
	}
	var block bytes.Buffer
	enc := hpack.NewEncoder(&block)
	head := func(id uint32, kv ...string) {
		block.Reset()
		for i := 0; i+1 < len(kv); i += 2 {
			enc.WriteField(hpack.HeaderField{Name: kv[i], Value: kv[i+1]})
		}
		fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: block.Bytes(), EndHeaders: true})
	}
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
			head(f.StreamID, ":status", "103", "x-hint", "1", "link", "</a.css>; rel=preload")
			head(f.StreamID, append([]string{":status", "200"}, fields...)...)
			fr.WriteData(f.StreamID, true, []byte("ok"))
		}
	}
}

// TestResponseHeadOrderFromHTTP2Origin: an HTTP/1.1 client in a tunnel,
// answered by an HTTP/2 origin (its session has a browser's profile, which
// offers h2), gets the origin's header lines in the origin's order and
// case (HTTP/2's lower case), an interim response's too, the framing the
// proxy adds and its X-Session-* lines after them; so does a plain-HTTP
// client that sends an https:// URL to the proxy. Also when the client
// asked for a 100 Continue, which goproxy and net/http write from the
// goroutine that sends the body while the response is on its way (-race
// checks the two writers); net/http's server takes no lock for a 1xx
// beside it, so a plain-HTTP client that waits for one gets no 103.
func TestResponseHeadOrderFromHTTP2Origin(t *testing.T) {
	fields := []string{"x-b", "1", "set-cookie", "a=1; Path=/", "content-type", "text/plain", "x-a", "2", "set-cookie", "b=2; Path=/"}
	origin := rawH2Origin(t, fields...)
	cfg := testConfig(t)
	cfg.Fingerprint = config.FingerprintChrome
	cfg.Retry.MaxAttempts = 0 // a request body streams: goproxy's 100 Continue comes from the goroutine that sends it
	trustOrigin(t, cfg, origin)
	h := startProxy(t, cfg)
	var wantNames []string
	for i := 0; i < len(fields); i += 2 {
		wantNames = append(wantNames, fields[i])
	}
	target := origin.Listener.Addr().String()
	// check reads the answer: a 100 Continue when the client expects one,
	// unless the response came before the body was asked for. The server
	// may close the connection after a response written before it read the
	// whole body (Connection: close).
	check := func(t *testing.T, br *bufio.Reader, expect bool, wantHints int) {
		t.Helper()
		var head []string
		hints, continued := 0, false
		for head = readHead(t, br); strings.HasPrefix(head[0], "HTTP/1.1 1"); head = readHead(t, br) {
			switch {
			case expect && !continued && len(head) == 1 && head[0] == "HTTP/1.1 100 Continue":
				continued = true // one, before or after the 103
			case strings.HasPrefix(head[0], "HTTP/1.1 103 ") && slices.Equal(namesOf(head), []string{"x-hint", "link"}):
				hints++
			default:
				t.Fatalf("interim head %q, want the origin's 103 with its lines as sent", head)
			}
		}
		if hints != wantHints || head[0] != "HTTP/1.1 200 OK" {
			t.Fatalf("final head %q after %d hints", head, hints)
		}
		names := namesOf(head)
		if len(names) < len(wantNames) || !slices.Equal(names[:len(wantNames)], wantNames) {
			t.Fatalf("header lines\n%q\nwant the origin's first: %q", head, wantNames)
		}
		for _, name := range names[len(wantNames):] {
			if !strings.HasPrefix(name, "X-Session-") && name != "Content-Length" && name != "Transfer-Encoding" && !(expect && name == "Connection") {
				t.Errorf("line %q added after the origin's", name)
			}
		}
		if !slices.Contains(head, "set-cookie: a=1; Path=/") {
			t.Errorf("the origin's first cookie line changed: %q", head)
		}
	}

	for _, via := range []string{"tunnel", "plain"} {
		conn := func(t *testing.T) (c net.Conn, path string) {
			if via == "plain" { // an absolute https:// URL, sent to the proxy as it is
				return dialProxy(t, h), origin.URL + "/x"
			}
			tc := tunnelTo(t, h.proxyURL.Host, target, h.caPool)
			t.Cleanup(func() { tc.Close() })
			return tc, "/x"
		}
		t.Run(via+"/GET", func(t *testing.T) {
			c, path := conn(t)
			fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: %s\r\n\r\n", path, target)
			check(t, bufio.NewReader(c), false, 1)
		})
		// net/http takes "100-continue" as a token anywhere in the first
		// Expect line, not only in a comma list.
		for _, expect := range []string{"100-continue", "100-continue foo"} {
			t.Run(via+"/Expect: "+expect, func(t *testing.T) {
				for range 5 { // the 100 Continue and the answer race each time
					c, path := conn(t)
					fmt.Fprintf(c, "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Length: 4\r\nExpect: %s\r\n\r\n", path, target, expect)
					go io.WriteString(c, "body") // whenever it is asked for; the origin does not wait
					hints := 1
					if via == "plain" {
						hints = 0 // see streamWriter.Interim
					}
					check(t, bufio.NewReader(c), true, hints)
					c.Close()
				}
			})
		}
	}
}

// stallConn records writes in the order they take effect; the first one
// stalls, once recorded, until release is closed (a TLS write in progress
// when another goroutine's write comes).
type stallConn struct {
	net.Conn
	mu      sync.Mutex
	writes  [][]byte
	stalled bool
	started chan struct{}
	release chan struct{}
}

func (c *stallConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	c.writes = append(c.writes, append([]byte(nil), p...))
	stall := !c.stalled
	c.stalled = true
	c.mu.Unlock()
	if stall {
		close(c.started)
		<-c.release
	}
	return len(p), nil
}

// TestInterimBesideContinue: in a tunnel, an interim head goes to the
// client in one write whatever its size, so goproxy's 100 Continue,
// written from the goroutine that sends an HTTP/2 origin the body, lands
// before or after it, never inside (a head larger than the orderer holds
// would otherwise go in two writes).
func TestInterimBesideContinue(t *testing.T) {
	for _, links := range []int{3, 300} { // a head of ~200 B; one of ~21 KiB, over heldSize
		t.Run(strconv.Itoa(links), func(t *testing.T) {
			sc := &stallConn{started: make(chan struct{}), release: make(chan struct{})}
			mc := &mitmConn{}
			var pc net.Conn = sc
			mc.plain.Store(&pc)
			mc.respHeads.buffers = newHeldBuffers()
			resp := &http.Response{StatusCode: http.StatusEarlyHints, Status: "103 Early Hints", Header: http.Header{}}
			var names []string
			for range links {
				resp.Header.Add("Link", "</assets/"+strings.Repeat("x", 50)+".css>; rel=preload; as=style")
				names = append(names, "link")
			}
			done := make(chan struct{})
			go func() { mc.Interim(resp, names); close(done) }() // goproxy's goroutine
			<-sc.started
			mc.Write([]byte(continueHead)) // the body's goroutine (goproxy's continueOnRead)
			close(sc.release)
			<-done
			all := bytes.Join(sc.writes, nil)
			if i := bytes.Index(all, []byte(continueHead)); i != 0 && i != len(all)-len(continueHead) {
				t.Fatalf("100 Continue at byte %d of %d, inside the 103's head (%d writes)", i, len(all), len(sc.writes))
			}
		})
	}
}
