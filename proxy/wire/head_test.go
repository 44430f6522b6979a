package wire

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"golang.org/x/net/http2"
)

func TestHeadNames(t *testing.T) {
	for _, tc := range []struct {
		head string
		want []string
	}{
		{"GET / HTTP/1.1\r\n\r\n", nil},
		{"GET / HTTP/1.1\r\nA: 1\r\nb:2\r\n\r\nC: body", []string{"A", "b"}},
		{"GET / HTTP/1.1\r\nA: 1\r\n\tmore\r\n B\r\n\r\n", []string{"A"}},
		{"GET / HTTP/1.1\r\nA: 1", []string{"A"}},
		{"GET / HTTP/1.1\r\n:bad\r\nok: 1\r\n\r\n", []string{"ok"}},
		{"HTTP/1.1 200 OK\nx-b: 1\nContent-Type: t\n\nbody: x", []string{"x-b", "Content-Type"}},
		{"", nil},
	} {
		if got := HeadNames(tc.head); !slices.Equal(got, tc.want) {
			t.Errorf("HeadNames(%q) = %q, want %q", tc.head, got, tc.want)
		}
	}
}

func TestHeadEnd(t *testing.T) {
	for _, tc := range []struct {
		b    string
		want int
	}{
		{"HTTP/1.1 200 OK\r\n\r\nbody", 19},
		{"HTTP/1.1 200 OK\r\nA: 1\r\n\r\n", 25},
		{"HTTP/1.1 200 OK\nA: 1\n\nbody", 22},
		{"HTTP/1.1 200 OK\r\nA: 1\n\r\nB: 2\r\n\r\n", 24},
		{"HTTP/1.1 200 OK\r\nA: 1\r\n", -1},
		{"", -1},
	} {
		if got := HeadEnd([]byte(tc.b)); got != tc.want {
			t.Errorf("HeadEnd(%q) = %d, want %d", tc.b, got, tc.want)
		}
	}
}

// TestResponseNames: a response says the names of its header lines as the
// origin wrote them, in order and case, repeated names included; an
// interim 103's names are not the final response's.
func TestResponseNames(t *testing.T) {
	for _, tc := range []struct {
		name, response string
		want           []string
	}{
		{"order and case", "HTTP/1.1 200 OK\r\nx-b: 1\r\nSET-COOKIE: a=1\r\nContent-Length: 2\r\nx-A: 2\r\nSet-Cookie: b=2\r\n\r\nok",
			[]string{"x-b", "SET-COOKIE", "Content-Length", "x-A", "Set-Cookie"}},
		{"after an interim response", "HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok",
			[]string{"content-length"}},
		{"larger than the read buffer", "HTTP/1.1 200 OK\r\nx-b: 1\r\nX-Big: " + strings.Repeat("v", 9000) + "\r\nx-a: 2\r\nContent-Length: 2\r\n\r\nok",
			[]string{"x-b", "X-Big", "x-a", "Content-Length"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := startRawH1(t, tc.response)
			tr := plainTransport(srv.ln.Addr().String())
			tr.MaxResponseHeaderBytes = 1 << 20
			defer tr.Close()
			req, _ := http.NewRequest("GET", "http://"+srv.ln.Addr().String()+"/", nil)
			resp, err := tr.RoundTrip(req)
			if err != nil {
				t.Fatal(err)
			}
			got := ResponseNames(resp)
			if b, _ := io.ReadAll(resp.Body); string(b) != "ok" {
				t.Errorf("body %q", b)
			}
			resp.Body.Close()
			if !slices.Equal(got, tc.want) {
				t.Errorf("ResponseNames = %q, want %q", got, tc.want)
			}
		})
	}
}

// FuzzHeadNames: HeadNames and HeadEnd take any bytes; every name is a
// field line's, without a colon or a line break.
func FuzzHeadNames(f *testing.F) {
	f.Add("HTTP/1.1 200 OK\r\nA: 1\r\nb:2\r\n\r\nbody")
	f.Add("GET / HTTP/1.1\nA: 1\n\tfold\n\n")
	f.Fuzz(func(t *testing.T, head string) {
		end := HeadEnd([]byte(head))
		if end > len(head) || end < -1 {
			t.Fatalf("HeadEnd = %d for %d bytes", end, len(head))
		}
		for _, name := range HeadNames(head) {
			if name == "" || strings.ContainsAny(name, ":\n") {
				t.Fatalf("name %q", name)
			}
		}
	})
}

