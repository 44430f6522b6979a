package sessionpool

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

var jarT0 = time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)

func mustURL(t testing.TB, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatalf("parse %q: %v", s, err)
	}
	return u
}

func httpDate(t time.Time) string { return t.UTC().Format(http.TimeFormat) }

// jarStep is one response received at jarT0+at from a URL.
type jarStep struct {
	at    time.Duration
	from  string
	lines []string
}

// jarCheck is the Cookie header the jar must give for url at jarT0+at.
type jarCheck struct {
	at   time.Duration
	url  string
	want string
}

type jarCase struct {
	name   string
	steps  []jarStep
	checks []jarCheck
}

func set(from string, lines ...string) jarStep { return jarStep{from: from, lines: lines} }

func setAt(at time.Duration, from string, lines ...string) jarStep {
	return jarStep{at: at, from: from, lines: lines}
}

func want(u, s string) jarCheck { return jarCheck{url: u, want: s} }

func wantAt(at time.Duration, u, s string) jarCheck { return jarCheck{at: at, url: u, want: s} }

func runJarCases(t *testing.T, cases []jarCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var j jar
			for _, s := range tc.steps {
				j.setFromResponse(mustURL(t, s.from), s.lines, jarT0.Add(s.at))
			}
			for _, c := range tc.checks {
				got := string(j.appendCookieString(nil, mustURL(t, c.url), jarT0.Add(c.at)))
				if got != c.want {
					t.Errorf("at +%v for %s: got %q, want %q", c.at, c.url, got, c.want)
				}
			}
		})
	}
}

func TestJarContractExamples(t *testing.T) {
	runJarCases(t, []jarCase{
		{
			name: "malformed Expires ignored, not the cookie",
			steps: []jarStep{set("https://example.com",
				"CSRF=e8b667; Domain=example.com; Secure",
				"id=a3fWa; Expires=Wed, Domain=example.com; 21 Oct 2015 07:28:00 GMT")},
			checks: []jarCheck{
				want("https://example.com", "CSRF=e8b667; id=a3fWa"),
				// CSRF is a Secure domain cookie, id host-only.
				want("http://example.com", "id=a3fWa"),
				want("https://www.example.com", "CSRF=e8b667"),
			},
		},
		{
			name:  "host-only cookie not sent to subdomain",
			steps: []jarStep{set("https://example.com", "a=1")},
			checks: []jarCheck{
				want("https://example.com", "a=1"),
				want("https://www.example.com", ""),
			},
		},
		{
			name:  "domain cookie sent to domain and subdomain",
			steps: []jarStep{set("https://example.com", "a=1; Domain=.example.com")},
			checks: []jarCheck{
				want("https://example.com", "a=1"),
				want("https://www.example.com", "a=1"),
			},
		},
		{
			name:  "non-matching Domain dropped, others kept",
			steps: []jarStep{set("https://www.example.com", "bad=1; Domain=other.com", "good=2")},
			checks: []jarCheck{
				want("https://www.example.com", "good=2"),
				want("https://other.com", ""),
			},
		},
	})
}

func TestJarDomainMatching(t *testing.T) {
	runJarCases(t, []jarCase{
		{
			name:  "domain cookie without leading dot",
			steps: []jarStep{set("https://www.example.com/", "a=1; Domain=example.com")},
			checks: []jarCheck{
				want("https://example.com", "a=1"),
				want("https://a.b.example.com", "a=1"),
				want("https://notexample.com", ""),
				want("https://example.com.evil.org", ""),
			},
		},
		{
			name:   "sibling Domain dropped",
			steps:  []jarStep{set("https://www.example.com", "a=1; Domain=api.example.com")},
			checks: []jarCheck{want("https://api.example.com", ""), want("https://www.example.com", "")},
		},
		{
			name:   "Domain deeper than host dropped",
			steps:  []jarStep{set("https://example.com", "a=1; Domain=www.example.com")},
			checks: []jarCheck{want("https://www.example.com", ""), want("https://example.com", "")},
		},
		{
			name:  "case-insensitive host and Domain, ports ignored",
			steps: []jarStep{set("https://WWW.Example.COM:8443/", "a=1; Domain=EXAMPLE.com", "b=2")},
			checks: []jarCheck{
				want("https://example.com:1/", "a=1"),
				want("https://www.example.com/", "a=1; b=2"),
				want("https://WWW.EXAMPLE.COM:9/", "a=1; b=2"),
			},
		},
		{
			name:   "trailing dot on host",
			steps:  []jarStep{set("https://example.com./", "a=1")},
			checks: []jarCheck{want("https://example.com", "a=1"), want("https://example.com./x", "a=1")},
		},
		{
			name:   "trailing dot on Domain dropped",
			steps:  []jarStep{set("https://www.example.com", "a=1; Domain=example.com.")},
			checks: []jarCheck{want("https://www.example.com", "")},
		},
		{
			name:   "empty Domain ignored: host-only",
			steps:  []jarStep{set("https://example.com", "a=1; Domain=")},
			checks: []jarCheck{want("https://example.com", "a=1"), want("https://www.example.com", "")},
		},
		{
			name:   "Domain of only dots dropped",
			steps:  []jarStep{set("https://example.com", "a=1; Domain=.", "b=1; Domain=..example.com")},
			checks: []jarCheck{want("https://example.com", "")},
		},
		{
			name:  "last Domain wins",
			steps: []jarStep{set("https://www.example.com", "a=1; Domain=other.org; Domain=example.com")},
			checks: []jarCheck{
				want("https://x.example.com", "a=1"),
			},
		},
		{
			name:  "internationalised host and Domain",
			steps: []jarStep{set("https://www.bücher.de/", "a=1; Domain=BÜCHER.de")},
			checks: []jarCheck{
				want("https://xn--bcher-kva.de/", "a=1"),
				want("https://shop.bücher.de/", "a=1"),
			},
		},
		{
			name:   "other schemes neither set nor get",
			steps:  []jarStep{set("ftp://example.com/", "a=1"), set("https://example.com", "b=1")},
			checks: []jarCheck{want("https://example.com", "b=1"), want("ftp://example.com", "")},
		},
		{
			name:   "ws and wss",
			steps:  []jarStep{set("wss://example.com/", "a=1; Secure")},
			checks: []jarCheck{want("wss://example.com", "a=1"), want("https://example.com", "a=1"), want("ws://example.com", "")},
		},
	})
}

// TestJarIDNFullStops: internationalised names are validated after their
// conversion to punycode, which maps the ideographic and fullwidth full
// stops (U+3002, U+FF0E) to '.': a host or Domain that becomes one with an
// empty label or a trailing dot sets nothing, one that becomes a valid
// name is that name, and whatever is stored loads back (a domain the
// loader refuses would make the whole state document fail to load).
func TestJarIDNFullStops(t *testing.T) {
	tests := []struct {
		name, host, line string // a response from https://host/ sets line
		check, want      string // the Cookie header for check
	}{
		{"empty label in host", "\u00e4\uff0e\uff0ecom", "a=1", "https://xn--4ca.com/", ""},
		{"trailing full stop on host", "shop\u3002", "a=1", "https://shop/", ""},
		{"ideographic full stop between labels", "shop\u3002example\uff0ecom", "a=1", "https://shop.example.com/", "a=1"},
		{"empty label in Domain", "www.example.com", "a=1; Domain=example\uff0e\uff0ecom", "https://www.example.com/", ""},
		{"trailing full stop on Domain", "www.example.com", "a=1; Domain=example.com\u3002", "https://www.example.com/", ""},
		{"leading full stop on Domain", "www.example.com", "a=1; Domain=\u3002example.com", "https://www.example.com/", ""},
		{"ideographic full stop in Domain", "www.example.com", "a=1; Domain=example\u3002com", "https://x.example.com/", "a=1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var j jar
			j.setFromResponse(&url.URL{Scheme: "https", Host: tt.host, Path: "/"}, []string{tt.line}, jarT0)
			if got := string(j.appendCookieString(nil, mustURL(t, tt.check), jarT0)); got != tt.want {
				t.Errorf("for %s: got %q, want %q", tt.check, got, tt.want)
			}
			for _, c := range j.export(jarT0) {
				if d, _, ok := canonicalDomain(c.Domain); !ok || d != c.Domain {
					t.Errorf("stored domain %q is not canonical (%q, %v)", c.Domain, d, ok)
				}
			}
			var k jar
			if err := k.load(j.export(jarT0), jarT0); err != nil {
				t.Fatalf("what the jar stored does not load back: %v", err)
			}
		})
	}
}

