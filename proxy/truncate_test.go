package proxy

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"

	"github.com/sessionproxy/sessionproxy/proxy/rules"
)

// cutOrigin answers every request with the head of a response and part of
// its body, then closes the connection: an origin dying mid-body. With
// chunked it announces a chunked body, else a Content-Length of 1000.
func cutOrigin(chunked bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		conn, bw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			panic(err)
		}
		defer conn.Close()
		if chunked {
			bw.WriteString("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
		} else {
			bw.WriteString("HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\nhello")
		}
		bw.Flush()
	}
}

// h2TunnelClient is an x/net/http2 client that reaches every origin through
// an intercepted CONNECT tunnel of the proxy, speaking HTTP/2 inside it.
func (h *harness) h2TunnelClient() *http.Client {
	tr := &http2.Transport{
		DialTLSContext: func(ctx context.Context, network, addr string, cfg *tls.Config) (net.Conn, error) {
			conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", h.proxyURL.Host)
			if err != nil {
				return nil, err
			}
			fmt.Fprintf(conn, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", addr, addr)
			br := bufio.NewReader(conn)
			resp, err := http.ReadResponse(br, nil)
			if err != nil || resp.StatusCode != http.StatusOK || br.Buffered() > 0 {
				conn.Close()
				return nil, fmt.Errorf("CONNECT: %v %v", resp, err)
			}
			host, _, _ := net.SplitHostPort(addr)
			tc := tls.Client(conn, &tls.Config{RootCAs: h.caPool, ServerName: host, NextProtos: []string{"h2"}})
			if err := tc.HandshakeContext(ctx); err != nil {
				conn.Close()
				return nil, err
			}
			if p := tc.ConnectionState().NegotiatedProtocol; p != "h2" {
				conn.Close()
				return nil, fmt.Errorf("negotiated %q, not h2", p)
			}
			return tc, nil
		},
	}
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}
}

// A response cut off by the origin is cut off for the client too (no chunk
// terminator, a short Content-Length body, RST_STREAM on HTTP/2) and counts
// as an upstream failure of the session, not a good use.
func TestCutOffResponse(t *testing.T) {
	for _, tc := range []struct {
		name    string
		tls     bool
		h2      bool
		chunked bool
		rules   bool // a rule that reads the body: the verdict comes while it streams
	}{
		{name: "plain chunked", chunked: true},
		{name: "plain content-length"},
		{name: "plain chunked body rule", chunked: true, rules: true},
		{name: "tunnel h1 chunked", tls: true, chunked: true},
		{name: "tunnel h1 content-length", tls: true},
		{name: "tunnel h2 chunked", tls: true, h2: true, chunked: true},
		{name: "tunnel h2 content-length", tls: true, h2: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var origin *httptest.Server
			if tc.tls {
				origin = httptest.NewTLSServer(cutOrigin(tc.chunked))
			} else {
				origin = httptest.NewServer(cutOrigin(tc.chunked))
			}
			defer origin.Close()
			cfg := testConfig(t)
			if tc.rules {
				cfg = rulesConfig(t, rules.Spec{Name: "captcha", Body: `captcha`, Action: rules.ActionRetire})
			}
			if tc.tls {
				trustOrigin(t, cfg, origin)
			}
			h := startProxy(t, cfg)
			c := h.client("", "")
			if tc.h2 {
				c = h.h2TunnelClient()
			}
			req, _ := http.NewRequest(http.MethodGet, origin.URL+"/big", nil)
			req.Header.Set("X-Session-Id", "cut")
			resp, err := c.Do(req)
			if err != nil && !tc.h2 { // HTTP/2 may reset the stream before its head went out
				t.Fatalf("GET: %v", err)
			}
			if err == nil {
				var body []byte
				body, err = io.ReadAll(resp.Body)
				resp.Body.Close()
				if err == nil {
					t.Fatalf("the client read %q as a whole body (status %d), want a read error", body, resp.StatusCode)
				}
			}
			if tc.h2 && !strings.Contains(err.Error(), "INTERNAL_ERROR") {
				t.Errorf("HTTP/2 body error %v, want a RST_STREAM (INTERNAL_ERROR)", err)
			}
			sess, gerr := h.pool().GetSessionByID(context.Background(), "cut")
			if gerr != nil {
				t.Fatalf("session cut: %v", gerr)
			}
			if sess.ErrorScore() != 1 || sess.UsageCount() != 1 {
				t.Errorf("session error score %v, uses %d after a cut-off body: want one bad use", sess.ErrorScore(), sess.UsageCount())
			}
			st := h.srv.Stats()
			if st.UpstreamFailures != 1 || st.ByOutcome["error"] != 1 || st.ByOutcome["good"] != 0 {
				t.Errorf("upstream failures %d, outcomes %v: want 1 failure, 1 error, no good", st.UpstreamFailures, st.ByOutcome)
			}
			if a := st.Attempts.ByOutcome; a["error"] != 1 || len(a) != 1 {
				t.Errorf("attempts by outcome %v, want one error", a)
			}
		})
	}
}

// A response that ends whole is still a good use, recorded once.
func TestWholeResponseIsGood(t *testing.T) {
	origin := httptest.NewServer(originMux())
	defer origin.Close()
	h := startProxy(t, testConfig(t))
	get(t, h.client("", ""), origin.URL+"/echo", "whole")
	sess, err := h.pool().GetSessionByID(context.Background(), "whole")
	if err != nil {
		t.Fatal(err)
	}
	if sess.ErrorScore() != 0 || sess.UsageCount() != 1 {
		t.Errorf("error score %v, uses %d: want one good use", sess.ErrorScore(), sess.UsageCount())
	}
	if st := h.srv.Stats(); st.ByOutcome["good"] != 1 || st.UpstreamFailures != 0 || st.Attempts.ByOutcome["good"] != 1 {
		t.Errorf("outcomes %v, attempts %v, upstream failures %d: want 1 good, 0 failures", st.ByOutcome, st.Attempts.ByOutcome, st.UpstreamFailures)
	}
}
