package wire

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
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/sessionproxy/sessionproxy/proxy/proxytest"
)

// rawH1 is an HTTP/1.1 server that keeps each request head as it came and
// answers with a fixed response; it counts connections.
type rawH1 struct {
	ln    net.Listener
	heads chan string
	conns atomic.Int32
}

func startRawH1(t *testing.T, response string) *rawH1 {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &rawH1{ln: ln, heads: make(chan string, 16)}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.conns.Add(1)
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					var head strings.Builder
					for {
						line, err := br.ReadString('\n')
						if err != nil {
							return
						}
						head.WriteString(line)
						if line == "\r\n" {
							break
						}
					}
					req, _ := http.ReadRequest(bufio.NewReader(strings.NewReader(head.String())))
					if req != nil && req.ContentLength > 0 {
						io.CopyN(io.Discard, br, req.ContentLength)
					}
					s.heads <- head.String()
					io.WriteString(c, response)
				}
			}()
		}
	}()
	return s
}

func plainTransport(addr string) *Transport {
	return &Transport{
		Key: func(*http.Request) string { return "k" },
		Dial: func(ctx context.Context, _ *http.Request) (*Conn, error) {
			c, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
			if err != nil {
				return nil, err
			}
			return &Conn{Conn: c}, nil
		},
	}
}

// TestH1KeepsOrderAndCase: the origin gets the header lines in the
// request's Order, with their case, nothing added; the connection is
// reused for the next request.
func TestH1KeepsOrderAndCase(t *testing.T) {
	srv := startRawH1(t, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
	tr := plainTransport(srv.ln.Addr().String())
	defer tr.Close()
	for i := range 2 {
		req, _ := http.NewRequest("GET", "http://"+srv.ln.Addr().String()+"/p?q=1", nil)
		req.Header["User-Agent"] = []string{"curl/8"}
		req.Header["Accept"] = []string{"*/*"}
		req.Header["Zebra"] = []string{"1"}
		req.Header["X-Lower-Mixed"] = []string{"2"}
		req.Header["Accept-Language"] = []string{"en"}
		order := Order{Names: []string{"Host", "User-Agent", "Accept", "zebra", "Accept-Language", "X-lower-Mixed"}}
		req = req.WithContext(WithOrder(req.Context(), order))
		resp, err := tr.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(body) != "ok" {
			t.Fatalf("body %q", body)
		}
		want := "GET /p?q=1 HTTP/1.1\r\nHost: " + srv.ln.Addr().String() + "\r\nUser-Agent: curl/8\r\nAccept: */*\r\nzebra: 1\r\n" +
			"Accept-Language: en\r\nX-lower-Mixed: 2\r\n\r\n"
		if got := <-srv.heads; got != want {
			t.Errorf("request %d: origin got\n%q\nwant\n%q", i, got, want)
		}
	}
	if n := srv.conns.Load(); n != 1 {
		t.Errorf("%d connections for two requests, want 1", n)
	}
}

// TestH1Bodies: a body of known length goes with the client's
// Content-Length where the client put it; one of unknown length goes
// chunked.
func TestH1Bodies(t *testing.T) {
	srv := startRawH1(t, "HTTP/1.1 204 No Content\r\n\r\n")
	tr := plainTransport(srv.ln.Addr().String())
	defer tr.Close()
	req, _ := http.NewRequest("POST", "http://h/", strings.NewReader("abc"))
	req.Header["Content-Length"] = []string{"3"}
	req.Header["A"] = []string{"1"}
	req = req.WithContext(WithOrder(req.Context(), Order{Names: []string{"Host", "Content-Length", "A"}}))
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got, want := <-srv.heads, "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nA: 1\r\n\r\n"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

// TestH1ContextEnds: a request whose context ends while the origin is
// silent returns.
func TestH1ContextEnds(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err == nil {
			defer c.Close()
			io.Copy(io.Discard, c)
		}
	}()
	tr := plainTransport(ln.Addr().String())
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://h/", nil)
	errc := make(chan error, 1)
	go func() {
		_, err := tr.RoundTrip(req)
		errc <- err
	}()
	cancel()
	if err := <-errc; err == nil {
		t.Fatal("no error")
	}
}

// h2Recorder is an HTTP/2 server written on the framer: it records the
// preface frames and each request's header names, and answers every
// request with 200 and its path as the body.
type h2Recorder struct {
	addr    string
	mu      sync.Mutex
	frames  []string // the preface: SETTINGS, WINDOW_UPDATE, PRIORITY
	headers chan []string
	resets  chan http2.ErrCode
}

func startH2Recorder(t *testing.T, answer bool) *h2Recorder {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	r := &h2Recorder{addr: ln.Addr().String(), headers: make(chan []string, 64), resets: make(chan http2.ErrCode, 4)}
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		fr, err := proxytest.H2ServerFramer(c)
		if err != nil {
			return
		}
		var enc bytes.Buffer
		henc := hpack.NewEncoder(&enc)
		for {
			f, err := fr.ReadFrame()
			if err != nil {
				return
			}
			switch f := f.(type) {
			case *http2.SettingsFrame:
				if !f.IsAck() {
					var s []string
					f.ForeachSetting(func(x http2.Setting) error { s = append(s, fmt.Sprintf("%d:%d", x.ID, x.Val)); return nil })
					r.note("SETTINGS " + strings.Join(s, ";"))
					fr.WriteSettingsAck()
				}
			case *http2.WindowUpdateFrame:
				if f.StreamID == 0 {
					r.note(fmt.Sprintf("WINDOW_UPDATE %d", f.Increment))
				}
			case *http2.PriorityFrame:
				r.note(fmt.Sprintf("PRIORITY %d:%v:%d:%d", f.StreamID, f.Exclusive, f.StreamDep, f.Weight))
			case *http2.RSTStreamFrame:
				r.resets <- f.ErrCode
			case *http2.MetaHeadersFrame:
				var names []string
				path := ""
				for _, hf := range f.Fields {
					names = append(names, hf.Name)
					if hf.Name == ":path" {
						path = hf.Value
					}
				}
				if f.HasPriority() {
					names = append(names, fmt.Sprintf("priority %v:%d:%d", f.Priority.Exclusive, f.Priority.StreamDep, f.Priority.Weight))
				}
				r.headers <- names
				if !answer {
					continue
				}
				enc.Reset()
				henc.WriteField(hpack.HeaderField{Name: ":status", Value: "200"})
				fr.WriteHeaders(http2.HeadersFrameParam{StreamID: f.StreamID, BlockFragment: enc.Bytes(), EndHeaders: true})
				fr.WriteData(f.StreamID, true, []byte(path))
			}
		}
	}()
	return r
}

