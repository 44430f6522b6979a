package proxy

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"
)

// A plain-HTTP client that half-closes its write side after its request
// still gets its response, not "502 client closed the request".
func TestHalfClosedClientGetsResponse(t *testing.T) {
	canceled := make(chan struct{}, 4)
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, _ := io.ReadAll(r.Body)
		// Answer late enough for the proxy to have seen the client's EOF;
		// a request the proxy cancels ends here at once.
		select {
		case <-r.Context().Done():
			canceled <- struct{}{}
			return
		case <-time.After(300 * time.Millisecond):
		}
		io.WriteString(w, "whole "+string(got))
	}))
	defer origin.Close()
	h := startProxy(t, testConfig(t))
	host := strings.TrimPrefix(origin.URL, "http://")

	for _, tc := range []struct {
		name, head, want string
	}{
		{"GET", "GET %s/slow HTTP/1.1\r\nHost: %s\r\n\r\n", "whole "},
		// The body read to its end first: the half-close comes after it.
		{"POST", "POST %s/slow HTTP/1.1\r\nHost: %s\r\nContent-Length: 4\r\n\r\nbody", "whole body"},
		{"chunked POST", "POST %s/slow HTTP/1.1\r\nHost: %s\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nbody\r\n0\r\n\r\n", "whole body"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conn, err := net.Dial("tcp", h.proxyURL.Host)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			fmt.Fprintf(conn, tc.head, origin.URL, host)
			if err := conn.(*net.TCPConn).CloseWrite(); err != nil {
				t.Fatal(err)
			}
			conn.SetReadDeadline(time.Now().Add(10 * time.Second))
			resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
			if err != nil {
				t.Fatalf("read response: %v", err)
			}
			body, err := io.ReadAll(resp.Body)
			if resp.StatusCode != http.StatusOK || string(body) != tc.want || err != nil {
				t.Errorf("got %d %q (%v), want 200 %q", resp.StatusCode, body, err, tc.want)
			}
			select {
			case <-canceled:
				t.Error("the origin's request was cancelled")
			default:
			}
		})
	}
}

// A client that resets its connection while its request is on its way
// still cancels it at the origin.
func TestResetClientCancelsRequest(t *testing.T) {
	arrived, canceled := make(chan struct{}), make(chan struct{})
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(arrived)
		<-r.Context().Done()
		close(canceled)
	}))
	defer origin.Close()
	h := startProxy(t, testConfig(t))

	conn, err := net.Dial("tcp", h.proxyURL.Host)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(conn, "GET %s/hang HTTP/1.1\r\nHost: %s\r\n\r\n", origin.URL, strings.TrimPrefix(origin.URL, "http://"))
	// Wait for the request to reach the origin: a reset before it would
	// be a request never read.
	<-arrived
	conn.(*net.TCPConn).SetLinger(0) // Close sends a RST
	conn.Close()
	select {
	case <-canceled:
	case <-time.After(10 * time.Second):
		t.Fatal("the origin's request was not cancelled after the client reset")
	}
}

// tcpPair returns the two ends of a loopback TCP connection, the server's
// as an eofConn.
func tcpPair(t *testing.T) (*eofConn, *net.TCPConn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server, err := eofListener{ln}.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close(); server.Close() })
	return server.(*eofConn), client.(*net.TCPConn)
}

// A one-byte read that meets the client's EOF is held until a deadline that
// has passed, a deadline that passes, or Close ends it; a larger read, or
// any read of a hijacked connection, meets the EOF at once.
func TestEOFConnHoldsBackgroundRead(t *testing.T) {
	cases := []struct {
		name string
		size int
		prep func(c *eofConn) // before the read
		end  func(c *eofConn) // while it is held
		want error
	}{
		{name: "deadline passed", size: 1, end: func(c *eofConn) { c.SetReadDeadline(time.Unix(1, 0)) }, want: os.ErrDeadlineExceeded},
		{name: "deadline passes", size: 1, end: func(c *eofConn) { c.SetReadDeadline(time.Now().Add(20 * time.Millisecond)) }, want: os.ErrDeadlineExceeded},
		{name: "close", size: 1, end: func(c *eofConn) { c.Close() }, want: net.ErrClosed},
		{name: "larger read", size: 4096, want: io.EOF},
		{name: "hijacked", size: 1, prep: func(c *eofConn) { hijacked(&trackedConn{Conn: &coalescingConn{Conn: c}}) }, want: io.EOF},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			server, client := tcpPair(t)
			if tc.prep != nil {
				tc.prep(server)
			}
			client.CloseWrite()
			got := make(chan error, 1)
			go func() {
				_, err := server.Read(make([]byte, tc.size))
				got <- err
			}()
			if tc.end != nil {
				// Held: the read has not returned and will not until end.
				waitHeld(t, server)
				select {
				case err := <-got:
					t.Fatalf("read returned %v while it should be held", err)
				default:
				}
				tc.end(server)
			}
			if err := <-got; !errors.Is(err, tc.want) {
				t.Fatalf("read returned %v, want %v", err, tc.want)
			}
			if tc.want == net.ErrClosed {
				return
			}
			// net/http's next read, its deadline cleared, meets the EOF.
			server.SetReadDeadline(time.Time{})
			if _, err := server.Read(make([]byte, 4096)); err != io.EOF {
				t.Errorf("the next read returned %v, want io.EOF", err)
			}
		})
	}
}

// waitHeld waits until c holds a read.
func waitHeld(t *testing.T, c *eofConn) {
	t.Helper()
	for {
		c.mu.Lock()
		held := c.held != nil
		c.mu.Unlock()
		if held {
			return
		}
		runtime.Gosched()
	}
}
