package proxy

import (
	"bufio"
	"bytes"
	"io"
	"maps"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestH1ReaderKeepsHeaderOrder: each request head's field names come out in
// the order and case the client wrote them, one list per request, in order.
func TestH1ReaderKeepsHeaderOrder(t *testing.T) {
	stream := "POST /a HTTP/1.1\r\nHost: h\r\nzebra: 1\r\nX-lower-Mixed: 2\r\n  folded\r\nCONTENT-LENGTH: 3\r\nzebra: 3\r\n\r\nabc" +
		"GET /b HTTP/1.1\nhost: h\nAccept: */*\n\n"
	r := newH1Reader(fakeConn{r: strings.NewReader(stream)}, connLimits{maxHeaderBytes: 1024, readHeader: time.Second})
	br := bufio.NewReader(r)
	want := [][]string{
		{"Host", "zebra", "X-lower-Mixed", "CONTENT-LENGTH", "zebra"},
		{"host", "Accept"},
	}
	for i, w := range want {
		req, err := http.ReadRequest(br)
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		io.Copy(io.Discard, req.Body)
		if got := r.heads.take(); !slices.Equal(got, w) {
			t.Errorf("request %d: names %q, want %q", i, got, w)
		}
	}
	if got := r.heads.take(); got != nil {
		t.Errorf("a third head %q", got)
	}
}

// scanAgainstNetHTTP feeds stream to a headScanner in pieces of step bytes
// and checks it against net/http's parser: for every request net/http
// reads, the scanner has that request's names, which are its header
// fields (less Host and Transfer-Encoding, which net/http moves out).
func scanAgainstNetHTTP(t *testing.T, stream []byte, step int) {
	s := headScanner{limit: 1 << 16}
	for p := stream; len(p) > 0; {
		k := min(step, len(p))
		s.feed(p[:k])
		p = p[k:]
	}
	br := bufio.NewReader(bytes.NewReader(stream))
	for i := 0; ; i++ {
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		if _, err := io.Copy(io.Discard, req.Body); err != nil {
			return
		}
		names := s.heads.take()
		got := map[string]bool{}
		for _, n := range names {
			if k := http.CanonicalHeaderKey(n); k != "Host" && k != "Transfer-Encoding" {
				got[k] = true
			}
		}
		want := map[string]bool{}
		for k := range req.Header {
			want[k] = true
		}
		if !maps.Equal(got, want) {
			t.Fatalf("request %d: scanner names %q, net/http fields %v", i, names, req.Header)
		}
		if req.Method == http.MethodConnect {
			return
		}
	}
}

func TestHeadScanner(t *testing.T) {
	streams := append([]string{
		"GET / HTTP/1.1\r\nHost: h\r\nA: 1\r\n\r\nGET /2 HTTP/1.1\r\nB: 2\r\n\r\n",
		"POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\nGET / HTTP/1.1\r\nC: 3\r\n\r\n",
		"POST / HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n5;x=y\r\nGET /\r\n0\r\nTr: 1\r\n\r\nGET / HTTP/1.1\r\nD: 4\r\n\r\n",
		"CONNECT h:443 HTTP/1.1\r\nHost: h:443\r\n\r\nGET / HTTP/1.1\r\nE: 5\r\n\r\n",
	}, fuzzSeeds...)
	for _, stream := range streams {
		for _, step := range []int{1, 3, 7, 4096} {
			scanAgainstNetHTTP(t, []byte(stream), step)
		}
	}
}

func FuzzHeadScanner(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add([]byte(s), uint16(5))
	}
	f.Fuzz(func(t *testing.T, stream []byte, step uint16) {
		scanAgainstNetHTTP(t, stream, int(step)%64+1)
	})
}

// headArrived: whether the buffer holds a head's end, with CRLF or bare LF
// lines; a head still arriving does not.
func TestHeadArrived(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want bool
	}{
		{"GET / HTTP/1.1\r\nHost: a\r\n\r\n", true},
		{"GET / HTTP/1.1\nHost: a\n\n", true},
		{"POST / HTTP/1.1\r\nContent-Length: 2\r\n\r\nok", true},
		{"GET / HTTP/1.1\r\nHost: a\r\n", false},
		{"GET / HTTP/1.1\r\nHost: a\r\n\r", false},
	} {
		br := bufio.NewReader(strings.NewReader(tc.in))
		br.Peek(1)
		if got := headArrived(br); got != tc.want {
			t.Errorf("headArrived(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}