func (r *h2Recorder) note(s string) {
	r.mu.Lock()
	r.frames = append(r.frames, s)
	r.mu.Unlock()
}

func h2Transport(addr string, p Preface) *Transport {
	return &Transport{
		Key: func(*http.Request) string { return "k" },
		Dial: func(ctx context.Context, _ *http.Request) (*Conn, error) {
			c, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
			if err != nil {
				return nil, err
			}
			return &Conn{Conn: c, Proto: "h2", H2: p}, nil
		},
	}
}

// TestH2PrefaceAndOrder: the connection opens with the preface asked for,
// SETTINGS in its order, and a request's pseudo-headers and headers go in
// its Order, lowercase, with the HEADERS priority; nothing is added.
func TestH2PrefaceAndOrder(t *testing.T) {
	rec := startH2Recorder(t, true)
	p := Preface{
		Settings: []http2.Setting{
			{ID: http2.SettingHeaderTableSize, Val: 65536}, {ID: http2.SettingEnablePush, Val: 0},
			{ID: http2.SettingInitialWindowSize, Val: 6291456}, {ID: http2.SettingMaxHeaderListSize, Val: 262144},
		},
		WindowUpdate:   15663105,
		Priorities:     []PriorityFrame{{StreamID: 3, PriorityParam: http2.PriorityParam{Weight: 200}}},
		HeaderPriority: &http2.PriorityParam{Exclusive: true, Weight: 255},
	}
	tr := h2Transport(rec.addr, p)
	defer tr.Close()
	req, _ := http.NewRequest("GET", "https://origin.test/x", nil)
	req.Header["Sec-Ch-Ua"] = []string{`"Chromium"`}
	req.Header["User-Agent"] = []string{"UA"}
	req.Header["Accept"] = []string{"*/*"}
	req.Header["Cookie"] = []string{"a=1; b=2"}
	req.Header["Connection"] = []string{"keep-alive"}
	req = req.WithContext(WithOrder(req.Context(), Order{
		Names:  []string{"sec-ch-ua", "user-agent", "accept", "cookie"},
		Pseudo: []string{":method", ":authority", ":scheme", ":path"},
	}))
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "/x" || resp.StatusCode != 200 {
		t.Fatalf("got %d %q", resp.StatusCode, body)
	}
	got := strings.Join(<-rec.headers, ",")
	want := ":method,:authority,:scheme,:path,sec-ch-ua,user-agent,accept,cookie,priority true:0:255"
	if got != want {
		t.Errorf("headers %s\nwant    %s", got, want)
	}
	rec.mu.Lock()
	frames := strings.Join(rec.frames, " | ")
	rec.mu.Unlock()
	if want := "SETTINGS 1:65536;2:0;4:6291456;6:262144 | WINDOW_UPDATE 15663105 | PRIORITY 3:false:0:200"; frames != want {
		t.Errorf("preface %s\nwant    %s", frames, want)
	}
}