func TestJarPublicSuffix(t *testing.T) {
	runJarCases(t, []jarCase{
		{
			name:  "Domain=co.uk refused",
			steps: []jarStep{set("https://www.example.co.uk", "a=1; Domain=co.uk", "b=1; Domain=example.co.uk")},
			checks: []jarCheck{
				want("https://www.example.co.uk", "b=1"),
				want("https://other.co.uk", ""),
			},
		},
		{
			name:   "Domain=com refused",
			steps:  []jarStep{set("https://www.example.com", "a=1; Domain=com", "b=1; Domain=.COM")},
			checks: []jarCheck{want("https://www.example.com", ""), want("https://other.com", "")},
		},
		{
			name:   "private suffix refused",
			steps:  []jarStep{set("https://foo.github.io", "a=1; Domain=github.io")},
			checks: []jarCheck{want("https://foo.github.io", ""), want("https://bar.github.io", "")},
		},
		{
			name:   "suffix equal to host becomes host-only",
			steps:  []jarStep{set("https://github.io", "a=1; Domain=github.io")},
			checks: []jarCheck{want("https://github.io", "a=1"), want("https://foo.github.io", "")},
		},
		{
			name:   "localhost",
			steps:  []jarStep{set("http://localhost:8080", "a=1; Domain=localhost")},
			checks: []jarCheck{want("http://localhost:9", "a=1"), want("http://x.localhost", "")},
		},
	})
}

func TestJarIPHosts(t *testing.T) {
	runJarCases(t, []jarCase{
		{
			name:   "host-only on IPv4",
			steps:  []jarStep{set("http://127.0.0.1:8080/", "a=1")},
			checks: []jarCheck{want("http://127.0.0.1:9/", "a=1"), want("http://127.0.0.2/", "")},
		},
		{
			name:   "Domain equal to the IP becomes host-only",
			steps:  []jarStep{set("http://127.0.0.1/", "a=1; Domain=127.0.0.1")},
			checks: []jarCheck{want("http://127.0.0.1/", "a=1")},
		},
		{
			name:   "Domain suffix of an IP refused",
			steps:  []jarStep{set("http://127.0.0.1/", "a=1; Domain=0.0.1", "b=1; Domain=.0.1")},
			checks: []jarCheck{want("http://127.0.0.1/", ""), want("http://1.0.0.1/", "")},
		},
		{
			name:   "IP Domain from a name refused",
			steps:  []jarStep{set("http://example.com/", "a=1; Domain=127.0.0.1")},
			checks: []jarCheck{want("http://127.0.0.1/", ""), want("http://example.com/", "")},
		},
		{
			name:   "IPv6 canonical form",
			steps:  []jarStep{set("http://[0:0::1]:8080/", "a=1")},
			checks: []jarCheck{want("http://[::1]/", "a=1"), want("http://[::2]/", "")},
		},
		{
			name:   "domain cookie on a numeric name is not sent to an IP",
			steps:  []jarStep{set("http://x.3.4/", "a=1; Domain=3.4")},
			checks: []jarCheck{want("http://y.3.4/", "a=1"), want("http://1.2.3.4/", "")},
		},
	})
}

func TestJarPaths(t *testing.T) {
	runJarCases(t, []jarCase{
		{
			name:  "default path from request",
			steps: []jarStep{set("https://example.com/docs/page?q=1", "a=1")},
			checks: []jarCheck{
				want("https://example.com/docs", "a=1"),
				want("https://example.com/docs/", "a=1"),
				want("https://example.com/docs/x/y", "a=1"),
				want("https://example.com/", ""),
				want("https://example.com/doc", ""),
				want("https://example.com/docsx", ""),
			},
		},
		{
			name:   "default path at top level",
			steps:  []jarStep{set("https://example.com/page", "a=1"), set("https://example.com", "b=1")},
			checks: []jarCheck{want("https://example.com", "a=1; b=1"), want("https://example.com/x/y", "a=1; b=1")},
		},
		{
			name:  "Path with trailing slash",
			steps: []jarStep{set("https://example.com/", "a=1; Path=/a/")},
			checks: []jarCheck{
				want("https://example.com/a/b", "a=1"),
				want("https://example.com/a/", "a=1"),
				want("https://example.com/a", ""),
			},
		},
		{
			name:   "relative and empty Path mean the default path",
			steps:  []jarStep{set("https://example.com/d/p", "a=1; Path=rel", "b=1; Path=", "c=1; Path=/x; Path=y")},
			checks: []jarCheck{want("https://example.com/d", "a=1; b=1; c=1"), want("https://example.com/x", "")},
		},
		{
			name:   "escaped request path",
			steps:  []jarStep{set("https://example.com/", "a=1; Path=/a%20b")},
			checks: []jarCheck{want("https://example.com/a%20b/c", "a=1"), want("https://example.com/a b", "a=1")},
		},
	})
}

func TestJarSecure(t *testing.T) {
	runJarCases(t, []jarCase{
		{
			name:  "sent only over https",
			steps: []jarStep{set("https://example.com", "a=1; Secure", "b=2")},
			checks: []jarCheck{
				want("https://example.com", "a=1; b=2"),
				want("http://example.com", "b=2"),
			},
		},
		{
			name:   "not set from http",
			steps:  []jarStep{set("http://example.com", "a=1; Secure", "b=2")},
			checks: []jarCheck{want("https://example.com", "b=2")},
		},
		{
			name:   "set from http on loopback",
			steps:  []jarStep{set("http://localhost", "a=1; Secure"), set("http://127.0.0.1", "b=1; secure")},
			checks: []jarCheck{want("https://localhost", "a=1"), want("http://localhost", ""), want("https://127.0.0.1", "b=1")},
		},
		{
			name: "http cannot overwrite or delete a Secure cookie",
			steps: []jarStep{
				set("https://example.com", "a=1; Secure", "c=1; Secure; Path=/p"),
				set("http://example.com", "a=2", "a=3; Max-Age=0", "c=2; Path=/p/q"),
			},
			checks: []jarCheck{want("https://example.com/p/q", "c=1; a=1"), want("http://example.com/p/q", "")},
		},
		{
			// The secure cookie comes after the http twin in the jar's
			// order: every cookie of the name is looked at, not only
			// those before the twin.
			name: "http cannot replace its own cookie that a Secure one matches",
			steps: []jarStep{
				set("http://www.example.com", "a=0; Domain=example.com"),
				set("https://www.example.com", "a=secret; Secure"),
				set("http://www.example.com", "a=evil; Domain=example.com"),
			},
			checks: []jarCheck{want("https://www.example.com", "a=0; a=secret")},
		},
		{
			// Nor delete it: a deletion is a cookie set to expire.
			name: "http cannot delete its own cookie that a Secure one matches",
			steps: []jarStep{
				set("http://www.example.com", "a=0; Domain=example.com"),
				set("https://www.example.com", "a=secret; Secure"),
				set("http://www.example.com", "a=; Domain=example.com; Max-Age=0"),
			},
			checks: []jarCheck{want("https://www.example.com", "a=0; a=secret")},
		},
		{
			name: "http deletes its own cookie when no Secure one matches",
			steps: []jarStep{
				set("http://www.example.com", "a=0; Domain=example.com"),
				set("https://other.example", "a=secret; Secure"),
				set("http://www.example.com", "a=; Domain=example.com; Max-Age=0"),
			},
			checks: []jarCheck{want("https://www.example.com", ""), want("https://other.example", "a=secret")},
		},
		{
			name: "http may shadow a Secure cookie on an unrelated path",
			steps: []jarStep{
				set("https://example.com", "c=1; Secure; Path=/p"),
				set("http://example.com", "c=2; Path=/"),
			},
			checks: []jarCheck{want("https://example.com/p", "c=1; c=2"), want("http://example.com/p", "c=2")},
		},
		{
			name: "https replaces a Secure cookie",
			steps: []jarStep{
				set("https://example.com", "a=1; Secure"),
				set("https://example.com", "a=2"),
			},
			checks: []jarCheck{want("http://example.com", "a=2")},
		},
	})
}

