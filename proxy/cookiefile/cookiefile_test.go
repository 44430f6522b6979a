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

func TestNetscapeParse(t *testing.T) {
	runParseCases(t, parseNetscape, []parseCase{
		{name: "curl file", in: "# Netscape HTTP Cookie File\n# comment\n\n" +
			".example.com\tTRUE\t/\tFALSE\t1893553445\ta\t1\r\n" +
			"#HttpOnly_www.example.com\tFALSE\t/p\tTRUE\t0\tb\tx y\n" +
			"127.0.0.1\tFALSE\t/\tFALSE\t-1\tc\n",
			want: "4:a=1 dom=example.com path=/ host=false sec=false http=false ss= exp=2030-01-02T03:04:05Z\n" +
				"5:b=x y dom=www.example.com path=/p host=true sec=true http=true ss= exp=session\n" +
				"6:c= dom=127.0.0.1 path=/ host=true sec=false http=false ss= exp=session\n"},
		{name: "flag decides, dot dropped", in: ".example.com\tfalse\t\tfalse\t0\ta\t1",
			want: "1:a=1 dom=example.com path=/ host=true sec=false http=false ss= exp=session\n"},
		{name: "byte order mark", in: "\xef\xbb\xbf# Netscape HTTP Cookie File\nexample.com\tFALSE\t/\tFALSE\t0\ta\t1\n",
			want: "2:a=1 dom=example.com path=/ host=true sec=false http=false ss= exp=session\n"},
		{name: "empty", in: "", want: ""},
		{name: "spaces, not tabs", in: "\nexample.com FALSE / FALSE 0 a 1\n", wantErr: []string{"line 2:", "separated by tabs"}},
		{name: "too many fields", in: "example.com\tFALSE\t/\tFALSE\t0\ta\t1\tx\n", wantErr: []string{"line 1:", "got 8"}},
		{name: "bad flag", in: "example.com\tYES\t/\tFALSE\t0\ta\t1\n", wantErr: []string{"line 1:", "include-subdomains", `"YES"`}},
		{name: "bad secure", in: "example.com\tTRUE\t/\t1\t0\ta\t1\n", wantErr: []string{"line 1:", "secure must be TRUE or FALSE"}},
		{name: "bad expiry", in: "example.com\tTRUE\t/\tFALSE\t12.5\ta\t1\n", wantErr: []string{"line 1:", "whole Unix seconds"}},
		{name: "expiry too late", in: "example.com\tTRUE\t/\tFALSE\t999999999999\ta\t1\n", wantErr: []string{"line 1:", "after year 9999"}},
		{name: "empty name", in: "example.com\tTRUE\t/\tFALSE\t0\t\t1\n", wantErr: []string{"line 1:", "name is empty"}},
		{name: "name with =", in: "example.com\tTRUE\t/\tFALSE\t0\ta=b\t1\n", wantErr: []string{"line 1:", `name "a=b"`}},
		{name: "value with ;", in: "example.com\tTRUE\t/\tFALSE\t0\ta\t1;2\n", wantErr: []string{"line 1:", "value of \"a\""}},
		{name: "empty domain", in: "\tTRUE\t/\tFALSE\t0\ta\t1\n", wantErr: []string{"line 1:", "domain is empty"}},
		{name: "bad domain", in: "exa mple.com\tTRUE\t/\tFALSE\t0\ta\t1\n", wantErr: []string{"line 1:", "domain \"exa mple.com\""}},
		{name: "relative path", in: "example.com\tTRUE\tp\tFALSE\t0\ta\t1\n", wantErr: []string{"line 1:", "path \"p\""}},
		{name: "__Host- not host-only", in: "example.com\tTRUE\t/\tTRUE\t0\t__Host-a\t1\n", wantErr: []string{"line 1:", "__Host-"}},
		{name: "__Secure- not secure", in: "example.com\tFALSE\t/\tFALSE\t0\t__Secure-a\t1\n", wantErr: []string{"line 1:", "__Secure-"}},
		{name: "not UTF-8", in: "example.com\tFALSE\t/\tFALSE\t0\ta\t\xff\n", wantErr: []string{"line 1:", "UTF-8"}},
		{name: "every problem, each with its line", in: "x\ny\tTRUE\t/\tFALSE\t0\t\t1\n",
			wantErr: []string{"line 1:", "line 2:"}},
		{name: "many problems cut short", in: strings.Repeat("x\n", 15), wantErr: []string{"line 10:", "and 5 more"}},
	})
}