// TestH2Cancel: a request whose context ends before its response is reset
// with CANCEL, and RoundTrip returns.
func TestH2Cancel(t *testing.T) {
	rec := startH2Recorder(t, false)
	tr := h2Transport(rec.addr, Preface{})
	defer tr.Close()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", "https://origin.test/", nil)
	errc := make(chan error, 1)
	go func() {
		_, err := tr.RoundTrip(req)
		errc <- err
	}()
	<-rec.headers
	cancel()
	if err := <-errc; err == nil {
		t.Fatal("no error")
	}
	if code := <-rec.resets; code != http2.ErrCodeCancel {
		t.Errorf("reset %v, want CANCEL", code)
	}
}

// TestH2AgainstNetHTTP: against net/http's HTTP/2 server, many requests at
// once on one connection, bodies larger than every window both ways.
func TestH2AgainstNetHTTP(t *testing.T) {
	big := bytes.Repeat([]byte("0123456789abcdef"), 1<<18) // 4 MiB
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := io.Copy(io.Discard, r.Body)
		w.Header().Set("X-Got", fmt.Sprint(n))
		if r.URL.Path == "/big" {
			w.Write(big)
		}
		w.Header().Set("Trailer-X", "t") // not a declared trailer: dropped
	}))
	srv.EnableHTTP2 = true
	srv.StartTLS()
	defer srv.Close()
	var dials atomic.Int32
	tr := &Transport{
		Key: func(*http.Request) string { return "k" },
		Dial: func(ctx context.Context, _ *http.Request) (*Conn, error) {
			dials.Add(1)
			c, err := (&tls.Dialer{Config: &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"h2"}}}).DialContext(ctx, "tcp", srv.Listener.Addr().String())
			if err != nil {
				return nil, err
			}
			return &Conn{Conn: c, Proto: c.(*tls.Conn).ConnectionState().NegotiatedProtocol}, nil
		},
	}
	defer tr.Close()
	// One first request opens the connection; the rest share it.
	do := func(method, path string, body []byte) (*http.Response, []byte, error) {
		var rd io.Reader
		if body != nil {
			rd = bytes.NewReader(body)
		}
		req, _ := http.NewRequest(method, srv.URL+path, rd)
		resp, err := tr.RoundTrip(req)
		if err != nil {
			return nil, nil, err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return resp, b, err
	}
	if _, _, err := do("GET", "/", nil); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, b, err := do("POST", "/big", big[:(i+1)*100_000])
			switch {
			case err != nil:
				errs <- err
			case resp.Header.Get("X-Got") != fmt.Sprint((i+1)*100_000) || !bytes.Equal(b, big):
				errs <- fmt.Errorf("request %d: X-Got %s, body %d bytes", i, resp.Header.Get("X-Got"), len(b))
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := dials.Load(); n != 1 {
		t.Errorf("%d connections, want 1", n)
	}
}

// h2TLSTransport is a Transport of one key that dials addr with TLS,
// offering h2 alone (the test servers' certificates are not checked).
func h2TLSTransport(addr string) *Transport {
	return &Transport{
		Key: func(*http.Request) string { return "k" },
		Dial: func(ctx context.Context, _ *http.Request) (*Conn, error) {
			c, err := (&tls.Dialer{Config: &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"h2"}}}).DialContext(ctx, "tcp", addr)
			if err != nil {
				return nil, err
			}
			return &Conn{Conn: c, Proto: c.(*tls.Conn).ConnectionState().NegotiatedProtocol}, nil
		},
	}
}

