package proxy

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// pipeReads collects what the far end of a net.Pipe reads, one entry per
// Read, until the pipe closes. net.Pipe delivers each Write as a unit (a
// Read of a large buffer returns exactly one Write), so the entries show
// how the bytes were written.
type pipeReads struct {
	mu    sync.Mutex
	reads []string
	done  chan struct{}
}

func readPipe(c net.Conn) *pipeReads {
	r := &pipeReads{done: make(chan struct{})}
	go func() {
		defer close(r.done)
		buf := make([]byte, 64<<10)
		for {
			n, err := c.Read(buf)
			if n > 0 {
				r.mu.Lock()
				r.reads = append(r.reads, string(buf[:n]))
				r.mu.Unlock()
			}
			if err != nil {
				return
			}
		}
	}()
	return r
}

func (r *pipeReads) got() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.reads...)
}

func TestCoalescingConn(t *testing.T) {
	big := strings.Repeat("b", coalesceLimit)
	tests := []struct {
		name string
		// run acts on c (the coalescing end) while the far end is being
		// read; synctest.Wait has run before check.
		run  func(t *testing.T, c *coalescingConn)
		want []string // the far end's reads, in order
	}{{
		name: "passes writes through until enabled",
		run: func(t *testing.T, c *coalescingConn) {
			c.Write([]byte("head"))
			c.Write([]byte("body"))
		},
		want: []string{"head", "body"},
	}, {
		name: "enabled, holds writes until a read begins",
		run: func(t *testing.T, c *coalescingConn) {
			c.enable()
			c.Write([]byte("head"))
			c.Write([]byte("body"))
			synctest.Wait()
			if c.held == nil {
				t.Fatal("nothing held before the read")
			}
			c.SetReadDeadline(time.Now()) // the read returns at once, after flushing
			c.Read(make([]byte, 1))
		},
		want: []string{"headbody"},
	}, {
		name: "enabled, writes what waited longer than the delay",
		run: func(t *testing.T, c *coalescingConn) {
			c.enable()
			c.Write([]byte("chunk"))
			time.Sleep(coalesceDelay - time.Nanosecond)
			synctest.Wait()
			if c.held == nil {
				t.Fatal("written before the delay was up")
			}
			time.Sleep(time.Nanosecond)
			synctest.Wait()
			c.Write([]byte("next"))
			time.Sleep(coalesceDelay)
		},
		want: []string{"chunk", "next"},
	}, {
		name: "enabled, more than the limit goes out at once and in order",
		run: func(t *testing.T, c *coalescingConn) {
			c.enable()
			c.Write([]byte("head"))
			c.Write([]byte(big))
		},
		want: []string{"head", big},
	}, {
		name: "disable writes what is held and stops holding",
		run: func(t *testing.T, c *coalescingConn) {
			c.enable()
			c.Write([]byte("101"))
			c.disable()
			c.Write([]byte("frame"))
		},
		want: []string{"101", "frame"},
	}, {
		name: "close writes what is held, then closes",
		run: func(t *testing.T, c *coalescingConn) {
			c.enable()
			c.Write([]byte("last"))
			if err := c.Close(); err != nil {
				t.Fatal(err)
			}
		},
		want: []string{"last"},
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				near, far := net.Pipe()
				defer far.Close()
				c := &coalescingConn{Conn: near, buffers: newHeldBuffers()}
				defer c.Close()
				reads := readPipe(far)
				tc.run(t, c)
				synctest.Wait()
				if got := reads.got(); !slices.Equal(got, tc.want) {
					t.Errorf("far end read %q, want %q", clip(got), clip(tc.want))
				}
			})
		})
	}
}

