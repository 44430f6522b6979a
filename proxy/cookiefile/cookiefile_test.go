package cookiefile

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/sessionproxy/sessionproxy/proxy/proxytest"
	"github.com/sessionproxy/sessionproxy/sessionpool"
)

// cookieTestNow is the clock of the pools of these tests.
var cookieTestNow = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)

// cookieTestPool opens a pool without a store on cookieTestNow.
func cookieTestPool(tb testing.TB) *sessionpool.Pool {
	tb.Helper()
	p, err := sessionpool.Open(context.Background(), sessionpool.Options{Now: func() time.Time { return cookieTestNow }})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { p.Teardown(context.Background()) })
	return p
}

// exportSample is three cookies that between them use every field.
var exportSample = []sessionpool.Cookie{
	{Name: "sid", Value: "abc", Domain: "example.com", Path: "/", Secure: true, HTTPOnly: true, SameSite: "Strict",
		Expires: time.Date(2030, 1, 2, 3, 4, 5, 250_000_000, time.UTC), Creation: cookieTestNow},
	{Name: "pref", Value: `"q v"`, Domain: "www.example.com", Path: "/app", HostOnly: true, Creation: cookieTestNow},
	{Name: "ip", Value: "1", Domain: "127.0.0.1", Path: "/", HostOnly: true, Secure: true, SameSite: "None",
		Expires: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC), Creation: cookieTestNow},
}

func TestCookieFormatExport(t *testing.T) {
	for _, tt := range []struct {
		name   string
		encode func([]sessionpool.Cookie) []byte
		in     []sessionpool.Cookie
		want   string
	}{
		{"netscape", encodeNetscape, exportSample, NetscapeHeader + "\n" +
			"# Exported by sessionproxy. Fields: domain, include subdomains, path, secure, expiry, name, value.\n\n" +
			"#HttpOnly_.example.com\tTRUE\t/\tTRUE\t1893553446\tsid\tabc\n" + // expiry rounded up
			"www.example.com\tFALSE\t/app\tFALSE\t0\tpref\t\"q v\"\n" +
			"127.0.0.1\tFALSE\t/\tTRUE\t1893553445\tip\t1\n"},
		{"netscape empty", encodeNetscape, nil, NetscapeHeader + "\n" +
			"# Exported by sessionproxy. Fields: domain, include subdomains, path, secure, expiry, name, value.\n\n"},
		{"playwright", encodePlaywright, exportSample, `{
  "cookies": [
    {
      "name": "sid",
      "value": "abc",
      "domain": ".example.com",
      "path": "/",
      "expires": 1893553445.25,
      "httpOnly": true,
      "secure": true,
      "sameSite": "Strict"
    },
    {
      "name": "pref",
      "value": "\"q v\"",
      "domain": "www.example.com",
      "path": "/app",
      "expires": -1,
      "httpOnly": false,
      "secure": false,
      "sameSite": "Lax"
    },
    {
      "name": "ip",
      "value": "1",
      "domain": "127.0.0.1",
      "path": "/",
      "expires": 1893553445,
      "httpOnly": false,
      "secure": true,
      "sameSite": "None"
    }
  ],
  "origins": []
}
`},
		{"playwright empty", encodePlaywright, nil, "{\n  \"cookies\": [],\n  \"origins\": []\n}\n"},
		{"json", encodeCookieJSON, exportSample[1:2], `[
  {
    "name": "pref",
    "value": "\"q v\"",
    "domain": "www.example.com",
    "path": "/app",
    "hostOnly": true,
    "secure": false,
    "httpOnly": false,
    "creation": "2026-06-01T12:00:00Z"
  }
]
`},
		{"json empty", encodeCookieJSON, nil, "[]\n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := string(tt.encode(tt.in)); got != tt.want {
				t.Errorf("got:\n%s\nwant:\n%s", got, tt.want)
			}
		})
	}
}