// TestH2Trailers: a response's trailers arrive in resp.Trailer once the
// body has been read.
func TestH2Trailers(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Trailer", "X-Sum")
		io.WriteString(w, "body")
		w.Header().Set("X-Sum", "42")
	}))
	srv.EnableHTTP2 = true
	srv.StartTLS()
	defer srv.Close()
	tr := h2TLSTransport(srv.Listener.Addr().String())
	defer tr.Close()
	req, _ := http.NewRequest("GET", srv.URL+"/", nil)
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "body" || resp.Trailer.Get("X-Sum") != "42" {
		t.Errorf("body %q, trailer %v", body, resp.Trailer)
	}
}

// TestH2GoAwayRetries: a request above a GOAWAY's last stream was not
// processed: the Transport sends it again on a new connection.
func TestH2GoAwayRetries(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var conns atomic.Int32
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			n := conns.Add(1)
			go func() {
				defer c.Close()
				fr, err := proxytest.H2ServerFramer(c)
				if err != nil {
					return
				}
				for {
					f, err := fr.ReadFrame()
					if err != nil {
						return
					}
					h, ok := f.(*http2.MetaHeadersFrame)
					if !ok {
						continue
					}
					if n == 1 { // the first connection goes away without processing it
						fr.WriteGoAway(0, http2.ErrCodeNo, nil)
						continue
					}
					var block bytes.Buffer
					hpack.NewEncoder(&block).WriteField(hpack.HeaderField{Name: ":status", Value: "200"})
					fr.WriteHeaders(http2.HeadersFrameParam{StreamID: h.StreamID, BlockFragment: block.Bytes(), EndHeaders: true})
					fr.WriteData(h.StreamID, true, []byte("second"))
				}
			}()
		}
	}()
	tr := h2Transport(ln.Addr().String(), Preface{})
	defer tr.Close()
	req, _ := http.NewRequest("GET", "https://origin.test/", nil)
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "second" || conns.Load() != 2 {
		t.Errorf("body %q over %d connections, want the second connection's answer", body, conns.Load())
	}
}

// TestH1ServerClosedIdle: a pooled connection the server closed while it
// was idle (its keep-alive timeout) does not fail the next request: an
// idempotent one goes again on a new connection, as with net/http; a POST
// that cannot be known unprocessed is not sent twice.
func TestH1ServerClosedIdle(t *testing.T) {
	var posts atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			posts.Add(1)
		}
		io.WriteString(w, "ok")
	}))
	defer srv.Close()
	tr := plainTransport(srv.Listener.Addr().String())
	defer tr.Close()
	do := func(method string, header http.Header) (*http.Response, error) {
		req, _ := http.NewRequest(method, srv.URL+"/", nil)
		for k, v := range header {
			req.Header[k] = v
		}
		resp, err := tr.RoundTrip(req)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		return resp, err
	}
	for _, tc := range []struct {
		method string
		header http.Header
		retry  bool
	}{
		{http.MethodGet, nil, true},
		{http.MethodHead, nil, true},
		{http.MethodPost, http.Header{"Idempotency-Key": {"k1"}}, true},
		{http.MethodPost, nil, false},
	} {
		if _, err := do(http.MethodGet, nil); err != nil { // a connection in the pool
			t.Fatal(err)
		}
		srv.CloseClientConnections() // the server's keep-alive timeout, now
		n := posts.Load()
		resp, err := do(tc.method, tc.header)
		if tc.retry && (err != nil || resp.StatusCode != http.StatusOK) {
			t.Errorf("%s %v on a connection the server closed: %v, want it sent again on a new one", tc.method, tc.header, err)
		}
		if !tc.retry && (err == nil || posts.Load() != n) {
			t.Errorf("a plain POST on a connection the server closed: %v, %d sent; want an error and no second try", err, posts.Load()-n)
		}
	}
}

