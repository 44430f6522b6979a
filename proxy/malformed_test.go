package proxy

import (
	"bufio"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/sessionproxy/sessionproxy/proxy/proxytest"
)

// answeringOrigin is an origin on loopback that reads one request head on
// each connection and answers it with answer as it is, then closes the
// connection: over TLS with leaf when leaf is not nil.
func answeringOrigin(t *testing.T, answer string, leaf *tls.Certificate) string {
	t.Helper()
	scheme := "http://"
	if leaf != nil {
		scheme = "https://"
	}
	return scheme + proxytest.ServeConns(t, func(c net.Conn) {
		defer c.Close()
		if leaf != nil {
			c = tls.Server(c, &tls.Config{Certificates: []tls.Certificate{*leaf}, NextProtos: []string{"http/1.1"}})
		}
		br := bufio.NewReader(c)
		for {
			line, err := br.ReadString('\n')
			if err != nil || line == "\r\n" {
				break
			}
		}
		io.WriteString(c, answer)
	})
}

// TestMalformedOriginResponses: an origin's answer that is not a valid
// HTTP/1.1 response gets the client a 502 with one line saying why; one
// that breaks its framing after a valid head is cut off for the client too:
// the head, then a body that breaks (even before its first byte), never a
// clean shorter one. The proxy goes on serving. The same over plain HTTP and
// inside an intercepted tunnel.
func TestMalformedOriginResponses(t *testing.T) {
	caPEM, keyPEM, _ := proxytest.NewCA(t)
	leaf := proxytest.NewLeaf(t, caPEM, keyPEM, "127.0.0.1")
	cases := []struct {
		name   string
		answer string
		cut    bool // the head is valid, the body broken: so is what the client gets
	}{
		{name: "not HTTP", answer: "SSH-2.0-OpenSSH_9.6\r\n"},
		{name: "bad status code", answer: "HTTP/1.1 2000 OK\r\nContent-Length: 0\r\n\r\n"},
		{name: "conflicting Content-Length", answer: "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!"},
		{name: "unknown Transfer-Encoding", answer: "HTTP/1.1 200 OK\r\nTransfer-Encoding: rot13\r\n\r\nuryyb"},
		{name: "head cut short", answer: "HTTP/1.1 200 OK\r\nX-Half: "},
		{name: "empty answer", answer: ""},
		{name: "switch of protocols to no WebSocket", answer: "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: foo\r\n\r\nraw bytes"},
		{name: "body shorter than its Content-Length", answer: "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", cut: true},
		{name: "no byte of a Content-Length body", answer: "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n", cut: true},
		{name: "bad chunk size", answer: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\nzz\r\n", cut: true},
		{name: "chunked body cut short", answer: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab", cut: true},
	}
	cfg := testConfig(t)
	trustCA(t, cfg, caPEM)
	h := startProxy(t, cfg)
	c := h.client("", "")
	for _, cert := range []*tls.Certificate{nil, &leaf} {
		good := answeringOrigin(t, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", cert)
		scheme, _, _ := strings.Cut(good, ":")
		for _, tc := range cases {
			t.Run(scheme+"/"+tc.name, func(t *testing.T) {
				origin := answeringOrigin(t, tc.answer, cert)
				resp, err := c.Get(origin + "/")
				if err != nil {
					t.Fatalf("GET: %v", err)
				}
				body, readErr := io.ReadAll(resp.Body)
				resp.Body.Close()
				switch {
				case tc.cut:
					if resp.StatusCode != http.StatusOK || readErr == nil {
						t.Errorf("status %d, body %q read with error %v; want the 200 and a broken body", resp.StatusCode, body, readErr)
					}
				case resp.StatusCode != http.StatusBadGateway:
					t.Errorf("status %d, want 502", resp.StatusCode)
				case readErr != nil || strings.Count(strings.TrimSpace(string(body)), "\n") != 0 || len(strings.TrimSpace(string(body))) == 0:
					t.Errorf("502 body %q (read error %v), want one line saying why", body, readErr)
				default:
					t.Logf("502: %s", body)
				}
				// The proxy goes on serving.
				if resp, body := get(t, c, good+"/", ""); resp.StatusCode != http.StatusOK || body != "ok" {
					t.Errorf("after it: status %d, body %q", resp.StatusCode, body)
				}
			})
		}
	}
}

// TestH2Tunnel204WithLength: an origin's 204 that (wrongly) carries a
// Content-Length reaches an HTTP/2 client in a tunnel without it, as the
// HTTP/1.1 framing gives it to an HTTP/1.1 client: a 204 with a length is
// a malformed HTTP/2 response (curl fails the stream).
func TestH2Tunnel204WithLength(t *testing.T) {
	caPEM, keyPEM, _ := proxytest.NewCA(t)
	leaf := proxytest.NewLeaf(t, caPEM, keyPEM, "127.0.0.1")
	origin := answeringOrigin(t, "HTTP/1.1 204 No Content\r\nContent-Length: 5\r\nX-Kept: 1\r\n\r\n", &leaf)
	cfg := testConfig(t)
	trustCA(t, cfg, caPEM)
	h := startProxy(t, cfg)
	resp, err := h.h2TunnelClient().Get(origin + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent || resp.Header.Get("Content-Length") != "" || resp.Header.Get("X-Kept") != "1" {
		t.Errorf("HTTP/2 client got %d with %v; want the 204 with its other headers and no Content-Length", resp.StatusCode, resp.Header)
	}
}

// TestEmptyChunkedBodyKeepsItsFraming: a chunked response whose body is
// empty reaches a plain-HTTP client chunked, not with a Content-Length: 0
// the origin never sent.
func TestEmptyChunkedBodyKeepsItsFraming(t *testing.T) {
	origin := answeringOrigin(t, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", nil)
	h := startProxy(t, testConfig(t))
	resp, err := h.client("", "").Get(origin + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if len(resp.TransferEncoding) != 1 || resp.TransferEncoding[0] != "chunked" || resp.Header.Get("Content-Length") != "" {
		t.Errorf("client got Transfer-Encoding %v, Content-Length %q; want chunked and none", resp.TransferEncoding, resp.Header.Get("Content-Length"))
	}
}
