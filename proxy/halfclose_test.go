package proxy

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// A plain-HTTP client that half-closes its write side after its request
// still gets its response, not "502 client closed the request".
func TestHalfClosedClientGetsResponse(t *testing.T) {
	canceled := make(chan struct{}, 1)
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Answer late enough for the proxy to have seen the client's EOF;
		// a request the proxy cancels ends here at once.
		select {
		case <-r.Context().Done():
			canceled <- struct{}{}
			return
		case <-time.After(300 * time.Millisecond):
		}
		io.WriteString(w, "whole")
	}))
	defer origin.Close()
	h := startProxy(t, testConfig(t))

	conn, err := net.Dial("tcp", h.proxyURL.Host)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "GET %s/slow HTTP/1.1\r\nHost: %s\r\n\r\n", origin.URL, strings.TrimPrefix(origin.URL, "http://"))
	if err := conn.(*net.TCPConn).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("read response: %v", err)
	}
	body, err := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || string(body) != "whole" || err != nil {
		t.Errorf("got %d %q (%v), want 200 \"whole\"", resp.StatusCode, body, err)
	}
	select {
	case <-canceled:
		t.Error("the origin's request was cancelled")
	default:
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