// TestCoalescingConnWriteError: a held write that fails is not lost
// silently: the next Write and Read return its error.
func TestCoalescingConnWriteError(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		near, far := net.Pipe()
		c := &coalescingConn{Conn: near, buffers: newHeldBuffers()}
		defer c.Close()
		c.enable()
		far.Close()
		if _, err := c.Write([]byte("lost")); err != nil {
			t.Fatalf("a held write failed at once: %v", err)
		}
		time.Sleep(coalesceDelay)
		synctest.Wait()
		if _, err := c.Write([]byte("more")); !errors.Is(err, io.ErrClosedPipe) {
			t.Errorf("Write after a failed flush: %v, want %v", err, io.ErrClosedPipe)
		}
		if _, err := c.Read(make([]byte, 1)); !errors.Is(err, io.ErrClosedPipe) {
			t.Errorf("Read after a failed flush: %v, want %v", err, io.ErrClosedPipe)
		}
	})
}

// TestCoalescingConnCloseUnblocks: closing a connection whose client has
// stopped reading returns, after closeFlushMax, even while a write is
// blocked holding the write lock, as Shutdown needs it to. (Real time: a
// goroutine waiting for a mutex is not durably blocked for synctest.)
func TestCoalescingConnCloseUnblocks(t *testing.T) {
	near, far := net.Pipe() // far never reads
	defer far.Close()
	c := &coalescingConn{Conn: near, buffers: newHeldBuffers()}
	c.enable()
	c.Write([]byte("head"))
	wrote := make(chan error, 1)
	go func() {
		_, err := c.Write(make([]byte, coalesceLimit)) // overflows: blocks in the pipe
		wrote <- err
	}()
	for c.mu.TryLock() { // until the write holds the lock
		c.mu.Unlock()
		runtime.Gosched()
	}
	closed := make(chan error, 1)
	go func() { closed <- c.Close() }()
	select {
	case err := <-closed:
		if err != nil {
			t.Errorf("Close: %v", err)
		}
	case <-time.After(30 * closeFlushMax):
		t.Fatal("Close still waits for a write nobody reads")
	}
	if err := <-wrote; err == nil {
		t.Error("the blocked write succeeded with nobody reading")
	}
}

// clip shortens long reads for messages.
func clip(reads []string) []string {
	out := make([]string, len(reads))
	for i, r := range reads {
		if len(r) > 20 {
			r = r[:8] + "...(" + strconv.Itoa(len(r)) + " bytes)"
		}
		out[i] = r
	}
	return out
}

// countingListener counts the writes made to the connections it accepts.
type countingListener struct {
	net.Listener
	writes atomic.Int64
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &countingConn{Conn: c, writes: &l.writes}, nil
}

type countingConn struct {
	net.Conn
	writes *atomic.Int64
}

func (c *countingConn) Write(p []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(p)
}

// TestTunnelResponseOneWrite: inside an intercepted HTTP/1.1 tunnel each
// small response reaches the client's socket in one write (goproxy alone
// writes its head and its body apart), a body larger than what is held
// arrives whole, and a body the origin streams in pieces still arrives piece
// by piece.
func TestTunnelResponseOneWrite(t *testing.T) {
	release := make(chan struct{})
	big := make([]byte, 100<<10) // over coalesceLimit, in pieces of every size
	for i := range big {
		big[i] = byte(i * 7 / 3)
	}
	origin := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/big" {
			for rest := big; len(rest) > 0; {
				n := min(len(rest), 1+len(rest)%(20<<10))
				w.Write(rest[:n])
				http.NewResponseController(w).Flush()
				rest = rest[n:]
			}
			return
		}
		if r.URL.Path == "/stream" {
			io.WriteString(w, "first\n")
			http.NewResponseController(w).Flush()
			<-release // only once the client has read the first piece
			io.WriteString(w, "second\n")
			return
		}
		w.Write(bytes.Repeat([]byte("x"), 1024))
	}))
	defer origin.Close()
	unblock := sync.OnceFunc(func() { close(release) })
	defer unblock() // before origin.Close, which waits for the stream's handler
	cfg := testConfig(t)
	trustOrigin(t, cfg, origin)
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := &countingListener{Listener: inner}
	h := startProxyOn(t, Options{Config: cfg}, ln)
	client := h.client("", "")
	client.Transport.(*http.Transport).TLSClientConfig.NextProtos = []string{"http/1.1"}
	client.Transport.(*http.Transport).MaxConnsPerHost = 1

	get(t, client, origin.URL+"/", "s1") // the tunnel and its handshake
	const n = 40
	before := ln.writes.Load()
	for range n {
		if resp, body := get(t, client, origin.URL+"/", "s1"); resp.StatusCode != http.StatusOK || len(body) != 1024 {
			t.Fatalf("got %d with %d bytes", resp.StatusCode, len(body))
		}
	}
	// One write each; goproxy alone makes two. The bound leaves room for
	// a loaded machine where the 1 ms delay runs out between a head and
	// its body now and then.
	if w := ln.writes.Load() - before; w >= 3*n/2 {
		t.Errorf("%d responses took %d writes to the client's socket, want about %d (below %d)", n, w, n, 3*n/2)
	}

	if resp, body := get(t, client, origin.URL+"/big", "s1"); resp.StatusCode != http.StatusOK || body != string(big) {
		t.Fatalf("a body larger than what is held: status %d, %d bytes, same as sent: %v", resp.StatusCode, len(body), body == string(big))
	}

	req, _ := http.NewRequest(http.MethodGet, origin.URL+"/stream", nil)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	if line, err := br.ReadString('\n'); line != "first\n" {
		t.Fatalf("first piece: %q %v", line, err)
	}
	unblock()
	if line, err := br.ReadString('\n'); line != "second\n" {
		t.Fatalf("second piece: %q %v", line, err)
	}
}