func TestJarPrefixes(t *testing.T) {
	runJarCases(t, []jarCase{
		{
			name: "__Secure- needs Secure",
			steps: []jarStep{set("https://example.com",
				"__Secure-a=1", "__Secure-b=1; Secure", "__secure-c=1")},
			checks: []jarCheck{want("https://example.com", "__Secure-b=1")},
		},
		{
			name: "__Host- needs Secure, host-only, Path=/",
			steps: []jarStep{set("https://www.example.com/x/y",
				"__Host-a=1; Secure; Path=/",
				"__Host-b=1; Secure",
				"__Host-c=1; Secure; Path=/; Domain=example.com",
				"__Host-d=1; Path=/",
				"__HOST-e=1; Path=/")},
			checks: []jarCheck{want("https://www.example.com/", "__Host-a=1")},
		},
		// A cookie that breaks its prefix's rules is ignored entirely: it
		// deletes nothing either (RFC 6265bis 5.7).
		{
			name: "__Host- with Domain from a subdomain: no overwrite",
			steps: []jarStep{
				set("https://example.com/", "__Host-id=secret; Secure; Path=/"),
				set("https://evil.example.com/", "__Host-id=evil; Secure; Path=/; Domain=example.com"),
			},
			checks: []jarCheck{want("https://example.com/", "__Host-id=secret")},
		},
		{
			name: "__Host- with Domain from a subdomain: no Max-Age=0 deletion",
			steps: []jarStep{
				set("https://example.com/", "__Host-id=secret; Secure; Path=/"),
				set("https://evil.example.com/", "__Host-id=; Max-Age=0; Secure; Path=/; Domain=example.com"),
			},
			checks: []jarCheck{want("https://example.com/", "__Host-id=secret")},
		},
		{
			name: "__Host- with Domain from a subdomain: no past Expires deletion",
			steps: []jarStep{
				set("https://example.com/", "__Host-id=secret; Secure; Path=/"),
				set("https://evil.example.com/", "__Host-id=x; Expires="+httpDate(jarT0.Add(-time.Hour))+"; Secure; Path=/; Domain=example.com"),
			},
			checks: []jarCheck{want("https://example.com/", "__Host-id=secret")},
		},
		{
			name: "__Secure- without Secure: no deletion",
			steps: []jarStep{
				set("https://example.com/", "__Secure-id=secret; Secure"),
				set("https://example.com/", "__Secure-id=; Max-Age=0"),
			},
			checks: []jarCheck{want("https://example.com/", "__Secure-id=secret")},
		},
		{
			name: "a deletion that keeps the rules deletes",
			steps: []jarStep{
				set("https://example.com/", "__Host-id=secret; Secure; Path=/", "__Secure-s=1; Secure"),
				set("https://example.com/", "__Host-id=; Max-Age=0; Secure; Path=/", "__Secure-s=; Max-Age=0; Secure"),
			},
			checks: []jarCheck{want("https://example.com/", "")},
		},
	})
	// The same for an import (setCookies): MaxAge < 0 on a cookie that
	// breaks its prefix's rules deletes nothing.
	u := mustURL(t, "https://example.com/")
	var j jar
	j.setFromResponse(u, []string{"__Host-id=secret; Secure; Path=/", "__Secure-s=1; Secure"}, jarT0)
	j.setCookies(mustURL(t, "https://evil.example.com/"), []*http.Cookie{
		{Name: "__Host-id", Domain: ".example.com", Path: "/", Secure: true, MaxAge: -1},
		{Name: "__Secure-s", Domain: ".example.com", Path: "/", MaxAge: -1},
	}, jarT0)
	if got := string(j.appendCookieString(nil, u, jarT0)); got != "__Host-id=secret; __Secure-s=1" {
		t.Errorf("after imported deletions that break the prefixes' rules: %q", got)
	}
}

func TestJarExpiry(t *testing.T) {
	const u = "https://example.com"
	future := httpDate(jarT0.Add(time.Hour))
	past := httpDate(jarT0.Add(-time.Hour))
	runJarCases(t, []jarCase{
		{
			name:  "Max-Age",
			steps: []jarStep{set(u, "a=1; Max-Age=60")},
			checks: []jarCheck{
				wantAt(59*time.Second, u, "a=1"),
				wantAt(60*time.Second, u, ""),
			},
		},
		{
			name:   "Expires",
			steps:  []jarStep{set(u, "a=1; Expires="+future)},
			checks: []jarCheck{wantAt(59*time.Minute, u, "a=1"), wantAt(time.Hour, u, "")},
		},
		{
			name:   "Max-Age wins over a later Expires",
			steps:  []jarStep{set(u, "a=1; Max-Age=60; Expires="+future)},
			checks: []jarCheck{wantAt(30*time.Second, u, "a=1"), wantAt(2*time.Minute, u, "")},
		},
		{
			name:   "Max-Age wins over an earlier Expires",
			steps:  []jarStep{set(u, "a=1; Expires="+future+"; Max-Age=60")},
			checks: []jarCheck{wantAt(2*time.Minute, u, "")},
		},
		{
			name:   "Max-Age wins over a past Expires",
			steps:  []jarStep{set(u, "a=1; Expires="+past+"; Max-Age=60")},
			checks: []jarCheck{wantAt(30*time.Second, u, "a=1"), wantAt(61*time.Second, u, "")},
		},
		{
			name:  "malformed Max-Age ignored",
			steps: []jarStep{set(u, "a=1; Max-Age=abc; Expires="+future, "b=1; Max-Age=1e3", "c=1; Max-Age=", "d=1; Max-Age=-", "e=1; Max-Age=+5")},
			checks: []jarCheck{
				wantAt(30*time.Minute, u, "a=1; b=1; c=1; d=1; e=1"),
				wantAt(2*time.Hour, u, "b=1; c=1; d=1; e=1"),
			},
		},
		{
			name:   "malformed Expires ignored: session cookie",
			steps:  []jarStep{set(u, "a=1; Expires=tomorrow", "b=1; Expires=Thu, 31 Feb 2030 00:00:00 GMT")},
			checks: []jarCheck{wantAt(10*365*24*time.Hour, u, "a=1; b=1")},
		},
		{
			name:   "last Max-Age wins",
			steps:  []jarStep{set(u, "a=1; Max-Age=10; Max-Age=100", "b=1; Max-Age=100; Max-Age=x")},
			checks: []jarCheck{wantAt(50*time.Second, u, "a=1; b=1"), wantAt(100*time.Second, u, "")},
		},
		{
			name:   "huge Max-Age",
			steps:  []jarStep{set(u, "a=1; Max-Age=99999999999999999999999999")},
			checks: []jarCheck{wantAt(100*365*24*time.Hour, u, "a=1")},
		},
		{
			name:   "expired cookie never sent, fresh one set later is",
			steps:  []jarStep{set(u, "a=1; Max-Age=1"), setAt(5*time.Second, u, "b=1")},
			checks: []jarCheck{wantAt(5*time.Second, u, "b=1")},
		},
	})
}

