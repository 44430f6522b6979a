package proxy

import (
	"bytes"
	"encoding/json"
	"html"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// ownHostDo sends method to http://sessionproxy+path through c, with the
// given extra headers, and returns the status and body.
func ownHostDo(t *testing.T, c *http.Client, method, path string, header map[string]string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, "http://sessionproxy"+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(body)
}

// TestOwnHostOnboarding: http://sessionproxy/ is answered by the proxy
// itself (the name resolves nowhere): the onboarding page names the CA's
// SPKI hash and links its downloads, which are the proxy's CA.
func TestOwnHostOnboarding(t *testing.T) {
	h := startProxy(t, testConfig(t))
	c := h.client("", "")

	code, page := ownHostDo(t, c, http.MethodGet, "/", nil)
	if code != http.StatusOK {
		t.Fatalf("GET http://sessionproxy/: %d %s", code, page)
	}
	page = html.UnescapeString(page) // the template writes "+" as "&#43;"
	for _, want := range []string{h.srv.CA().SPKIHash(), `href="/ca.pem"`, `href="/ca.der"`,
		"--ignore-certificate-errors-spki-list=" + h.srv.CA().SPKIHash(), h.proxyURL.Host, "update-ca-certificates"} {
		if !strings.Contains(page, want) {
			t.Errorf("onboarding page lacks %q", want)
		}
	}
	if code, pem := ownHostDo(t, c, http.MethodGet, "/ca.pem", nil); code != http.StatusOK || !bytes.Equal([]byte(pem), h.srv.CA().CertPEM()) {
		t.Errorf("GET /ca.pem: %d, %d bytes; want the CA's PEM", code, len(pem))
	}
	if code, der := ownHostDo(t, c, http.MethodGet, "/ca.der", nil); code != http.StatusOK || !bytes.Equal([]byte(der), h.srv.CA().CertDER()) {
		t.Errorf("GET /ca.der: %d, %d bytes; want the CA's DER", code, len(der))
	}
	if code, body := ownHostDo(t, c, http.MethodGet, "/nothing", nil); code != http.StatusNotFound {
		t.Errorf("GET /nothing: %d %s, want 404", code, body)
	}
	// Another port of the name is an ordinary target, not the proxy's page.
	if code, _ := ownHostDo(t, c, http.MethodGet, ":8000/", nil); code == http.StatusOK {
		t.Errorf("http://sessionproxy:8000/ was answered by the proxy")
	}
}

// TestOwnHostMarks: a client marks the session it used through the proxy's
// own host: bad raises its error score, retire retires it, unknown sessions
// are 404 and a cross-site POST from a web page is refused.
func TestOwnHostMarks(t *testing.T) {
	origin := httptest.NewServer(originMux())
	defer origin.Close()
	h := startProxy(t, testConfig(t))
	c := h.client("", "")
	get(t, c, origin.URL+"/echo", "alice")

	get(t, c, origin.URL+"/set?name=auth&value=S3CRET-COOKIE", "alice")
	code, body := ownHostDo(t, c, http.MethodPost, "/sessions/alice/bad", nil)
	if code != http.StatusOK {
		t.Fatalf("mark bad: %d %s", code, body)
	}
	// Any proxy client may mark a name it can guess: it learns the
	// session's standing, never its cookies (the admin API shows those).
	var marks []map[string]any
	if err := json.Unmarshal([]byte(body), &marks); err != nil || len(marks) != 1 || marks[0]["errorScore"] != 1.0 || marks[0]["usable"] != true {
		t.Errorf("mark bad answered %s (%v); want alice's standing, error score 1", body, err)
	}
	if strings.Contains(body, "S3CRET") || strings.Contains(body, "cookies") || strings.Contains(body, "proxyUrl") {
		t.Errorf("the own host's answer shows what only the admin API may: %s", body)
	}
	if st := stateOf(t, h, "alice"); st.ErrorScore != 1 {
		t.Errorf("after /bad the error score is %v, want 1", st.ErrorScore)
	}
	if code, body := ownHostDo(t, c, http.MethodPost, "/sessions/alice/retire", map[string]string{"Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"}); code != http.StatusForbidden {
		t.Errorf("cross-site retire: %d %s, want 403", code, body)
	}
	if st := stateOf(t, h, "alice"); st.Retired {
		t.Fatal("a cross-site POST retired the session")
	}
	if code, body := ownHostDo(t, c, http.MethodPost, "/sessions/alice/retire", nil); code != http.StatusOK {
		t.Fatalf("retire: %d %s", code, body)
	}
	if st := stateOf(t, h, "alice"); !st.Retired {
		t.Error("after /retire the session is still usable")
	}
	if code, _ := ownHostDo(t, c, http.MethodPost, "/sessions/nobody/retire", nil); code != http.StatusNotFound {
		t.Errorf("retire of an unknown session: %d, want 404", code)
	}
	if code, _ := ownHostDo(t, c, http.MethodGet, "/sessions/alice/retire", nil); code == http.StatusOK {
		t.Error("GET retired a session")
	}
}

// TestOwnHostNeedsClientAuth: the proxy's client authentication applies to
// its own host as to any target.
func TestOwnHostNeedsClientAuth(t *testing.T) {
	cfg := testConfig(t)
	cfg.Auth.Users = map[string]string{"crawler": "pw"}
	h := startProxy(t, cfg)
	if code, _ := ownHostDo(t, h.client("", ""), http.MethodGet, "/", nil); code != http.StatusProxyAuthRequired {
		t.Errorf("without credentials: %d, want 407", code)
	}
	if code, _ := ownHostDo(t, h.client("crawler", "pw"), http.MethodGet, "/", nil); code != http.StatusOK {
		t.Errorf("with credentials: %d, want 200", code)
	}
}
