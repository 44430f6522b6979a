package proxy

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"
)

// With keep-alive off, every request is its own intercepted tunnel, closed
// after its response: none may be lost on the way (an EOF before any
// response byte), however many run at once, over HTTP/1.1 and HTTP/2.
// TestCoalescingConnDeadlinePassed shows the cause found, deterministically.
func TestNoLostResponsesWhenTunnelsClose(t *testing.T) {
	if testing.Short() {
		t.Skip("thousands of tunnels")
	}
	origin := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok")
	}))
	defer origin.Close()
	cfg := testConfig(t)
	trustOrigin(t, cfg, origin)
	h := startProxy(t, cfg)

	for _, tc := range []struct {
		name   string
		each   int
		client func() (*http.Client, func())
	}{
		{"http1.1 connection close", 300, func() (*http.Client, func()) {
			tr := &http.Transport{
				Proxy:             http.ProxyURL(h.proxyURL),
				TLSClientConfig:   &tls.Config{RootCAs: h.caPool},
				DisableKeepAlives: true, // Connection: close, a tunnel per request
			}
			return &http.Client{Transport: tr, Timeout: 30 * time.Second}, func() {}
		}},
		{"http2 tunnel per request", 50, func() (*http.Client, func()) {
			c := h.h2TunnelClient()
			return c, c.Transport.(*http2.Transport).CloseIdleConnections
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			const clients = 16
			var failed atomic.Int64
			var mu sync.Mutex
			var firstErr error // guarded by mu
			var wg sync.WaitGroup
			for range clients {
				wg.Go(func() {
					for range tc.each {
						c, done := tc.client()
						err := getOK(c, origin.URL+"/")
						done()
						if err != nil {
							if failed.Add(1) == 1 {
								mu.Lock()
								firstErr = err
								mu.Unlock()
							}
						}
					}
				})
			}
			wg.Wait()
			if n := failed.Load(); n > 0 {
				mu.Lock()
				defer mu.Unlock()
				t.Errorf("%d of %d requests failed; first: %v", n, clients*tc.each, firstErr)
			}
		})
	}
}

// getOK GETs url and checks that its body is "ok".
func getOK(c *http.Client, url string) error {
	resp, err := c.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err == nil && string(body) != "ok" {
		err = io.ErrUnexpectedEOF
	}
	return err
}

// TestStalledRequestBodyIsCut: a client that stops sending its request
// body midway, while the proxy holds the body for retries (nothing has gone
// to the origin, so no upstream timeout runs), has its connection closed
// once it has sent nothing for idle_timeout, plain and inside a tunnel,
// and the origin sees no request.
func TestStalledRequestBodyIsCut(t *testing.T) {
	var seen atomic.Int32
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { seen.Add(1) }))
	defer origin.Close()
	cfg := testConfig(t)
	cfg.IdleTimeout = 200 * time.Millisecond
	h := startProxy(t, cfg)
	target := strings.TrimPrefix(origin.URL, "http://")
	for _, tc := range []struct {
		name   string
		prefix string // sent before the request
		target string
	}{
		{"plain", "", origin.URL + "/"},
		{"in a tunnel", "CONNECT " + target + " HTTP/1.1\r\nHost: " + target + "\r\n\r\n", "/"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conn, err := net.Dial("tcp", h.proxyURL.Host)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			br := bufio.NewReader(conn)
			if tc.prefix != "" {
				io.WriteString(conn, tc.prefix)
				if resp, err := http.ReadResponse(br, nil); err != nil || resp.StatusCode != http.StatusOK {
					t.Fatalf("CONNECT: %v %v", resp, err)
				}
			}
			fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Length: 10\r\n\r\nabc", tc.target, target)
			done := make(chan error, 1)
			go func() {
				_, err := io.ReadAll(br) // whatever comes, until the proxy closes
				done <- err
			}()
			select {
			case <-done:
			case <-time.After(20 * time.Second):
				t.Fatal("the connection of a client stalled in its body is still open after 20s (idle_timeout 200ms)")
			}
		})
	}
	if n := seen.Load(); n != 0 {
		t.Errorf("the origin saw %d requests, want none", n)
	}
}