func TestJarDeletion(t *testing.T) {
	const u = "https://example.com"
	past := httpDate(jarT0.Add(-time.Second))
	runJarCases(t, []jarCase{
		{
			name:   "Max-Age=0",
			steps:  []jarStep{set(u, "a=1", "b=1"), setAt(time.Second, u, "a=x; Max-Age=0")},
			checks: []jarCheck{wantAt(time.Second, u, "b=1")},
		},
		{
			name:   "negative Max-Age",
			steps:  []jarStep{set(u, "a=1"), set(u, "a=; Max-Age=-1")},
			checks: []jarCheck{want(u, "")},
		},
		{
			name:   "past Expires",
			steps:  []jarStep{set(u, "a=1"), set(u, "a=1; Expires="+past)},
			checks: []jarCheck{want(u, "")},
		},
		{
			name:   "Expires equal to now",
			steps:  []jarStep{set(u, "a=1"), set(u, "a=1; Expires="+httpDate(jarT0))},
			checks: []jarCheck{want(u, "")},
		},
		{
			name:   "deletes only the same domain and path",
			steps:  []jarStep{set(u, "a=1; Path=/p", "a=2; Domain=example.com"), set("https://www.example.com/x", "a=; Max-Age=0")},
			checks: []jarCheck{want(u+"/p", "a=1; a=2")},
		},
		{
			name:   "a host-only deletion removes the domain cookie of the same domain",
			steps:  []jarStep{set(u, "a=1; Path=/p", "a=2; Domain=example.com"), set(u+"/x", "a=; Max-Age=0")},
			checks: []jarCheck{want(u+"/p", "a=1")},
		},
		{
			name:   "deleting an unknown cookie",
			steps:  []jarStep{set(u, "a=1"), set(u, "b=1; Max-Age=0")},
			checks: []jarCheck{want(u, "a=1")},
		},
		{
			name:   "set and deleted by one response",
			steps:  []jarStep{set(u, "a=1", "a=1; Max-Age=0", "b=1")},
			checks: []jarCheck{want(u, "b=1")},
		},
	})
}

func TestJarOrdering(t *testing.T) {
	const u = "https://example.com"
	runJarCases(t, []jarCase{
		{
			name: "longer paths first",
			steps: []jarStep{
				set(u, "a=1; Path=/"),
				set(u, "b=2; Path=/x/y", "c=3; Path=/x"),
			},
			checks: []jarCheck{want(u+"/x/y/z", "b=2; c=3; a=1"), want(u+"/x", "c=3; a=1")},
		},
		{
			name:   "earlier creation first",
			steps:  []jarStep{set(u, "b=1"), setAt(time.Second, u, "a=1")},
			checks: []jarCheck{wantAt(time.Second, u, "b=1; a=1")},
		},
		{
			name:   "one response keeps its order",
			steps:  []jarStep{set(u, "z=1", "y=2", "x=3", "w=4")},
			checks: []jarCheck{want(u, "z=1; y=2; x=3; w=4")},
		},
		{
			name:   "clock going back: earlier creation still first",
			steps:  []jarStep{setAt(10*time.Second, u, "a=1"), set(u, "b=1")},
			checks: []jarCheck{wantAt(10*time.Second, u, "b=1; a=1")},
		},
		{
			name:   "replacement keeps its place",
			steps:  []jarStep{set(u, "a=1", "b=1"), setAt(time.Second, u, "a=2")},
			checks: []jarCheck{wantAt(time.Second, u, "a=2; b=1")},
		},
		{
			name:   "same name on two paths",
			steps:  []jarStep{set(u, "a=1; Path=/"), set(u, "a=2; Path=/x")},
			checks: []jarCheck{want(u+"/x", "a=2; a=1"), want(u, "a=1")},
		},
	})
}

func TestJarParsing(t *testing.T) {
	const u = "https://example.com"
	long := strings.Repeat("v", maxNameValueBytes-1)
	runJarCases(t, []jarCase{
		{
			name:   "no '=' dropped",
			steps:  []jarStep{set(u, "foo", "foo; Path=/", "a=1")},
			checks: []jarCheck{want(u, "a=1")},
		},
		{
			name:   "empty name dropped, empty value kept",
			steps:  []jarStep{set(u, "=1", " =2", "a=")},
			checks: []jarCheck{want(u, "a=")},
		},
		{
			name:   "whitespace trimmed, inner kept",
			steps:  []jarStep{set(u, " a = 1 ; Path = / ", "\tb\t=hello world\t;Secure")},
			checks: []jarCheck{want(u, "a=1; b=hello world")},
		},
		{
			name:   "control characters drop the line",
			steps:  []jarStep{set(u, "a=1\x00", "b=1; Path=/\x01", "c=x\ty", "d\te=1", "f=1\x7f", "g=1")},
			checks: []jarCheck{want(u, "g=1")},
		},
		{
			// The state document is JSON: such bytes would come back as
			// U+FFFD, and two names could become one.
			name:   "invalid UTF-8 drops the line",
			steps:  []jarStep{set(u, "a=\xff\xfe", "b\xff=1", "b\xfe=2", "c=é", "g=1")},
			checks: []jarCheck{want(u, "c=é; g=1")},
		},
		{
			name:   "quoted value kept verbatim",
			steps:  []jarStep{set(u, `a="x y"`, `b="`, `c=x"y`)},
			checks: []jarCheck{want(u, `a="x y"; b="; c=x"y`)},
		},
		{
			name:   "value with '=' and non-ASCII",
			steps:  []jarStep{set(u, "a=b=c==", "é=ü")},
			checks: []jarCheck{want(u, "a=b=c==; é=ü")},
		},
		{
			name:   "size limit",
			steps:  []jarStep{set(u, "a="+long, "bb="+long)},
			checks: []jarCheck{want(u, "a="+long)},
		},
		{
			name:   "attribute names ignore case, unknown ones ignored",
			steps:  []jarStep{set("https://www.example.com/", "a=1; SECURE; dOmAiN=example.com; MAX-AGE=10; Foo=bar; Partitioned; Priority=High; =x; ;")},
			checks: []jarCheck{want("https://example.com", "a=1"), want("http://example.com", ""), wantAt(10*time.Second, "https://example.com", "")},
		},
		{
			name:   "overlong Path value ignored",
			steps:  []jarStep{set(u+"/d/p", "a=1; Path=/"+strings.Repeat("x", maxAttrValueBytes))},
			checks: []jarCheck{want(u+"/d", "a=1"), want(u+"/", "")},
		},
	})
}