// interimRecorder is an Interim that keeps what it is given.
type interimRecorder struct{ got []*http.Response }

func (r *interimRecorder) Interim(resp *http.Response, _ []string) { r.got = append(r.got, resp) }

// TestH2Interim: an HTTP/2 server's interim responses reach the request's
// Interim in order before RoundTrip returns; the connection's reader never
// waits for the caller: one that arrives while maxInterim wait unread is
// dropped, never the final response.
func TestH2Interim(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.Atoi(r.URL.Query().Get("n"))
		for i := range n {
			w.Header().Set("Link", fmt.Sprintf("</%d.css>", i))
			w.WriteHeader(http.StatusEarlyHints)
		}
		w.Header().Del("Link")
		io.WriteString(w, "ok")
	}))
	srv.EnableHTTP2 = true
	srv.StartTLS()
	defer srv.Close()
	tr := h2TLSTransport(srv.Listener.Addr().String())
	defer tr.Close()
	for _, n := range []int{1, maxInterim, 10} {
		t.Run(strconv.Itoa(n), func(t *testing.T) {
			rec := &interimRecorder{}
			req, _ := http.NewRequest(http.MethodGet, srv.URL+"/?n="+strconv.Itoa(n), nil)
			req = req.WithContext(context.WithValue(req.Context(), InterimKey{}, Interim(rec)))
			resp, err := tr.RoundTrip(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK || string(body) != "ok" || resp.ProtoMajor != 2 {
				t.Fatalf("final response %s %d %q", resp.Proto, resp.StatusCode, body)
			}
			if got := len(rec.got); got < min(n, maxInterim) || got > n || n <= maxInterim && got != n {
				t.Fatalf("%d of %d interim responses passed on", got, n)
			}
			last := -1
			for _, r := range rec.got {
				var i int
				if _, err := fmt.Sscanf(r.Header.Get("Link"), "</%d.css>", &i); err != nil || r.StatusCode != http.StatusEarlyHints || i <= last {
					t.Errorf("interim %d %v after the one of %d", r.StatusCode, r.Header, last)
				}
				last = i
			}
		})
	}
}

// namesRecorder is an Interim that keeps the names it is given.
type namesRecorder struct{ got [][]string }

func (r *namesRecorder) Interim(_ *http.Response, names []string) { r.got = append(r.got, names) }

// TestResponseNamesH2: an HTTP/2 response's names are its fields' in the
// order the server sent them, repeats kept, pseudo-headers left out; an
// interim response's reach the request's Interim with it.
func TestResponseNamesH2(t *testing.T) {
	addr, seen := hostileH2(t, nil, func(fr *http2.Framer, id uint32) {
		writeFields(fr, id, false, ":status", "103", "link", "</a.css>", "x-hint", "1")
		writeFields(fr, id, false, ":status", "200", "x-b", "1", "set-cookie", "a=1", "content-type", "text/plain", "x-a", "2", "set-cookie", "b=2")
		fr.WriteData(id, true, []byte("ok"))
	})
	c := dialH2(t, addr)
	rec := &namesRecorder{}
	req, _ := http.NewRequest("GET", "https://origin.test/", nil)
	req = req.WithContext(context.WithValue(req.Context(), InterimKey{}, Interim(rec)))
	resp, err := c.RoundTrip(req, 0)
	if err != nil {
		t.Fatal(err)
	}
	<-seen
	got := ResponseNames(resp)
	if b, _ := io.ReadAll(resp.Body); string(b) != "ok" {
		t.Errorf("body %q", b)
	}
	resp.Body.Close()
	if want := []string{"x-b", "set-cookie", "content-type", "x-a", "set-cookie"}; !slices.Equal(got, want) {
		t.Errorf("ResponseNames = %q, want %q", got, want)
	}
	if want := [][]string{{"link", "x-hint"}}; len(rec.got) != 1 || !slices.Equal(rec.got[0], want[0]) {
		t.Errorf("interim names %q, want %q", rec.got, want)
	}
}

// pipeTransport is a Transport whose one connection is c, with a response
// head timeout and limit (0: none, the default).
func pipeTransport(c net.Conn, headTimeout time.Duration, maxHead int64) *Transport {
	return &Transport{
		Key:                    func(*http.Request) string { return "k" },
		Dial:                   func(context.Context, *http.Request) (*Conn, error) { return &Conn{Conn: c}, nil },
		ResponseHeaderTimeout:  headTimeout,
		MaxResponseHeaderBytes: maxHead,
	}
}

