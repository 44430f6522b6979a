package wire

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
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
	field := func(enc *hpack.Encoder, kv ...string) {
		for i := 0; i < len(kv); i += 2 {
			enc.WriteField(hpack.HeaderField{Name: kv[i], Value: kv[i+1]})
		}
	}
	addr, seen := hostileH2(t, nil, func(fr *http2.Framer, id uint32) {
		var block bytes.Buffer
		enc := hpack.NewEncoder(&block)
		field(enc, ":status", "103", "link", "</a.css>", "x-hint", "1")
		fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: block.Bytes(), EndHeaders: true})
		block.Reset()
		field(enc, ":status", "200", "x-b", "1", "set-cookie", "a=1", "content-type", "text/plain", "x-a", "2", "set-cookie", "b=2")
		fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: block.Bytes(), EndHeaders: true})
		fr.WriteData(id, true, []byte("ok"))
	})
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c, err := NewH2Conn(nc, Preface{}, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
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