func TestParseSetCookieAttributes(t *testing.T) {
	tests := []struct {
		line string
		want parsedCookie
		ok   bool
	}{
		{"a=1", parsedCookie{name: "a", value: "1"}, true},
		{"a=1; HttpOnly; SameSite=lax", parsedCookie{name: "a", value: "1", httpOnly: true, sameSite: sameSiteLax}, true},
		{"a=1; SameSite=STRICT", parsedCookie{name: "a", value: "1", sameSite: sameSiteStrict}, true},
		{"a=1; SameSite=None; SameSite=bogus", parsedCookie{name: "a", value: "1"}, true},
		{"a=1; Domain=.Example.com; Path=/x", parsedCookie{name: "a", value: "1", domain: ".Example.com", hasDomain: true, path: "/x"}, true},
		{"a=1; Max-Age=-5", parsedCookie{name: "a", value: "1", maxAge: -1, hasMaxAge: true}, true},
		{"a=1; Max-Age=-0", parsedCookie{name: "a", value: "1", maxAge: 0, hasMaxAge: true}, true},
		{"a=1; Expires=Sun, 06 Nov 1994 08:49:37 GMT", parsedCookie{name: "a", value: "1", hasExpires: true, expires: time.Date(1994, 11, 6, 8, 49, 37, 0, time.UTC)}, true},
		{"a", parsedCookie{}, false},
		{"", parsedCookie{}, false},
		{"=", parsedCookie{}, false},
		{"a;b=1", parsedCookie{}, false},
	}
	for _, tt := range tests {
		got, ok := parseSetCookie(tt.line)
		if ok != tt.ok || (ok && !reflect.DeepEqual(got, tt.want)) {
			t.Errorf("parseSetCookie(%q) = %+v, %v; want %+v, %v", tt.line, got, ok, tt.want, tt.ok)
		}
	}
}

func TestParseCookieDate(t *testing.T) {
	d := func(y int, m time.Month, day, h, min, s int) time.Time {
		return time.Date(y, m, day, h, min, s, 0, time.UTC)
	}
	tests := []struct {
		in   string
		want time.Time // zero: not a date
	}{
		{"Wed, 21 Oct 2015 07:28:00 GMT", d(2015, 10, 21, 7, 28, 0)},
		{"Sunday, 06-Nov-94 08:49:37 GMT", d(1994, 11, 6, 8, 49, 37)},
		{"Sun Nov  6 08:49:37 1994", d(1994, 11, 6, 8, 49, 37)},
		{"Thu, 01-Jan-1970 00:00:01 GMT", d(1970, 1, 1, 0, 0, 1)},
		{"21 october 2015 7:8:9", d(2015, 10, 21, 7, 8, 9)},
		{"2015 Oct 21 07:28:00", d(2015, 10, 21, 7, 28, 0)}, // 2015 is too long for a day: a year
		{"Wed, 21 Oct 15 07:28:00 GMT", d(2015, 10, 21, 7, 28, 0)},
		{"Wed, 21 Oct 69 07:28:00 GMT", d(2069, 10, 21, 7, 28, 0)},
		{"Wed, 21 Oct 70 07:28:00 GMT", d(1970, 10, 21, 7, 28, 0)},
		{"Fri, 31 Dec 9999 23:59:59 GMT", d(9999, 12, 31, 23, 59, 59)},
		{"29 Feb 2024 00:00:00", d(2024, 2, 29, 0, 0, 0)},
		{"21st Oct 2015 07:28:00abc", d(2015, 10, 21, 7, 28, 0)},
		{"Wed, 21 Oct 2015", time.Time{}},        // no time
		{"Wed, Domain=example.com", time.Time{}}, // the contract's example
		{"29 Feb 2015 00:00:00", time.Time{}},    // no such day
		{"31 Apr 2015 00:00:00", time.Time{}},    // no such day
		{"32 Oct 2015 00:00:00", time.Time{}},    // day > 31
		{"0 Oct 2015 00:00:00", time.Time{}},     // day < 1
		{"21 Oct 1600 00:00:00", time.Time{}},    // year < 1601
		{"21 Oct 2015 24:00:00", time.Time{}},    // hour
		{"21 Oct 2015 23:60:00", time.Time{}},    // minute
		{"21 Oct 2015 23:59:60", time.Time{}},    // second
		{"21 Oct 2015 123:00:00", time.Time{}},   // 3-digit hour is no time
		{"21 Foo 2015 00:00:00", time.Time{}},    // no month
		{"21 Oct 20155 00:00:00", time.Time{}},   // 5-digit year
		{"", time.Time{}},
	}
	for _, tt := range tests {
		got, ok := parseCookieDate(tt.in)
		if ok != !tt.want.IsZero() || !got.Equal(tt.want) {
			t.Errorf("parseCookieDate(%q) = %v, %v; want %v", tt.in, got, ok, tt.want)
		}
	}
}

func TestJarReplacementKeepsCreation(t *testing.T) {
	u := mustURL(t, "https://example.com/")
	var j jar
	j.setFromResponse(u, []string{"a=1", "b=1"}, jarT0)
	j.setFromResponse(u, []string{"a=2; Secure; HttpOnly; SameSite=Strict; Max-Age=60"}, jarT0.Add(time.Minute))
	got := j.export(jarT0.Add(time.Minute))
	want := []Cookie{
		{Name: "a", Value: "2", Domain: "example.com", Path: "/", HostOnly: true, Secure: true, HTTPOnly: true,
			SameSite: "Strict", Expires: jarT0.Add(2 * time.Minute), Creation: jarT0},
		{Name: "b", Value: "1", Domain: "example.com", Path: "/", HostOnly: true, Creation: jarT0},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("export:\n got %+v\nwant %+v", got, want)
	}
	// A host-only and a domain cookie of the same name, domain and path are
	// the same cookie (RFC 6265 §5.3 step 11).
	j.setFromResponse(u, []string{"b=3; Domain=example.com"}, jarT0.Add(2*time.Minute))
	got = j.export(jarT0.Add(2 * time.Minute))
	if len(got) != 1 || got[0].Name != "b" || got[0].Value != "3" || got[0].HostOnly || !got[0].Creation.Equal(jarT0) {
		t.Fatalf("after domain replacement: %+v", got)
	}
}

func TestJarCookies(t *testing.T) {
	u := mustURL(t, "https://example.com/")
	var j jar
	j.setFromResponse(u, []string{`a="x y"`, "b=2", `c="`}, jarT0)
	got := j.cookies(u, jarT0)
	want := []*http.Cookie{
		{Name: "a", Value: "x y", Quoted: true},
		{Name: "b", Value: "2"},
		{Name: "c", Value: `"`},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("cookies: got %v, want %v", got, want)
	}
	if got := j.cookies(mustURL(t, "https://other.com/"), jarT0); got != nil {
		t.Fatalf("cookies for another host: %v", got)
	}
	if got := j.cookies(nil, jarT0); got != nil {
		t.Fatalf("cookies for nil URL: %v", got)
	}
	if got := len(j.export(jarT0)); got != 3 {
		t.Fatalf("len = %d, want 3", got)
	}
	if got := j.appendCookieString(nil, mustURL(t, "https://other.com/"), jarT0); got != nil {
		t.Fatalf("no match: %q", got)
	}
	if got := j.cookieString(u, jarT0); got != `a="x y"; b=2; c="` {
		t.Fatalf("cookieString: %q", got)
	}
	long := strings.Repeat("x", 2000)
	j.setFromResponse(u, []string{"d=" + long}, jarT0)
	if got := j.cookieString(u, jarT0); got != `a="x y"; b=2; c="; d=`+long {
		t.Fatalf("long cookieString: %.30q", got)
	}
	// appendCookieString appends to what is there.
	if got := string(j.appendCookieString([]byte("x=0; "), u, jarT0)); got != `x=0; a="x y"; b=2; c="; d=`+long {
		t.Fatalf("append: %q", got)
	}
}