func TestPlaywrightParse(t *testing.T) {
	runParseCases(t, parsePlaywright, []parseCase{
		{name: "storageState", in: `{
  "cookies": [
    {"name": "a", "value": "1", "domain": ".example.com", "path": "/", "expires": 1893553445.25,
     "httpOnly": true, "secure": true, "sameSite": "Strict"},
    {"name": "b", "value": "2", "domain": "www.example.com", "path": "/p", "expires": -1,
     "httpOnly": false, "secure": false, "sameSite": "lax", "partitionKey": "ignored"}
  ],
  "origins": [{"origin": "https://example.com", "localStorage": []}]
}`, want: "3:a=1 dom=example.com path=/ host=false sec=true http=true ss=Strict exp=2030-01-02T03:04:05.25Z\n" +
			"5:b=2 dom=www.example.com path=/p host=true sec=false http=false ss=Lax exp=session\n"},
		{name: "microseconds exact, longer fractions cut, exponent", in: `{"cookies": [
{"name": "a", "domain": "x.com", "expires": 1893553445.123456789},
{"name": "b", "domain": "x.com", "expires": 1.8935534451e9},
{"name": "c", "domain": "x.com", "expires": 0},
{"name": "d", "domain": "x.com"}]}`,
			want: "2:a= dom=x.com path=/ host=true sec=false http=false ss= exp=2030-01-02T03:04:05.123456Z\n" +
				"3:b= dom=x.com path=/ host=true sec=false http=false ss= exp=2030-01-02T03:04:05.1Z\n" +
				"4:c= dom=x.com path=/ host=true sec=false http=false ss= exp=session\n" +
				"5:d= dom=x.com path=/ host=true sec=false http=false ss= exp=session\n"},
		{name: "no cookies key", in: `{"origins": []}`, wantErr: []string{`"cookies" list`}},
		{name: "a list", in: `[]`, wantErr: []string{"line 1:", "want a storageState object, got a list"}},
		{name: "cookies not a list", in: "{\n\"cookies\": {}}", wantErr: []string{"line 2:", "cookies must be a list"}},
		{name: "syntax error", in: "{\"cookies\": [\n{\"name\": \"a\",,}]}", wantErr: []string{"line 2:", "invalid character"}},
		{name: "truncated", in: "{\"cookies\": [\n{\"name\": \"a\"", wantErr: []string{"line 2:", "ends too early"}},
		{name: "wrong type", in: "{\"cookies\": [\n{\"name\": \"a\",\n \"domain\": 5}]}", wantErr: []string{"line 3:", `"domain" must be a string, got number`}},
		{name: "no name", in: "{\"cookies\": [\n{\"domain\": \"x.com\"}]}", wantErr: []string{"line 2:", "without a name"}},
		{name: "not an object", in: "{\"cookies\": [\n1]}", wantErr: []string{"line 2:", "want a cookie object, got a number"}},
		{name: "bad sameSite", in: "{\"cookies\": [\n{\"name\": \"a\", \"domain\": \"x.com\", \"sameSite\": \"Sometimes\"}]}",
			wantErr: []string{"line 2:", "sameSite must be Lax, Strict or None"}},
		{name: "expiry too late", in: "{\"cookies\": [\n{\"name\": \"a\", \"domain\": \"x.com\", \"expires\": 1e12}]}",
			wantErr: []string{"line 2:", "after year 9999"}},
		{name: "trailing data", in: "{\"cookies\": []}\n{}", wantErr: []string{"line 2:", "unexpected data"}},
	})
}

