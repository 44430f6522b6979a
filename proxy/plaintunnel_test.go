package proxy

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/sessionproxy/sessionproxy/sessionpool"
)

// TestShutdownWaitsForPlainTunnelDial: a plain (not intercepted) CONNECT
// whose dial through the session's upstream is under way is a request in
// flight: Shutdown waits for it, and the mark its failure gives the
// session is in the pool's last save, where it came after it and was lost.
func TestShutdownWaitsForPlainTunnelDial(t *testing.T) {
	up, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer up.Close()
	dialed := make(chan net.Conn, 1)
	go func() { // an upstream proxy that reads the CONNECT and holds it
		c, err := up.Accept()
		if err != nil {
			return
		}
		http.ReadRequest(bufio.NewReader(c))
		dialed <- c
	}()
	cfg := testConfig(t)
	cfg.MITM.Enabled = false
	cfg.Upstreams = []*url.URL{mustURL(t, "http://"+up.Addr().String())}
	h := startProxy(t, cfg)

	client, err := net.Dial("tcp", h.proxyURL.Host)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	io.WriteString(client, "CONNECT 127.0.0.1:443 HTTP/1.1\r\nHost: 127.0.0.1:443\r\nX-Session-Id: s1\r\n\r\n")
	upConn := <-dialed
	h.srv.inflight.mu.Lock()
	n := h.srv.inflight.n
	h.srv.inflight.mu.Unlock()
	if n != 1 {
		t.Errorf("%d requests in flight while a tunnel dials, want 1", n)
	}

	stopped := make(chan error, 1)
	go func() { stopped <- h.srv.Shutdown(context.Background()) }()
	upConn.Close() // the dial fails: upstream-error marks s1 bad
	if err := <-stopped; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}

	cfg2 := testConfig(t)
	cfg2.DataDir = cfg.DataDir
	srv2, err := Open(context.Background(), Options{Config: cfg2})
	if err != nil {
		t.Fatal(err)
	}
	defer srv2.Shutdown(context.Background())
	s, err := sitePoolOf(t, srv2, originSite).GetSessionByID(context.Background(), "s1")
	if err != nil {
		t.Fatal(err)
	}
	if s.ErrorScore() == 0 {
		t.Error("the restarted proxy's s1 has no mark from the failed dial: it came after the last save")
	}
}

// TestShutdownClosesRelayedConns: Shutdown closes a plain tunnel's
// connection to its target too: closing the client's ended one way of the
// relay only, and the other waited on a silent target until idle_timeout.
func TestShutdownClosesRelayedConns(t *testing.T) {
	target, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer target.Close()
	accepted := make(chan net.Conn, 1)
	go func() { // a target that keeps its side open and says nothing
		if c, err := target.Accept(); err == nil {
			accepted <- c
		}
	}()
	cfg := testConfig(t)
	cfg.MITM.Enabled = false
	h := startProxy(t, cfg)
	client, err := net.Dial("tcp", h.proxyURL.Host)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	io.WriteString(client, "CONNECT "+target.Addr().String()+" HTTP/1.1\r\nHost: "+target.Addr().String()+"\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(client), &http.Request{Method: http.MethodConnect})
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("CONNECT: %v %v", resp, err)
	}
	defer (<-accepted).Close()
	h.srv.conns.mu.Lock()
	var relayed []net.Conn
	for c := range h.srv.conns.relayed {
		relayed = append(relayed, c)
	}
	h.srv.conns.mu.Unlock()
	if len(relayed) != 1 {
		t.Fatalf("%d relayed connections held, want the tunnel's", len(relayed))
	}
	if err := h.srv.Shutdown(context.Background()); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if _, err := relayed[0].Read(make([]byte, 1)); !errors.Is(err, net.ErrClosed) {
		t.Errorf("after Shutdown, the tunnel's connection to its target reads %v, want it closed", err)
	}
}

// TestConnTrackerHoldAfterCloseAll: a connection held once closeAll has
// run (a tunnel whose dial outlived a drain that timed out) is closed at
// once, not relayed after Shutdown has returned.
func TestConnTrackerHoldAfterCloseAll(t *testing.T) {
	var ct connTracker
	before, peer := net.Pipe()
	defer peer.Close()
	if !ct.hold(before) {
		t.Fatal("hold before closeAll refused")
	}
	ct.closeAll()
	after, peer2 := net.Pipe()
	defer peer2.Close()
	if ct.hold(after) {
		t.Error("hold after closeAll took the connection")
	}
	for name, c := range map[string]net.Conn{"held before": before, "held after": after} {
		c.SetReadDeadline(time.Now().Add(5 * time.Second)) // an open pipe would wait for ever
		if _, err := c.Read(make([]byte, 1)); !errors.Is(err, io.ErrClosedPipe) {
			t.Errorf("%s closeAll: read %v, want it closed", name, err)
		}
	}
}

// TestPlainTunnelSessionIDIsOneHeader: the id a plain tunnel's 200 names
// goes out as one header value, whatever it holds: a pool shared on Redis
// with a program that added a session under an id with a line break in it
// cannot add a header of its own to the proxy's answer.
func TestPlainTunnelSessionIDIsOneHeader(t *testing.T) {
	target, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer target.Close()
	go func() {
		if c, err := target.Accept(); err == nil {
			c.Close()
		}
	}()
	cfg := testConfig(t)
	cfg.MITM.Enabled = false
	cfg.Pool.MaxPoolSize = 1
	h := startProxy(t, cfg)
	if _, err := h.pool().AddSession(context.Background(), sessionpool.SessionOptions{ID: "evil\r\nX-Injected: yes"}); err != nil {
		t.Fatal(err)
	}
	client, err := net.Dial("tcp", h.proxyURL.Host)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	client.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(client, "CONNECT "+target.Addr().String()+" HTTP/1.1\r\nHost: "+target.Addr().String()+"\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(client), &http.Request{Method: http.MethodConnect})
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("CONNECT: %v %v", resp, err)
	}
	if got := resp.Header.Get("X-Injected"); got != "" {
		t.Errorf("the session's id added a header of its own: X-Injected: %s", got)
	}
	if got, want := resp.Header.Get(cfg.SessionHeader), "evil  X-Injected: yes"; got != want {
		t.Errorf("%s: %q, want %q", cfg.SessionHeader, got, want)
	}
}