func TestJarSetCookiesBrowserStyle(t *testing.T) {
	type check struct {
		at   time.Duration
		url  string
		want string
	}
	tests := []struct {
		name    string
		from    string // "" : nil URL
		cookies []*http.Cookie
		checks  []check
	}{
		{
			name:    "leading dot: domain cookie",
			from:    "https://www.example.com/",
			cookies: []*http.Cookie{{Name: "a", Value: "1", Domain: ".example.com"}},
			checks:  []check{{0, "https://example.com", "a=1"}, {0, "https://x.example.com", "a=1"}},
		},
		{
			name:    "no dot: host-only for that domain",
			from:    "https://www.example.com/",
			cookies: []*http.Cookie{{Name: "a", Value: "1", Domain: "example.com"}},
			checks:  []check{{0, "https://example.com", "a=1"}, {0, "https://www.example.com", ""}},
		},
		{
			name:    "no Domain: host-only for the URL's host",
			from:    "https://www.example.com/a/b",
			cookies: []*http.Cookie{{Name: "a", Value: "1"}},
			checks:  []check{{0, "https://www.example.com/", "a=1"}, {0, "https://x.www.example.com/", ""}},
		},
		{
			name: "zero, -1 or past Expires: session cookie",
			from: "https://example.com",
			cookies: []*http.Cookie{
				{Name: "a", Value: "1"},
				{Name: "b", Value: "1", Expires: time.Unix(-1, 0)},
				{Name: "c", Value: "1", Expires: jarT0.Add(-time.Hour)},
				{Name: "d", Value: "1", Expires: jarT0.Add(time.Hour)},
			},
			checks: []check{{59 * time.Minute, "https://example.com", "a=1; b=1; c=1; d=1"}, {100 * 24 * time.Hour, "https://example.com", "a=1; b=1; c=1"}},
		},
		{
			name: "MaxAge",
			from: "https://example.com",
			cookies: []*http.Cookie{
				{Name: "a", Value: "1", MaxAge: 60, Expires: jarT0.Add(time.Hour)},
				{Name: "b", Value: "1"},
				{Name: "b", Value: "1", MaxAge: -1},
			},
			checks: []check{{30 * time.Second, "https://example.com", "a=1"}, {time.Minute, "https://example.com", ""}},
		},
		{
			name:    "empty or relative Path: /",
			from:    "https://example.com/a/b",
			cookies: []*http.Cookie{{Name: "a", Value: "1"}, {Name: "b", Value: "1", Path: "x"}, {Name: "c", Value: "1", Path: "/a"}},
			checks:  []check{{0, "https://example.com/", "a=1; b=1"}, {0, "https://example.com/a", "c=1; a=1; b=1"}},
		},
		{
			name:    "Secure accepted from http, sent over https only",
			from:    "http://example.com",
			cookies: []*http.Cookie{{Name: "a", Value: "1", Secure: true}},
			checks:  []check{{0, "https://example.com", "a=1"}, {0, "http://example.com", ""}},
		},
		{
			name:    "Quoted keeps quotes",
			from:    "https://example.com",
			cookies: []*http.Cookie{{Name: "a", Value: "x y", Quoted: true}},
			checks:  []check{{0, "https://example.com", `a="x y"`}},
		},
		{
			name: "invalid dropped",
			from: "https://www.example.com",
			cookies: []*http.Cookie{
				nil,
				{Name: "", Value: "1"},
				{Name: "a;b", Value: "1"},
				{Name: "c", Value: "1;2"},
				{Name: "d", Value: "1\n"},
				{Name: "e", Value: "1", Domain: ".other.com"},
				{Name: "f", Value: "1", Domain: ".com"},
				{Name: "g", Value: "1", Domain: "x.www.example.com"},
				{Name: "h", Value: "1", Domain: "bad domain"},
				{Name: "__Host-i", Value: "1", Secure: true, Domain: ".example.com"},
				{Name: "ok", Value: "1"},
			},
			checks: []check{{0, "https://www.example.com", "ok=1"}, {0, "https://x.www.example.com", ""}},
		},
		{
			name: "nil URL: cookies carry their domain",
			cookies: []*http.Cookie{
				{Name: "a", Value: "1", Domain: ".example.com"},
				{Name: "b", Value: "1", Domain: "example.org"},
				{Name: "c", Value: "1"},
				{Name: "d", Value: "1", Domain: ".co.uk"},
			},
			checks: []check{{0, "https://www.example.com", "a=1"}, {0, "https://example.org", "b=1"}, {0, "https://x.example.org", ""}, {0, "https://x.co.uk", ""}},
		},
		{
			name:    "IP host",
			from:    "http://127.0.0.1:8080/",
			cookies: []*http.Cookie{{Name: "a", Value: "1"}, {Name: "b", Value: "1", Domain: ".127.0.0.1"}, {Name: "c", Value: "1", Domain: ".0.0.1"}},
			checks:  []check{{0, "http://127.0.0.1/", "a=1; b=1"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var u *url.URL
			if tt.from != "" {
				u = mustURL(t, tt.from)
			}
			var j jar
			j.setCookies(u, tt.cookies, jarT0)
			for _, c := range tt.checks {
				got := string(j.appendCookieString(nil, mustURL(t, c.url), jarT0.Add(c.at)))
				if got != c.want {
					t.Errorf("at +%v for %s: got %q, want %q", c.at, c.url, got, c.want)
				}
			}
		})
	}
}

func TestJarSetCookiesSameSiteAndFlags(t *testing.T) {
	var j jar
	j.setCookies(mustURL(t, "https://example.com"), []*http.Cookie{
		{Name: "a", Value: "1", SameSite: http.SameSiteLaxMode, HttpOnly: true},
		{Name: "b", Value: "1", SameSite: http.SameSiteStrictMode},
		{Name: "c", Value: "1", SameSite: http.SameSiteNoneMode, Secure: true},
		{Name: "d", Value: "1", SameSite: http.SameSiteDefaultMode},
	}, jarT0)
	var got []string
	for _, c := range j.export(jarT0) {
		got = append(got, fmt.Sprintf("%s:%s:%v:%v", c.Name, c.SameSite, c.HTTPOnly, c.Secure))
	}
	want := []string{"a:Lax:true:false", "b:Strict:false:false", "c:None:false:true", "d::false:false"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

func TestJarExportLoadRoundTrip(t *testing.T) {
	var j jar
	j.setFromResponse(mustURL(t, "https://www.example.com/a/b"), []string{
		"a=1; Domain=example.com; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age=3600",
		`b="q v"`,
		"c=3; Path=/a/b/c; Expires=" + httpDate(jarT0.Add(48*time.Hour)),
		"gone=1; Max-Age=10",
	}, jarT0)
	j.setFromResponse(mustURL(t, "http://127.0.0.1:9/"), []string{"ip=1"}, jarT0.Add(time.Second))
	now := jarT0.Add(20 * time.Second) // "gone" has expired
	exported := j.export(now)
	if len(exported) != 4 {
		t.Fatalf("exported %d cookies, want 4: %+v", len(exported), exported)
	}
	data, err := json.Marshal(exported)
	if err != nil {
		t.Fatal(err)
	}
	var decoded []Cookie
	if err := json.Unmarshal(data, &decoded); err != nil {
		t.Fatal(err)
	}
	var k jar
	k.setFromResponse(mustURL(t, "https://other.org"), []string{"old=1"}, jarT0)
	if err := k.load(decoded, now); err != nil {
		t.Fatalf("load: %v", err)
	}
	if got := k.export(now); !reflect.DeepEqual(got, exported) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", got, exported)
	}
	for _, s := range []string{"https://www.example.com/a/b/c/d", "https://example.com/", "http://www.example.com/a/x", "http://127.0.0.1/", "https://other.org/"} {
		u := mustURL(t, s)
		if got, want := string(k.appendCookieString(nil, u, now)), string(j.appendCookieString(nil, u, now)); got != want {
			t.Errorf("%s: loaded %q, original %q", s, got, want)
		}
	}
	// A cookie set after a load comes after the loaded ones of its path.
	k.setFromResponse(mustURL(t, "https://www.example.com/"), []string{"z=1"}, jarT0)
	if got, want := string(k.appendCookieString(nil, mustURL(t, "https://www.example.com/"), now)), "a=1; z=1"; got != want {
		t.Errorf("after load and set: %q, want %q", got, want)
	}
	// Expired cookies are skipped on load.
	if err := k.load(decoded, jarT0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if got := len(k.export(jarT0.Add(time.Hour))); got != 3 {
		t.Errorf("len after late load = %d, want 3", got)
	}
	// The JSON field names are those of the persisted state.
	if !strings.Contains(string(data), `"hostOnly":true`) || !strings.Contains(string(data), `"sameSite":"Lax"`) || !strings.Contains(string(data), `"creation":"2026-11-27T10:00:00Z"`) {
		t.Errorf("JSON: %s", data)
	}
	var sess []map[string]any
	if err := json.Unmarshal(data, &sess); err != nil {
		t.Fatal(err)
	}
	for _, c := range sess {
		_, hasExpires := c["expires"]
		if (c["name"] == "b" || c["name"] == "ip") == hasExpires {
			t.Errorf("session cookie %v: expires present %v", c["name"], hasExpires)
		}
	}
}

func TestJarLoadLenient(t *testing.T) {
	var j jar
	err := j.load([]Cookie{
		{Name: "a", Value: "1", Domain: ".Example.COM"},
		{Name: "b", Value: "2", Domain: "example.com", HostOnly: true, SameSite: "lax"},
		{Name: "a", Value: "3", Domain: "example.com"}, // duplicate: later wins
	}, jarT0)
	if err != nil {
		t.Fatal(err)
	}
	got := j.export(jarT0)
	want := []Cookie{
		{Name: "a", Value: "3", Domain: "example.com", Path: "/", Creation: jarT0},
		{Name: "b", Value: "2", Domain: "example.com", Path: "/", HostOnly: true, SameSite: "Lax", Creation: jarT0},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v\nwant %+v", got, want)
	}
	if got := string(j.appendCookieString(nil, mustURL(t, "https://www.example.com"), jarT0)); got != "a=3" {
		t.Fatalf("cookie string %q", got)
	}
	if err := j.load(nil, jarT0); err != nil || len(j.export(jarT0)) != 0 || j.entries != nil {
		t.Fatalf("load(nil): %v, len %d", err, len(j.export(jarT0)))
	}
}

func TestJarLoadErrors(t *testing.T) {
	ok := Cookie{Name: "ok", Value: "1", Domain: "example.com", Path: "/", HostOnly: true}
	tests := []struct {
		name string
		c    Cookie
	}{
		{"empty name", Cookie{Name: "", Value: "1", Domain: "example.com"}},
		{"semicolon in name", Cookie{Name: "a;b", Value: "1", Domain: "example.com"}},
		{"equals in name", Cookie{Name: "a=b", Value: "1", Domain: "example.com"}},
		{"semicolon in value", Cookie{Name: "bad-value", Value: "1;2", Domain: "example.com"}},
		{"newline in value", Cookie{Name: "nl", Value: "1\n2", Domain: "example.com"}},
		{"empty domain", Cookie{Name: "nodomain", Value: "1"}},
		{"space in domain", Cookie{Name: "sp", Value: "1", Domain: "exa mple.com"}},
		{"double dot domain", Cookie{Name: "dd", Value: "1", Domain: "..example.com"}},
		{"trailing dot domain", Cookie{Name: "td", Value: "1", Domain: "example.com."}},
		{"relative path", Cookie{Name: "rp", Value: "1", Domain: "example.com", Path: "x"}},
		{"bad sameSite", Cookie{Name: "ss", Value: "1", Domain: "example.com", SameSite: "Sometimes"}},
		{"domain cookie on public suffix", Cookie{Name: "ps", Value: "1", Domain: "co.uk"}},
		{"domain cookie on IP", Cookie{Name: "ip", Value: "1", Domain: "127.0.0.1"}},
		{"name and value over 4096 bytes", Cookie{Name: "big", Value: strings.Repeat("v", maxNameValueBytes-2), Domain: "example.com"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var j jar
			if err := j.load([]Cookie{ok}, jarT0); err != nil {
				t.Fatal(err)
			}
			err := j.load([]Cookie{ok, tt.c}, jarT0)
			if !errors.Is(err, ErrInvalidCookie) {
				t.Fatalf("load: %v, want ErrInvalidCookie", err)
			}
			if !strings.Contains(err.Error(), fmt.Sprintf("%q", tt.c.Name)) {
				t.Errorf("error %q does not name cookie %q", err, tt.c.Name)
			}
			if got := len(j.export(jarT0)); got != 1 {
				t.Errorf("jar changed by a failed load: len %d", got)
			}
		})
	}
	var j jar
	err := j.load([]Cookie{{Name: "x"}, ok, {Name: "", Domain: "a.com"}}, jarT0)
	if err == nil || !strings.Contains(err.Error(), `cookie 0 "x"`) || !strings.Contains(err.Error(), `cookie 2 ""`) {
		t.Fatalf("every invalid cookie is reported: %v", err)
	}
}

func TestJarLimits(t *testing.T) {
	u := mustURL(t, "https://example.com/")
	var j jar
	for i := range MaxCookiesPerDomain + 1 {
		j.setFromResponse(u, []string{fmt.Sprintf("c%d=1", i)}, jarT0.Add(time.Duration(i)*time.Second))
	}
	now := jarT0.Add(time.Hour)
	if got := len(j.export(now)); got != MaxCookiesPerDomain {
		t.Fatalf("len = %d, want %d", got, MaxCookiesPerDomain)
	}
	s := string(j.appendCookieString(nil, u, now))
	if strings.HasPrefix(s, "c0=") || !strings.HasPrefix(s, "c1=1; ") || !strings.HasSuffix(s, fmt.Sprintf("; c%d=1", MaxCookiesPerDomain)) {
		t.Fatalf("oldest not evicted: %.40q...", s)
	}
	// Expired cookies are dropped before anything is evicted.
	var k jar
	k.setFromResponse(u, []string{"keep=1"}, jarT0)
	for i := range MaxCookiesPerDomain - 1 {
		k.setFromResponse(u, []string{fmt.Sprintf("t%d=1; Max-Age=1", i)}, jarT0)
	}
	k.setFromResponse(u, []string{"new=1"}, jarT0.Add(time.Minute))
	if got := string(k.appendCookieString(nil, u, jarT0.Add(time.Minute))); got != "keep=1; new=1" {
		t.Fatalf("after expiry: %q", got)
	}
	// Cookies without Secure go first: responses over http cannot push
	// a Secure cookie out, however many they set.
	var sj jar
	sj.setFromResponse(u, []string{"sid=secret; Secure"}, jarT0)
	for i := range MaxCookiesPerDomain + 20 {
		sj.setFromResponse(mustURL(t, "http://example.com/"), []string{fmt.Sprintf("junk%d=x", i)}, jarT0.Add(time.Duration(i+1)*time.Second))
	}
	if got := string(sj.appendCookieString(nil, u, now)); !strings.HasPrefix(got, "sid=secret; ") || strings.Contains(got, "junk20=") || !strings.Contains(got, "junk21=") {
		t.Fatalf("after %d cookies over http: %.60q...; want sid kept and junk0-20 evicted", MaxCookiesPerDomain+20, got)
	}
	// The whole jar is bounded too.
	var m jar
	for i := range MaxCookiesPerJar + 1 {
		m.setFromResponse(mustURL(t, fmt.Sprintf("https://h%d.example/", i)), []string{"a=1"}, jarT0.Add(time.Duration(i)*time.Millisecond))
	}
	if got := len(m.export(now)); got != MaxCookiesPerJar {
		t.Fatalf("jar len = %d, want %d", got, MaxCookiesPerJar)
	}
	if got := string(m.appendCookieString(nil, mustURL(t, "https://h0.example/"), now)); got != "" {
		t.Fatalf("oldest of the jar not evicted: %q", got)
	}
}

// TestJarLoadBounds: persisted cookies past the jar's bounds (a document
// edited by hand, a Redis session two processes added to at once) load
// as if set one by one: the jar keeps MaxCookiesPerDomain for a domain and
// MaxCookiesPerJar in all, leaving out those it would have evicted
// (without Secure first, then the oldest).
func TestJarLoadBounds(t *testing.T) {
	cookie := func(i int, domain string, secure bool) Cookie {
		return Cookie{Name: fmt.Sprintf("c%d", i), Value: "v", Domain: domain, Path: "/", HostOnly: true,
			Secure: secure, Creation: jarT0.Add(time.Duration(i) * time.Second)}
	}
	tests := []struct {
		name    string
		cookies func() []Cookie
		want    map[string]int // cookies kept per domain
		kept    []string       // some of the names kept
		dropped []string       // some of the names left out
	}{
		{
			name: "one domain",
			cookies: func() []Cookie {
				var cs []Cookie
				for i := range MaxCookiesPerJar + 1000 {
					cs = append(cs, cookie(i, "example.com", i == 0))
				}
				return cs
			},
			want:    map[string]int{"example.com": MaxCookiesPerDomain},
			kept:    []string{"c0", fmt.Sprintf("c%d", MaxCookiesPerJar+999)},
			dropped: []string{"c1", fmt.Sprintf("c%d", MaxCookiesPerJar+1000-MaxCookiesPerDomain)},
		},
		{
			name: "the whole jar",
			cookies: func() []Cookie {
				var cs []Cookie
				for i := range MaxCookiesPerJar + 100 {
					cs = append(cs, cookie(i, fmt.Sprintf("h%d.example", i%100), false))
				}
				return cs
			},
			want:    map[string]int{"h0.example": MaxCookiesPerJar / 100, "h99.example": MaxCookiesPerJar / 100},
			kept:    []string{"c100", fmt.Sprintf("c%d", MaxCookiesPerJar+99)},
			dropped: []string{"c0", "c99"},
		},
		{
			name: "within the bounds",
			cookies: func() []Cookie {
				var cs []Cookie
				for i := range MaxCookiesPerDomain {
					cs = append(cs, cookie(i, "example.com", false))
				}
				return cs
			},
			want: map[string]int{"example.com": MaxCookiesPerDomain},
			kept: []string{"c0", fmt.Sprintf("c%d", MaxCookiesPerDomain-1)},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var j jar
			if err := j.load(tt.cookies(), jarT0); err != nil {
				t.Fatal(err)
			}
			got := j.export(jarT0)
			if len(got) > MaxCookiesPerJar {
				t.Fatalf("loaded %d cookies, bound %d", len(got), MaxCookiesPerJar)
			}
			perDomain, names := map[string]int{}, map[string]bool{}
			for _, c := range got {
				perDomain[c.Domain]++
				names[c.Name] = true
			}
			for d, n := range perDomain {
				if n > MaxCookiesPerDomain {
					t.Errorf("%d cookies loaded for %s, bound %d", n, d, MaxCookiesPerDomain)
				}
			}
			for d, n := range tt.want {
				if perDomain[d] != n {
					t.Errorf("%s: %d cookies loaded, want %d", d, perDomain[d], n)
				}
			}
			for _, n := range tt.kept {
				if !names[n] {
					t.Errorf("%s left out", n)
				}
			}
			for _, n := range tt.dropped {
				if names[n] {
					t.Errorf("%s kept, want it left out", n)
				}
			}
			// What was loaded survives an export and a load unchanged.
			var k jar
			if err := k.load(got, jarT0); err != nil || !reflect.DeepEqual(k.export(jarT0), got) {
				t.Errorf("reload: %v, changed %v", err, !reflect.DeepEqual(k.export(jarT0), got))
			}
		})
	}
}

func TestJarZeroValue(t *testing.T) {
	var j jar
	u := mustURL(t, "https://example.com/")
	if got := j.appendCookieString(nil, u, jarT0); got != nil {
		t.Fatalf("empty jar: %q", got)
	}
	if j.export(jarT0) != nil || j.cookies(u, jarT0) != nil || len(j.export(jarT0)) != 0 {
		t.Fatal("empty jar not empty")
	}
	j.setFromResponse(u, []string{"a=1; Max-Age=1"}, jarT0)
	j.setFromResponse(nil, []string{"a=1"}, jarT0)
	j.setCookies(nil, []*http.Cookie{{Name: "a", Value: "1"}}, jarT0)
	if got := len(j.export(jarT0)); got != 1 {
		t.Fatalf("len = %d", got)
	}
	// Once everything expired and was looked at, the jar holds no memory.
	if got := j.appendCookieString(nil, u, jarT0.Add(time.Second)); len(got) != 0 || j.entries != nil {
		t.Fatalf("expired cookies kept: %q, %d entries", got, len(j.entries))
	}
}

func TestJarConcurrent(t *testing.T) {
	var j jar
	var wg sync.WaitGroup
	const n = 50
	for g := range 4 {
		wg.Go(func() {
			u := mustURL(t, fmt.Sprintf("https://h%d.example.com/", g))
			for i := range n {
				j.setFromResponse(u, []string{fmt.Sprintf("c%d=%d; Domain=example.com", i%10, g)}, jarT0)
				j.appendCookieString(nil, u, jarT0)
				j.cookies(u, jarT0)
				j.export(jarT0)
			}
		})
	}
	wg.Wait()
	if got := len(j.export(jarT0)); got != 10 {
		t.Fatalf("len = %d, want 10 (same names replace each other)", got)
	}
}

// TestJarSameCookieAgain: a server that sets the same cookie on every
// response keeps one entry, its creation time, and its latest expiry, and
// costs the jar no allocation.
func TestJarSameCookieAgain(t *testing.T) {
	var j jar
	u, _ := url.Parse("https://www.example.com/a")
	t0 := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	j.setFromResponse(u, []string{"sid=1; Path=/; Max-Age=60"}, t0)
	j.setFromResponse(u, []string{"sid=1; Path=/; Max-Age=600"}, t0.Add(time.Minute/2))
	got := j.export(t0.Add(time.Minute))
	if len(got) != 1 || !got[0].Creation.Equal(t0) || !got[0].Expires.Equal(t0.Add(time.Minute/2+600*time.Second)) {
		t.Fatalf("after the same cookie again: %+v", got)
	}
	lines := []string{"sid=1; Path=/; Max-Age=600"}
	if n := testing.AllocsPerRun(100, func() { j.setFromResponse(u, lines, t0) }); n != 0 {
		t.Errorf("setting an unchanged cookie again allocates %v times", n)
	}
	j.setFromResponse(u, []string{"sid=2; Path=/"}, t0.Add(time.Minute))
	if got := j.export(t0.Add(time.Minute)); len(got) != 1 || got[0].Value != "2" || !got[0].Creation.Equal(t0) {
		t.Errorf("a new value did not replace the cookie, keeping its creation: %+v", got)
	}
}
