package sessionpool

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"reflect"
	"testing"
	"time"
)

// checkJarInvariants verifies what every stored cookie must satisfy when all
// of j's cookies were set by responses from u at now.
func checkJarInvariants(t *testing.T, j *jar, u *url.URL, now time.Time) {
	t.Helper()
	host, hostIsIP, ok := canonicalHost(u)
	if !ok {
		if len(j.entries) != 0 {
			t.Fatalf("cookies stored for unusable URL %q", u)
		}
		return
	}
	secureOrigin := isSecureScheme(u.Scheme) || isLoopback(host, hostIsIP)
	type key struct{ name, domain, path string }
	seen := map[key]bool{}
	for i := range j.entries {
		e := &j.entries[i]
		name, value := e.name(), e.value()
		if !validName(name) || !validValue(value) || len(name)+len(value) > maxNameValueBytes {
			t.Fatalf("invalid name/value stored: %q", e.nv)
		}
		if e.path == "" || e.path[0] != '/' || !validAttrValue(e.path) {
			t.Fatalf("bad path %q", e.path)
		}
		d, dIsIP, ok := canonicalDomain(e.domain)
		if !ok || d != e.domain {
			t.Fatalf("domain %q not canonical (%q, %v)", e.domain, d, ok)
		}
		if !domainMatch(host, e.domain) {
			t.Fatalf("cookie domain %q does not domain-match host %q", e.domain, host)
		}
		if e.hostOnly && e.domain != host {
			t.Fatalf("host-only cookie for %q set by %q", e.domain, host)
		}
		if !e.hostOnly && (dIsIP || hostIsIP || isPublicSuffix(e.domain)) {
			t.Fatalf("domain cookie on IP or public suffix %q", e.domain)
		}
		if e.secure && !secureOrigin {
			t.Fatalf("Secure cookie from non-secure %q", u)
		}
		if !prefixOK(name, e) {
			t.Fatalf("prefix rules broken by %q", name)
		}
		if e.expired(now) {
			t.Fatalf("expired cookie stored: %q", e.nv)
		}
		k := key{name, e.domain, e.path}
		if seen[k] {
			t.Fatalf("duplicate cookie %v", k)
		}
		seen[k] = true
		if i > 0 && compareEntries(&j.entries[i-1], e) >= 0 {
			t.Fatalf("entries out of order at %d", i)
		}
	}
	// Every cookie is sent back to u when its path and Secure allow it.
	want := 0
	for i := range j.entries {
		e := &j.entries[i]
		if pathMatch(requestPath(u), e.path) && (!e.secure || isSecureScheme(u.Scheme)) {
			want++
		}
	}
	if got := len(j.cookies(u, now)); got != want {
		t.Fatalf("cookies(%q) returned %d, want %d", u, got, want)
	}
	// Whatever was stored survives an export and a load.
	exported := j.export(now)
	var k jar
	if err := k.load(exported, now); err != nil {
		t.Fatalf("load of export: %v", err)
	}
	if got := k.export(now); !reflect.DeepEqual(got, exported) {
		t.Fatalf("export/load round trip:\n got %+v\nwant %+v", got, exported)
	}
}

