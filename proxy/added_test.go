package proxy

import (
	"crypto/tls"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
)

// rawOrigin answers every request with exactly these bytes: no Date, no
// Content-Type, which net/http's server would add.
var rawOrigin = rawOriginOf("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Origin: yes\r\nConnection: close\r\n\r\nhello")

// rawOriginOf is a handler that answers every request with response, as it
// is, and closes the connection.
func rawOriginOf(response string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		conn, buf, err := http.NewResponseController(w).Hijack()
		if err != nil {
			panic(err)
		}
		defer conn.Close()
		buf.WriteString(response)
		buf.Flush()
	}
}

// TestNothingAddedToResponses: a response without Content-Type or Date
// reaches the client without them, plain HTTP and in a tunnel, over
// HTTP/1.1 and HTTP/2 between client and proxy.
func TestNothingAddedToResponses(t *testing.T) {
	plain := httptest.NewServer(http.HandlerFunc(rawOrigin))
	t.Cleanup(plain.Close)
	secure := httptest.NewTLSServer(http.HandlerFunc(rawOrigin))
	t.Cleanup(secure.Close)
	cfg := testConfig(t)
	trustOrigin(t, cfg, secure)
	h := startProxy(t, cfg)

	for _, tc := range []struct {
		name string
		url  string
		h2   bool
	}{
		{"http", plain.URL, false},
		{"https-h1", secure.URL, false},
		{"https-h2", secure.URL, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := h.client("", "")
			tr := c.Transport.(*http.Transport)
			if tc.h2 {
				tr.ForceAttemptHTTP2 = true
			} else {
				tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
			}
			resp, body := get(t, c, tc.url+"/x", "")
			if body != "hello" || resp.Header.Get("X-Origin") != "yes" {
				t.Fatalf("got %q, header %v", body, resp.Header)
			}
			if tc.h2 != (resp.ProtoMajor == 2) {
				t.Fatalf("proto %s", resp.Proto)
			}
			for _, name := range []string{"Content-Type", "Date"} {
				if v, ok := resp.Header[name]; ok {
					t.Errorf("%s: %q added", name, v)
				}
			}
			io.Copy(io.Discard, resp.Body)
		})
	}
}
