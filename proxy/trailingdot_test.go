package proxy

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sessionproxy/sessionproxy/proxy/config"
)

// A host name written fully qualified, with its root dot ("localhost.",
// "admin.example."), is the same name as without it: the settings that
// list hosts match it either way.

// connectAnywhereUpstream is an upstream HTTP proxy that answers every
// CONNECT by connecting to addr, whatever host it names: it stands for an
// upstream whose resolver knows the name (the test machine's may not
// resolve "localhost."). It stops when the test ends.
func connectAnywhereUpstream(t *testing.T, addr string) *url.URL {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(10 * time.Second))
				br := bufio.NewReader(c)
				req, err := http.ReadRequest(br)
				if err != nil || req.Method != http.MethodConnect {
					return
				}
				o, err := net.DialTimeout("tcp", addr, 5*time.Second)
				if err != nil {
					io.WriteString(c, "HTTP/1.1 502 Bad Gateway\r\n\r\n")
					return
				}
				defer o.Close()
				o.SetDeadline(time.Now().Add(10 * time.Second))
				io.WriteString(c, "HTTP/1.1 200 OK\r\n\r\n")
				done := make(chan struct{}, 2)
				go func() { io.Copy(o, br); done <- struct{}{} }()
				go func() { io.Copy(c, o); done <- struct{}{} }()
				<-done // the deferred closes end the other copy
			})
		}
	})
	return &url.URL{Scheme: "http", Host: ln.Addr().String()}
}

// TestSkipHostsFullyQualifiedNotIntercepted: a CONNECT to a host listed in
// mitm.skip_hosts, written with its root dot ("localhost.:PORT", as curl
// sends it for https://localhost.:PORT/), is tunnelled without
// interception as the host without it is: the client sees the origin's
// own certificate, not the proxy's leaf.
func TestSkipHostsFullyQualifiedNotIntercepted(t *testing.T) {
	origin := httptest.NewTLSServer(originMux())
	defer origin.Close()
	originAddr := strings.TrimPrefix(origin.URL, "https://")
	_, port, _ := net.SplitHostPort(originAddr)
	cfg := testConfig(t)
	cfg.MITM.SkipHosts = []string{"localhost"}
	cfg.Upstreams = []*url.URL{connectAnywhereUpstream(t, originAddr)}
	h := startProxy(t, cfg)

	for _, host := range []string{"localhost", "localhost.", "LocalHost."} {
		target := net.JoinHostPort(host, port)
		conn, err := net.DialTimeout("tcp", h.proxyURL.Host, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		fmt.Fprintf(conn, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", target, target)
		br := bufio.NewReader(conn)
		resp, err := http.ReadResponse(br, nil)
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("CONNECT %s: %v %v", target, resp, err)
		}
		if br.Buffered() > 0 {
			t.Fatalf("CONNECT %s: bytes after the 200", target)
		}
		tc := tls.Client(conn, &tls.Config{InsecureSkipVerify: true, ServerName: "localhost"})
		if err := tc.Handshake(); err != nil {
			t.Fatalf("CONNECT %s: handshake: %v", target, err)
		}
		if leaf := tc.ConnectionState().PeerCertificates[0]; !leaf.Equal(origin.Certificate()) {
			t.Errorf("CONNECT %s: the client got the proxy's certificate (%v), not the origin's: a host in skip_hosts was intercepted",
				target, leaf.Subject)
		}
	}
}

// TestAdminHostsFullyQualified: an admin_hosts entry written with its root
// dot ("admin.example.", "ops.example.:8081") answers its name with or
// without the dot, as one written without it does.
func TestAdminHostsFullyQualified(t *testing.T) {
	cfg, err := config.Parse("c.yaml", []byte("admin_hosts: ['admin.example.', 'ops.example.:8081']\n"))
	if err != nil {
		t.Fatal(err)
	}
	for host, want := range map[string]bool{
		"admin.example":       true,
		"admin.example.":      true,
		"Admin.Example.:8081": true,
		"ops.example.:8081":   true,
		"ops.example:8081":    true,
		"ops.example.:8082":   false,
		"other.example.":      false,
	} {
		r := httptest.NewRequest(http.MethodGet, "/sessions", nil)
		r.Host = host
		if got := adminHostAllowed(r, cfg.AdminHosts); got != want {
			t.Errorf("Host %q with admin_hosts %q: allowed %v, want %v", host, cfg.AdminHosts, got, want)
		}
	}
}