// answerOnPipe reads one request on server, writes heads, then waits for
// the client to go.
func answerOnPipe(server net.Conn, heads ...string) {
	defer server.Close()
	if _, err := http.ReadRequest(bufio.NewReader(server)); err != nil {
		return
	}
	for _, h := range heads {
		if _, err := io.WriteString(server, h); err != nil {
			return
		}
	}
	io.Copy(io.Discard, server)
}

// TestInterimKeepsHeadTimeout: the response head timeout runs until the
// final head, whatever interim responses came before it.
func TestInterimKeepsHeadTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		client, server := net.Pipe()
		defer client.Close()
		go answerOnPipe(server, "HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n") // then silence
		tr := pipeTransport(client, 100*time.Millisecond, 0)
		ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
		defer cancel()
		start := time.Now()
		_, err := tr.RoundTrip(httptest.NewRequest(http.MethodGet, "http://origin.test/", nil).WithContext(ctx))
		var ne net.Error
		if took := time.Since(start); took != 100*time.Millisecond || !errors.As(err, &ne) || !ne.Timeout() {
			t.Fatalf("RoundTrip returned after %v with %v; want a head timeout after 100ms", took, err)
		}
	})
}

// TestInterimHeadsCountTowardsLimit: interim heads that are not handed on
// count towards MaxResponseHeaderBytes with the final head (an origin cannot
// stream them without end); each one handed on starts the count again.
func TestInterimHeadsCountTowardsLimit(t *testing.T) {
	continues := strings.Repeat("HTTP/1.1 100 Continue\r\n\r\n", 1000) // 25 KB
	hints := strings.Repeat("HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n", 1000)
	for _, tc := range []struct {
		name, heads string
		interim     bool // an Interim takes the 1xx
		ok          bool
	}{
		{"100 Continue flood", continues, false, false},
		{"103 flood, dropped", hints, false, false},
		{"103s handed on", hints, true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			client, server := net.Pipe()
			defer client.Close()
			go answerOnPipe(server, tc.heads, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
			tr := pipeTransport(client, 0, 4096)
			req := httptest.NewRequest(http.MethodGet, "http://origin.test/", nil)
			rec := &interimRecorder{}
			if tc.interim {
				req = req.WithContext(context.WithValue(req.Context(), InterimKey{}, rec))
			}
			resp, err := tr.RoundTrip(req)
			if err == nil {
				resp.Body.Close()
			}
			if (err == nil) != tc.ok {
				t.Fatalf("RoundTrip: %v (%d interim handed on); want ok %v", err, len(rec.got), tc.ok)
			}
		})
	}
}

// TestBadStatusLine: a status line with a control character in it (a bare
// CR above all, which a client may read as the end of the line) is a
// malformed response, never passed on.
func TestBadStatusLine(t *testing.T) {
	for _, head := range []string{
		"HTTP/1.1 200 OK\rSet-Cookie: injected=1\r\nContent-Length: 2\r\n\r\nok",
		"HTTP/1.1 103 Hints\rSet-Cookie: injected=1\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
		"HTTP/1.1 200 O\x00K\r\nContent-Length: 2\r\n\r\nok",
	} {
		client, server := net.Pipe()
		go answerOnPipe(server, head)
		resp, err := pipeTransport(client, 0, 0).RoundTrip(httptest.NewRequest(http.MethodGet, "http://origin.test/", nil))
		if err == nil {
			resp.Body.Close()
			t.Errorf("%q: got %q, want an error", head, resp.Status)
		} else if !strings.Contains(err.Error(), "malformed status line") {
			t.Errorf("%q: %v, want a malformed status line", head, err)
		}
		client.Close()
	}
	// A tab is allowed in a reason phrase.
	client, server := net.Pipe()
	defer client.Close()
	go answerOnPipe(server, "HTTP/1.1 200 All\tgood\r\nContent-Length: 2\r\n\r\nok")
	resp, err := pipeTransport(client, 0, 0).RoundTrip(httptest.NewRequest(http.MethodGet, "http://origin.test/", nil))
	if err != nil {
		t.Fatalf("a tab in the reason phrase: %v", err)
	}
	resp.Body.Close()
}