// TestCookieFormatErrorsHideValues: a cookie value is a secret and no
// error shows it (the admin API answers 400 with the error), not even
// when a "name=value" is pasted whole where the name goes.
func TestCookieFormatErrorsHideValues(t *testing.T) {
	const secret = "S3CR3T-TOKEN-4242"
	for _, tt := range []struct {
		name    string
		format  Format
		in      string
		wantErr string
	}{
		// Six fields: the value is empty, the name holds "name=value".
		{"netscape name=value", Netscape, "example.com\tFALSE\t/\tFALSE\t0\tsid=" + secret + "\n", `line 1: name "sid=…" holds '='`},
		{"netscape name=value and a value", Netscape, "example.com\tFALSE\t/\tFALSE\t0\tsid=" + secret + "\tx;y\n", `name "sid=…" holds '='`},
		{"netscape name=value with a control character", Netscape, "example.com\tFALSE\t/\tFALSE\t0\tsid=" + secret + "\x01\n", `name "sid=…" holds '='`},
		{"json name=value", JSON, `[{"name":"sid=` + secret + `","domain":"example.com"}]`, `line 1: name "sid=…" holds '='`},
		{"json name=value, bad expires", JSON, `[{"name":"sid=` + secret + `","domain":"example.com","expires":"soon"}]`,
			`cookie "sid=…": expires must be an RFC 3339 time`},
		{"playwright name=value", Playwright, `{"cookies":[{"name":"sid=` + secret + `","domain":"example.com"}]}`, `name "sid=…" holds '='`},
		{"playwright name=value, bad expires", Playwright, `{"cookies":[{"name":"sid=` + secret + `","domain":"example.com","expires":"soon"}]}`,
			`cookie "sid=…": expires must be Unix seconds`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse(tt.format, []byte(tt.in))
			if err == nil {
				t.Fatal("accepted")
			}
			if strings.Contains(err.Error(), secret) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error %q: want one with %q and without the value", err, tt.wantErr)
			}
		})
	}
}

// parsed is what a parser returned, for comparison in tables.
func parsed(cs []Cookie) string {
	var b strings.Builder
	for _, c := range cs {
		fmt.Fprintf(&b, "%d:%s=%s dom=%s path=%s host=%t sec=%t http=%t ss=%s exp=%s\n", c.Line, c.Name, c.Value,
			c.Domain, c.Path, c.HostOnly, c.Secure, c.HTTPOnly, c.SameSite, expString(c.Expires))
	}
	return b.String()
}

func expString(t time.Time) string {
	if t.IsZero() {
		return "session"
	}
	return t.Format(time.RFC3339Nano)
}

// parseCase is one row of the parser tables: want is parsed() of the
// result, or wantErr the substrings the error must hold.
type parseCase struct {
	name    string
	in      string
	want    string
	wantErr []string
}

func runParseCases(t *testing.T, parse func([]byte) ([]Cookie, error), cases []parseCase) {
	t.Helper()
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			cs, err := parse([]byte(tt.in))
			if tt.wantErr != nil {
				if err == nil {
					t.Fatalf("accepted, want an error with %q; got\n%s", tt.wantErr, parsed(cs))
				}
				if !errors.Is(err, ErrBadCookies) {
					t.Errorf("error %v does not wrap ErrBadCookies", err)
				}
				for _, w := range tt.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q lacks %q", err, w)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("error: %v", err)
			}
			if got := parsed(cs); got != tt.want {
				t.Errorf("got:\n%swant:\n%s", got, tt.want)
			}
		})
	}
}

// --- fuzzing ---

// cookieFormats maps each format to its parser and encoder.
var cookieFormats = map[Format]struct {
	parse  func([]byte) ([]Cookie, error)
	encode func([]sessionpool.Cookie) []byte
}{
	Netscape:   {parseNetscape, encodeNetscape},
	Playwright: {parsePlaywright, encodePlaywright},
	JSON:       {parseCookieJSON, encodeCookieJSON},
}