func TestCookieJSONParse(t *testing.T) {
	runParseCases(t, parseCookieJSON, []parseCase{
		{name: "exported list", in: `[
  {"name": "a", "value": "1", "domain": "example.com", "path": "/", "hostOnly": false, "secure": true,
   "httpOnly": true, "sameSite": "None", "expires": "2030-01-02T04:04:05.5+01:00", "creation": "2026-01-01T00:00:00Z"},
  {"name": "b", "domain": ".Example.com", "hostOnly": true, "expires": "0001-01-01T00:00:00Z"},
  {"name": "c", "domain": "example.com", "expires": null}
]`, want: "2:a=1 dom=example.com path=/ host=false sec=true http=true ss=None exp=2030-01-02T03:04:05.5Z\n" +
			"4:b= dom=Example.com path=/ host=true sec=false http=false ss= exp=session\n" +
			"5:c= dom=example.com path=/ host=false sec=false http=false ss= exp=session\n"},
		{name: "null", in: "null", want: ""},
		{name: "unknown field named", in: "[\n{\"name\": \"a\", \"domain\": \"x.com\", \"colour\": 1}]", wantErr: []string{"line 2:", `unknown field "colour"`}},
		{name: "bad time", in: "[\n{\"name\": \"a\", \"domain\": \"x.com\", \"expires\": \"tomorrow\"}]", wantErr: []string{"line 2:", "RFC 3339", `"tomorrow"`}},
		{name: "an object", in: `{"cookies": []}`, wantErr: []string{"line 1:", "the document must be a list, got an object"}},
		{name: "missing domain", in: "[\n\n{\"name\": \"a\"}]", wantErr: []string{"line 3:", "domain is empty"}},
		{name: "wrong type", in: "[{\"name\": \"a\", \"domain\": \"x.com\",\n\"secure\": \"yes\"}]", wantErr: []string{"line 2:", `"secure" must be a boolean`}},
		{name: "empty", in: "", wantErr: []string{"line 1:", "ends too early"}},
	})
}

// TestCookieJSONParseAt: the cookies of a POST /sessions body are reported
// with the lines of the whole body.
func TestCookieJSONParseAt(t *testing.T) {
	body := []byte("{\n\"id\": \"x\",\n\"cookies\": [\n{\"name\": \"a\", \"domain\": \"x.com\"},\n{\"name\": \"\", \"domain\": \"x.com\"}\n]}")
	off := int64(strings.Index(string(body), "["))
	_, err := ParseJSONAt(body, off)
	if err == nil || !strings.Contains(err.Error(), "line 5: the name is empty") {
		t.Errorf("error = %v, want one at line 5", err)
	}
}

// TestCookieFormatJarCheck: what only the jar can judge is refused with
// the line; domains come back canonical.
func TestCookieFormatJarCheck(t *testing.T) {
	p := cookieTestPool(t)
	for _, tt := range []struct {
		name, in, want, wantErr string
	}{
		{name: "public suffix", in: "# c\n.com\tTRUE\t/\tFALSE\t0\ta\t1\n", wantErr: `line 2: cookie "a": "com" is a public suffix or an IP address`},
		{name: "IP domain cookie", in: "127.0.0.1\tTRUE\t/\tFALSE\t0\ta\t1\n", wantErr: `line 1: cookie "a": "127.0.0.1"`},
		{name: "canonical domains", in: "WWW.Example.COM\tFALSE\t/\tFALSE\t0\ta\t1\n.bücher.de\tTRUE\t/\tFALSE\t0\tb\t2\n",
			want: "1:a=1 dom=www.example.com path=/ host=true sec=false http=false ss= exp=session\n" +
				"2:b=2 dom=xn--bcher-kva.de path=/ host=false sec=false http=false ss= exp=session\n"},
		{name: "IPv6 host-only", in: "::1\tFALSE\t/\tFALSE\t0\ta\t1\n",
			want: "1:a=1 dom=::1 path=/ host=true sec=false http=false ss= exp=session\n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cs, err := parseNetscape([]byte(tt.in))
			if err != nil {
				if tt.wantErr == "" || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("parse: %v", err)
				}
				return
			}
			cs, err = CheckWithJar(p, cs)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want one with %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := parsed(cs); got != tt.want {
				t.Errorf("got:\n%swant:\n%s", got, tt.want)
			}
		})
	}
}