// TestTunnelCloseDeliversHeld: when a response ends the tunnel (HTTP/1.0,
// Connection: close), what was held for it reaches the client before the
// connection closes.
func TestTunnelCloseDeliversHeld(t *testing.T) {
	origin := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "whole answer")
	}))
	defer origin.Close()
	cfg := testConfig(t)
	trustOrigin(t, cfg, origin)
	h := startProxy(t, cfg)
	for _, req := range []string{
		"GET / HTTP/1.0\r\nHost: %s\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n",
	} {
		conn, err := net.Dial("tcp", h.proxyURL.Host)
		if err != nil {
			t.Fatal(err)
		}
		target := strings.TrimPrefix(origin.URL, "https://")
		fmt.Fprintf(conn, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", target, target)
		br := bufio.NewReader(conn)
		if resp, err := http.ReadResponse(br, nil); err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("CONNECT: %v %v", resp, err)
		}
		tc := tls.Client(&readerConn{Conn: conn, r: br}, &tls.Config{RootCAs: h.caPool, ServerName: "127.0.0.1", NextProtos: []string{"http/1.1"}})
		fmt.Fprintf(tc, req, target)
		all, err := io.ReadAll(tc) // to the close
		conn.Close()
		if !strings.HasSuffix(string(all), "\r\n\r\nwhole answer") {
			t.Errorf("%q: the client read %q (%v) before the close, want the whole response", strings.SplitN(req, "\r", 2)[0], all, err)
		}
	}
}

// readerConn reads through r, which may hold bytes already read from Conn.
type readerConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *readerConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// TestCoalescingConnDeadlinePassed: bytes held when a write deadline that
// has passed is set still reach the client. tls.Conn.Close sets a deadline
// of now after its close_notify alert; a held response that the timer
// flushed after that was lost, and the client saw its tunnel close without
// a response.
func TestCoalescingConnDeadlinePassed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		near, far := net.Pipe()
		reads := readPipe(far)
		c := &coalescingConn{Conn: near, buffers: newHeldBuffers()}
		c.enable()
		if _, err := c.Write([]byte("response")); err != nil {
			t.Fatal(err)
		}
		c.SetWriteDeadline(time.Now().Add(5 * time.Second)) // as tls.Conn's closeNotify does
		if _, err := c.Write([]byte("+alert")); err != nil {
			t.Fatal(err)
		}
		c.SetWriteDeadline(time.Now())
		time.Sleep(coalesceDelay) // the timer fires before the close
		synctest.Wait()
		c.Close()
		<-reads.done
		if got := strings.Join(reads.got(), ""); got != "response+alert" {
			t.Errorf("the client got %q, want %q", got, "response+alert")
		}
	})
}
