package proxy

import (
	"bytes"
	"io"
	"net/http"
	"strings"
	"testing"
)

// TestEarlyAnswerToUpload: an origin that answers an upload before it
// reads the body (a 413) and closes: the client gets the origin's answer,
// over plain HTTP and in a tunnel, as net/http's transport would pass it
// on, not a 502 for the write that failed.
func TestEarlyAnswerToUpload(t *testing.T) {
	plain, secure, cfg := origins(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "close")
		w.WriteHeader(http.StatusRequestEntityTooLarge)
		io.WriteString(w, "too large")
	}))
	h := startProxy(t, cfg)
	c := h.client("", "")
	body := bytes.Repeat([]byte("x"), 32<<20)
	for _, origin := range []string{plain.URL, secure.URL} {
		resp, err := c.Post(origin+"/upload", "application/octet-stream", bytes.NewReader(body))
		if err != nil {
			t.Errorf("%s: %v", origin, err)
			continue
		}
		got, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(string(got), "too large") {
			t.Errorf("%s: %d %q, want the origin's 413", origin, resp.StatusCode, got)
		}
	}
}