func TestCookieFormatLiveCookies(t *testing.T) {
	cs := []Cookie{
		{Cookie: sessionpool.Cookie{Name: "session"}},
		{Cookie: sessionpool.Cookie{Name: "past", Expires: cookieTestNow.Add(-time.Second)}},
		{Cookie: sessionpool.Cookie{Name: "now", Expires: cookieTestNow}},
		{Cookie: sessionpool.Cookie{Name: "future", Expires: cookieTestNow.Add(time.Second)}},
	}
	kept, dropped := Live(cs, cookieTestNow)
	var names []string
	for _, c := range kept {
		names = append(names, c.Name)
	}
	if strings.Join(names, ",") != "session,future" || dropped != 2 {
		t.Errorf("kept %v, dropped %d; want [session future], 2", names, dropped)
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
		if !sameCookie(again[i].Cookie, want) {
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
	if len(checked) > 150 {
		return // past the jar's per-domain bound, older cookies are evicted
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
		if !ok || !sameCookie(g, w) {
			t.Fatalf("session holds %+v, want %+v", g, w)
		}
	}
}

func hasControl(s string) bool {
	return strings.IndexFunc(s, func(r rune) bool { return r < 0x20 }) >= 0
}

// sameCookie compares every field but Creation.
func sameCookie(a, b sessionpool.Cookie) bool {
	return a.Name == b.Name && a.Value == b.Value && a.Domain == b.Domain && a.Path == b.Path &&
		a.HostOnly == b.HostOnly && a.Secure == b.Secure && a.HTTPOnly == b.HTTPOnly &&
		a.SameSite == b.SameSite && a.Expires.Equal(b.Expires)
}

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

func FuzzParseNetscape(f *testing.F) {
	fuzzCookieFormat(f, Netscape,
		"# Netscape HTTP Cookie File\n.example.com\tTRUE\t/\tFALSE\t0\ta\t1\n",
		"#HttpOnly_x.com\tFALSE\t/p\tTRUE\t1893553445\tb\n",
		".com\tTRUE\t/\tFALSE\t0\ta\t1\n",
		"::1\tFALSE\t/\tTRUE\t1\t__Host-a\t\"q\"\r\n",
		"bücher.de\tFALSE\t/\tFALSE\t99999999999\ta\t1\n")
}

func FuzzParsePlaywright(f *testing.F) {
	fuzzCookieFormat(f, Playwright,
		`{"cookies":[{"name":"a","value":"1","domain":".example.com","path":"/","expires":-1,"httpOnly":false,"secure":false,"sameSite":"Lax"}],"origins":[]}`,
		`{"cookies":[{"name":"a","domain":"x.com","expires":1.5e9},{"name":"b","domain":".x.com","expires":1893553445.1234567}]}`,
		`{"cookies":null}`, `{"cookies":[1,"x",{}]}`)
}

func FuzzParseCookieJSON(f *testing.F) {
	fuzzCookieFormat(f, JSON,
		`[{"name":"a","value":"1","domain":"example.com","path":"/","hostOnly":true,"secure":false,"httpOnly":false,"expires":"2030-01-02T03:04:05Z","creation":"2026-01-01T00:00:00Z"}]`,
		`[{"name":"a","domain":".x.com","sameSite":"strict","expires":"2030-01-02T03:04:05.999999999-07:00"}]`,
		`[{"name":"a","domain":"x.com","x":1}]`, `null`, `[]`)
}