// TestH1IdleTimeout: a pooled HTTP/1.1 connection is closed once idle for
// IdleTimeout, every key's, one after the other (the one sweep is set
// again for the connection pooled later).
func TestH1IdleTimeout(t *testing.T) {
	closed := make(chan net.Conn, 4)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok")
	}))
	srv.Config.ConnState = func(c net.Conn, s http.ConnState) {
		if s == http.StateClosed {
			closed <- c
		}
	}
	srv.Start()
	defer srv.Close()
	tr := plainTransport(srv.Listener.Addr().String())
	tr.IdleTimeout = 100 * time.Millisecond
	defer tr.Close()
	keys := []string{"a", "b"}
	tr.Key = func(req *http.Request) string { return req.URL.Query().Get("k") }
	get := func(key string) {
		resp, err := tr.RoundTrip(httptest.NewRequest(http.MethodGet, srv.URL+"/?k="+key, nil))
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	get(keys[0])
	<-closed // closed by the transport, idle for 100 ms
	get(keys[1])
	get(keys[1]) // the same connection, pooled again
	<-closed
	select {
	case c := <-closed:
		t.Fatalf("another connection closed: %v", c.RemoteAddr())
	default:
	}
}

// TestH1HeadTimeoutNotOnBody: ResponseHeaderTimeout bounds the wait for a
// head, not a body that comes later; and a connection whose small body
// arrived with its head (its read deadline left as it was) carries the
// next request after that deadline has passed. On a fake clock.
func TestH1HeadTimeoutNotOnBody(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		client, server := net.Pipe()
		defer client.Close()
		go func() {
			defer server.Close()
			br := bufio.NewReader(server)
			for {
				req, err := http.ReadRequest(br)
				if err != nil {
					return
				}
				if req.URL.Path == "/slow" {
					io.WriteString(server, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n")
					time.Sleep(300 * time.Millisecond)
					io.WriteString(server, "ok")
					continue
				}
				io.WriteString(server, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
			}
		}()
		dials := 0
		tr := &Transport{
			Key: func(*http.Request) string { return "k" },
			Dial: func(context.Context, *http.Request) (*Conn, error) {
				if dials++; dials > 1 {
					return nil, errors.New("a second connection")
				}
				return &Conn{Conn: client}, nil
			},
			ResponseHeaderTimeout: 100 * time.Millisecond,
		}
		get := func(path string) {
			t.Helper()
			resp, err := tr.RoundTrip(httptest.NewRequest(http.MethodGet, "http://origin.test"+path, nil))
			if err != nil {
				t.Fatalf("%s: %v", path, err)
			}
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if string(body) != "ok" || err != nil {
				t.Fatalf("%s: body %q, %v", path, body, err)
			}
		}
		get("/slow")
		get("/small")
		time.Sleep(300 * time.Millisecond) // past /small's head deadline
		get("/small")
	})
}