func FuzzSetCookie(f *testing.F) {
	for _, s := range [][3]string{
		{"https://example.com", "CSRF=e8b667; Domain=example.com; Secure", "id=a3fWa; Expires=Wed, Domain=example.com; 21 Oct 2015 07:28:00 GMT"},
		{"https://www.example.co.uk/a/b", "a=1; Domain=co.uk", "b=2; Domain=.example.co.uk; Path=/a"},
		{"http://127.0.0.1:8080/", "a=1; Domain=127.0.0.1; Max-Age=10", "a=; Max-Age=0"},
		{"http://[::1]/x", "__Host-a=1; Secure; Path=/", "__Secure-b=2"},
		{"https://bücher.de/", `q="x y"; Domain=BÜCHER.de; SameSite=Lax; HttpOnly`, "z=1; Path=/%zz"},
		{"https://github.io", "a=1; Domain=github.io", "b=1; Expires=Sun Nov  6 08:49:37 1994"},
		{"http://localhost/", "a=1; Secure; Path=rel", "=x"},
		{"ftp://example.com/", "a=1", "b"},
	} {
		f.Add(s[0], s[1], s[2])
	}
	f.Fuzz(func(t *testing.T, rawURL, line1, line2 string) {
		u, err := url.Parse(rawURL)
		if err != nil {
			return
		}
		var j jar
		j.setFromResponse(u, []string{line1, line2}, jarT0)
		checkJarInvariants(t, &j, u, jarT0)
		// Browser-style import of the same lines, parsed by net/http, keeps
		// the invariants too except Secure from http (allowed by imports).
		var k jar
		k.setCookies(u, (&http.Response{Header: http.Header{"Set-Cookie": {line1, line2}}}).Cookies(), jarT0)
		for i := range k.entries {
			e := &k.entries[i]
			host, _, _ := canonicalHost(u)
			if !validName(e.name()) || !domainMatch(host, e.domain) || e.path == "" || e.path[0] != '/' {
				t.Fatalf("setCookies stored %+v for %q", e, u)
			}
		}
	})
}

func FuzzParseCookieDate(f *testing.F) {
	for _, s := range []string{
		"Wed, 21 Oct 2015 07:28:00 GMT", "Sunday, 06-Nov-94 08:49:37 GMT", "Sun Nov  6 08:49:37 1994",
		"29 Feb 2024 00:00:00", "31 Apr 2015 1:2:3", "99 Dec 99 99:99:99", "",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tm, ok := parseCookieDate(s)
		if !ok {
			if !tm.IsZero() {
				t.Fatalf("%q: not ok but %v", s, tm)
			}
			return
		}
		if tm.Year() < 1601 || tm.Year() > 9999 || tm.Location() != time.UTC || tm.Nanosecond() != 0 {
			t.Fatalf("%q: out of range %v", s, tm)
		}
		back, ok := parseCookieDate(tm.Format(http.TimeFormat))
		if !ok || !back.Equal(tm) {
			t.Fatalf("%q: %v does not reparse (%v, %v)", s, tm, back, ok)
		}
	})
}

func FuzzJarLoad(f *testing.F) {
	f.Add([]byte(`[{"name":"uid","value":"7","domain":"example.com","path":"/","hostOnly":true,"secure":false,"httpOnly":true,"expires":"2026-12-01T00:00:00Z","creation":"2026-11-27T10:00:00Z"}]`))
	f.Add([]byte(`[{"name":"a","value":"1","domain":".Example.com","sameSite":"lax"},{"name":"a","value":"2","domain":"example.com"}]`))
	f.Add([]byte(`[{"name":"","domain":"co.uk"},{"name":"x","domain":"1.2.3.4","path":"rel"}]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var cs []Cookie
		if json.Unmarshal(data, &cs) != nil {
			return
		}
		var j jar
		if err := j.load(cs, jarT0); err != nil {
			if !errors.Is(err, ErrInvalidCookie) {
				t.Fatalf("load error %v does not wrap ErrInvalidCookie", err)
			}
			if j.entries != nil {
				t.Fatal("failed load changed the jar")
			}
			return
		}
		exported := j.export(jarT0)
		var k jar
		if err := k.load(exported, jarT0); err != nil {
			t.Fatalf("reload: %v", err)
		}
		if got := k.export(jarT0); !reflect.DeepEqual(got, exported) {
			t.Fatalf("round trip:\n got %+v\nwant %+v", got, exported)
		}
		for i := 1; i < len(j.entries); i++ {
			if compareEntries(&j.entries[i-1], &j.entries[i]) >= 0 {
				t.Fatalf("entries out of order at %d", i)
			}
		}
	})
}