// checkAccepted asserts what every parser promises of the cookies it
// accepts, then that encoding them and parsing again gives them back, and
// that the ones the jar check lets through are stored by a session exactly.
func checkAccepted(t *testing.T, p *sessionpool.Pool, format Format, cs []Cookie) {
	t.Helper()
	prevLine := 0
	for _, c := range cs {
		switch {
		case c.Name == "" || strings.ContainsAny(c.Name, "=;\x7f") || hasControl(c.Name) || !utf8.ValidString(c.Name):
			t.Fatalf("accepted a bad name %q", c.Name)
		case strings.ContainsAny(c.Value, ";\x7f") || hasControl(c.Value) || !utf8.ValidString(c.Value):
			t.Fatalf("accepted a bad value %q", c.Value)
		case c.Domain == "" || strings.HasPrefix(c.Domain, ".") || strings.HasSuffix(c.Domain, ".") || strings.ContainsAny(c.Domain, " \t;,/"):
			t.Fatalf("accepted a bad domain %q", c.Domain)
		case !strings.HasPrefix(c.Path, "/") || hasControl(c.Path) || strings.Contains(c.Path, ";"):
			t.Fatalf("accepted a bad path %q", c.Path)
		case !slices.Contains([]string{"", "Lax", "Strict", "None"}, c.SameSite):
			t.Fatalf("accepted sameSite %q", c.SameSite)
		case !c.Expires.IsZero() && (c.Expires.Year() > 9999 || c.Expires.Location() != time.UTC):
			t.Fatalf("accepted expiry %v", c.Expires)
		case !c.Creation.IsZero():
			t.Fatalf("creation %v kept from the input", c.Creation)
		case c.Line < 1 || c.Line < prevLine:
			t.Fatalf("line %d after line %d", c.Line, prevLine)
		}
		prevLine = c.Line
	}

	// Encode and parse again: the same cookies (the formats' own losses
	// aside: netscape has no sameSite, playwright writes "Lax" for none).
	f := cookieFormats[format]
	plain := make([]sessionpool.Cookie, len(cs))
	for i, c := range cs {
		plain[i] = c.Cookie
	}
	again, err := f.parse(f.encode(plain))
	if err != nil {
		t.Fatalf("own export does not parse: %v\n%s", err, f.encode(plain))
	}
	if len(again) != len(cs) {
		t.Fatalf("own export gives %d cookies, want %d", len(again), len(cs))
	}
	for i := range cs {
		want := cs[i].Cookie
		switch {
		case format == Netscape:
			want.SameSite = ""
		case format == Playwright && want.SameSite == "":
			want.SameSite = "Lax"
		}
		if !proxytest.SameCookie(again[i].Cookie, want) {
			t.Fatalf("round trip of cookie %d:\n got %+v\nwant %+v", i, again[i].Cookie, want)
		}
	}

	// The jar check either refuses or lets through cookies that a session
	// then holds exactly (the last of duplicates winning).
	live, _ := Live(cs, cookieTestNow)
	checked, err := CheckWithJar(p, live)
	if err != nil {
		if !errors.Is(err, ErrBadCookies) || !strings.Contains(err.Error(), "line ") {
			t.Fatalf("jar check error without a line: %v", err)
		}
		return
	}
	sess, err := p.NewSession(sessionpool.SessionOptions{})
	if err != nil {
		t.Fatal(err)
	}
	Apply(sess, checked)
	want := map[string]sessionpool.Cookie{}
	for _, c := range checked {
		want[c.Name+"\x00"+c.Domain+"\x00"+c.Path] = c.Cookie
	}
	got := sess.State().Cookies
	if len(got) != len(want) {
		t.Fatalf("session holds %d cookies, want %d", len(got), len(want))
	}
	for _, g := range got {
		w, ok := want[g.Name+"\x00"+g.Domain+"\x00"+g.Path]
		if !ok || !proxytest.SameCookie(g, w) {
			t.Fatalf("session holds %+v, want %+v", g, w)
		}
	}
}

func hasControl(s string) bool {
	return strings.IndexFunc(s, func(r rune) bool { return r < 0x20 }) >= 0
}

// sameCookie compares every field but Creation.
func fuzzCookieFormat(f *testing.F, format Format, seeds ...string) {
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Add(encodeNetscape(exportSample))
	f.Add(encodePlaywright(exportSample))
	f.Add(encodeCookieJSON(exportSample))
	p := cookieTestPool(f)
	parse := cookieFormats[format].parse
	f.Fuzz(func(t *testing.T, data []byte) {
		cs, err := parse(data)
		if err != nil {
			if !errors.Is(err, ErrBadCookies) || !strings.Contains(err.Error(), "line ") {
				t.Fatalf("error without ErrBadCookies or a line: %v", err)
			}
			return
		}
		checkAccepted(t, p, format, cs)
	})
}