// TestH1CloseBeforeEnd: closing a body before its end closes the
// connection at once, without reading the rest (net/http's body reads it
// all, however long), also under a Read blocked in another goroutine; the
// next request gets a new connection. On a fake clock, where waiting on a
// rest that never comes would be a deadlock.
func TestH1CloseBeforeEnd(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var serverEnds []chan struct{}
		tr := &Transport{
			Key: func(*http.Request) string { return "k" },
			Dial: func(context.Context, *http.Request) (*Conn, error) {
				client, server := net.Pipe()
				ended := make(chan struct{})
				serverEnds = append(serverEnds, ended)
				go func() {
					defer close(ended)
					defer server.Close()
					if _, err := http.ReadRequest(bufio.NewReader(server)); err != nil {
						return
					}
					// A gigabyte announced, ten bytes sent, then a wait on
					// the client: it reads nothing more, only sees a close.
					io.WriteString(server, "HTTP/1.1 200 OK\r\nContent-Length: 1073741824\r\n\r\n0123456789")
					io.Copy(io.Discard, server)
				}()
				return &Conn{Conn: client}, nil
			},
		}
		defer tr.Close()
		get := func() *http.Response {
			t.Helper()
			resp, err := tr.RoundTrip(httptest.NewRequest(http.MethodGet, "http://origin.test/", nil))
			if err != nil {
				t.Fatal(err)
			}
			return resp
		}

		resp := get()
		p := make([]byte, 4)
		if n, err := io.ReadFull(resp.Body, p); n != 4 || err != nil {
			t.Fatalf("read %d, %v", n, err)
		}
		if err := resp.Body.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		<-serverEnds[0] // the connection closed
		if n, err := resp.Body.Read(p); n != 0 || !errors.Is(err, http.ErrBodyReadAfterClose) {
			t.Errorf("Read after Close: %d, %v; want ErrBodyReadAfterClose", n, err)
		}

		// Close from another goroutine while a Read waits for the rest.
		resp = get()
		read := make(chan error, 1)
		go func() {
			_, err := io.Copy(io.Discard, resp.Body)
			read <- err
		}()
		synctest.Wait() // the reader waits on the connection
		resp.Body.Close()
		if err := <-read; err == nil {
			t.Error("a body closed before its end read as whole")
		}
		<-serverEnds[1]
		if len(serverEnds) != 2 {
			t.Errorf("%d connections, want 2: one per request", len(serverEnds))
		}
	})
}

// TestH1UnsolicitedBytes: bytes a server sends after a response (which the
// next exchange would read as its response's start) retire the connection,
// as net/http does; the next request goes on a new one.
func TestH1UnsolicitedBytes(t *testing.T) {
	srv := startRawH1(t, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nbad")
	tr := plainTransport(srv.ln.Addr().String())
	defer tr.Close()
	for i := range 2 {
		resp, err := tr.RoundTrip(httptest.NewRequest(http.MethodGet, "http://"+srv.ln.Addr().String()+"/", nil))
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(body) != "ok" || err != nil {
			t.Errorf("request %d: body %q, %v; want ok", i, body, err)
		}
		<-srv.heads
	}
	if n := srv.conns.Load(); n != 2 {
		t.Errorf("%d connections, want 2", n)
	}
}

// TestH1CloseWholeBodyKeepsConn: a body that has arrived whole and is
// closed unread (a small block page, retried on another session) is read
// from the buffer, and the connection carries the next request.
func TestH1CloseWholeBodyKeepsConn(t *testing.T) {
	srv := startRawH1(t, "HTTP/1.1 403 Forbidden\r\nContent-Length: 7\r\n\r\nblocked")
	tr := plainTransport(srv.ln.Addr().String())
	defer tr.Close()
	for i := range 3 {
		resp, err := tr.RoundTrip(httptest.NewRequest(http.MethodGet, "http://"+srv.ln.Addr().String()+"/", nil))
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		if i == 2 {
			p := make([]byte, 3) // part of it read first
			if n, err := io.ReadFull(resp.Body, p); n != 3 || err != nil {
				t.Fatalf("read %d, %v", n, err)
			}
		}
		resp.Body.Close()
		if n, err := resp.Body.Read(make([]byte, 1)); n != 0 || !errors.Is(err, http.ErrBodyReadAfterClose) {
			t.Errorf("Read after Close: %d, %v; want ErrBodyReadAfterClose", n, err)
		}
		<-srv.heads
	}
	if n := srv.conns.Load(); n != 1 {
		t.Errorf("%d connections for three requests, want 1", n)
	}
}
