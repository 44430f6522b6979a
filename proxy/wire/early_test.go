package wire

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestH1EarlyResponseDuringUpload: an origin that answers before it has
// read the request's body (a 413 to an upload too large for it) and closes
// the connection: the client gets that answer, not a write error.
func TestH1EarlyResponseDuringUpload(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "close")
		w.WriteHeader(http.StatusRequestEntityTooLarge)
		io.WriteString(w, "too large")
	}))
	t.Cleanup(srv.Close)
	tr := plainTransport(srv.Listener.Addr().String())
	t.Cleanup(tr.CloseIdleConnections)
	body := bytes.Repeat([]byte("x"), 64<<20)
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/upload", bytes.NewReader(body))
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatalf("RoundTrip: %v", err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(string(got), "too large") {
		t.Errorf("got %d %q, want the origin's 413", resp.StatusCode, got)
	}
}

// errReader fails its reads with err.
type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }

// TestH1UploadFailsOnTheClientSide: a body that cannot be read, or that
// ends short of its Content-Length, fails the request at once with its
// own error; no answer from the origin is waited for.
func TestH1UploadFailsOnTheClientSide(t *testing.T) {
	heads := make(chan struct{}, 2)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		heads <- struct{}{}
		<-r.Context().Done() // silent until the proxy goes
	}))
	t.Cleanup(srv.Close)
	tr := plainTransport(srv.Listener.Addr().String())
	t.Cleanup(tr.CloseIdleConnections)
	broken := errors.New("client went away")
	for _, tc := range []struct {
		name string
		body io.Reader
		n    int64
		want string
	}{
		{"short", strings.NewReader("abc"), 10, "body of 3 bytes, not the 10 announced"},
		{"unreadable", io.MultiReader(strings.NewReader("abc"), errReader{broken}), 10, broken.Error()},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL+"/", tc.body)
		req.ContentLength = tc.n
		_, err := tr.RoundTrip(req)
		late := ctx.Err()
		cancel()
		if err == nil || !strings.Contains(err.Error(), tc.want) || late != nil {
			t.Errorf("%s: %v, want an error naming %q at once", tc.name, err, tc.want)
		}
	}
}

// TestH1IdleCloseWith408: a server that closes a kept connection while it
// is idle, with a 408 (as nginx and Go's server may), makes the next
// request's write fail: the 408 is not taken for that request's early
// answer, and the request goes again on a new connection.
func TestH1IdleCloseWith408(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	closed := make(chan struct{})
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		br := bufio.NewReader(c)
		if _, err := http.ReadRequest(br); err == nil {
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
			io.WriteString(c, "HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
		}
		c.Close()
		close(closed)
		if c, err = ln.Accept(); err != nil {
			return
		}
		defer c.Close()
		br = bufio.NewReader(c)
		if req, err := http.ReadRequest(br); err == nil {
			io.Copy(io.Discard, req.Body)
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok2")
		}
	}()
	tr := plainTransport(ln.Addr().String())
	defer tr.Close()
	req, _ := http.NewRequest(http.MethodGet, "http://"+ln.Addr().String()+"/", nil)
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	io.ReadAll(resp.Body)
	resp.Body.Close()
	<-closed
	req, _ = http.NewRequest(http.MethodPost, "http://"+ln.Addr().String()+"/upload", bytes.NewReader(bytes.Repeat([]byte("x"), 16<<20)))
	resp, err = tr.RoundTrip(req)
	if err != nil {
		t.Fatalf("POST after the idle close: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || string(body) != "ok2" {
		t.Errorf("POST after the idle close: %d %q, want the new connection's 200", resp.StatusCode, body)
	}
}
