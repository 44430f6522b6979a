package cookiefile

import (
	"strings"
	"testing"
)

func TestNetscapeParse(t *testing.T) {
	runParseCases(t, parseNetscape, []parseCase{
		{name: "curl file", in: "# Netscape HTTP Cookie File\n# comment\n\n" +
			".example.com\tTRUE\t/\tFALSE\t1893553445\ta\t1\r\n" +
			"#HttpOnly_www.example.com\tFALSE\t/p\tTRUE\t0\tb\tx y\n" +
			"127.0.0.1\tFALSE\t/\tFALSE\t-1\tc\n",
			want: "4:a=1 dom=example.com path=/ host=false sec=false http=false ss= exp=2030-01-02T03:04:05Z\n" +
				"5:b=x y dom=www.example.com path=/p host=true sec=true http=true ss= exp=session\n" +
				"6:c= dom=127.0.0.1 path=/ host=true sec=false http=false ss= exp=1969-12-31T23:59:59Z\n"},
		{name: "negative expiry: long past", in: "example.com\tFALSE\t/\tFALSE\t-62135596800\ta\t1\n" +
			"example.com\tFALSE\t/\tFALSE\t-9223372036854775808\tb\t1\n",
			want: "1:a=1 dom=example.com path=/ host=true sec=false http=false ss= exp=1969-12-31T23:59:59Z\n" +
				"2:b=1 dom=example.com path=/ host=true sec=false http=false ss= exp=1969-12-31T23:59:59Z\n"},
		{name: "flag decides, dot dropped", in: ".example.com\tfalse\t\tfalse\t0\ta\t1",
			want: "1:a=1 dom=example.com path=/ host=true sec=false http=false ss= exp=session\n"},
		{name: "byte order mark", in: "\xef\xbb\xbf# Netscape HTTP Cookie File\nexample.com\tFALSE\t/\tFALSE\t0\ta\t1\n",
			want: "2:a=1 dom=example.com path=/ host=true sec=false http=false ss= exp=session\n"},
		{name: "empty expiry: a session cookie, as Python and yt-dlp write it", in: "# Netscape HTTP Cookie File\n" +
			"# http://curl.haxx.se/rfc/cookie_spec.html\n# This is a generated file!  Do not edit.\n\n" +
			".example.com\tTRUE\t/\tFALSE\t\tsid\tabc\n",
			want: "5:sid=abc dom=example.com path=/ host=false sec=false http=false ss= exp=session\n"},
		{name: "indented comments, as curl and Python skip them", in: "# Netscape HTTP Cookie File\n  # cookies for example.com\n" +
			"\t#x\n \t#HttpOnly_example.com\tFALSE\t/\tFALSE\t0\ta\t1\n",
			want: "4:a=1 dom=example.com path=/ host=true sec=false http=true ss= exp=session\n"},
		{name: "empty", in: "", want: ""},
		{name: "spaces, not tabs", in: "\nexample.com FALSE / FALSE 0 a 1\n", wantErr: []string{"line 2:", "separated by tabs"}},
		{name: "too many fields", in: "example.com\tFALSE\t/\tFALSE\t0\ta\t1\tx\n", wantErr: []string{"line 1:", "got 8"}},
		{name: "bad flag", in: "example.com\tYES\t/\tFALSE\t0\ta\t1\n", wantErr: []string{"line 1:", "include-subdomains", `"YES"`}},
		{name: "bad secure", in: "example.com\tTRUE\t/\t1\t0\ta\t1\n", wantErr: []string{"line 1:", "secure must be TRUE or FALSE"}},
		{name: "bad expiry", in: "example.com\tTRUE\t/\tFALSE\t12.5\ta\t1\n", wantErr: []string{"line 1:", "whole Unix seconds"}},
		{name: "expiry too late", in: "example.com\tTRUE\t/\tFALSE\t999999999999\ta\t1\n", wantErr: []string{"line 1:", "after year 9999"}},
		{name: "empty name", in: "example.com\tTRUE\t/\tFALSE\t0\t\t1\n", wantErr: []string{"line 1:", "name is empty"}},
		{name: "name with =", in: "example.com\tTRUE\t/\tFALSE\t0\ta=b\t1\n", wantErr: []string{"line 1:", `name "a=…" holds '='`}},
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

// TestNetscapeNegativeExpiryExpired: a negative expiry is skipped as
// expired, as Python's MozillaCookieJar drops it (curl refuses the line);
// 0 and nothing stay session cookies.
func TestNetscapeNegativeExpiryExpired(t *testing.T) {
	cs, err := parseNetscape([]byte("example.com\tFALSE\t/\tFALSE\t-1\tgone\t1\n" +
		"example.com\tFALSE\t/\tFALSE\t0\tzero\t1\n" +
		"example.com\tFALSE\t/\tFALSE\t\tempty\t1\n"))
	if err != nil {
		t.Fatal(err)
	}
	kept, expired := Live(cs, cookieTestNow)
	var names []string
	for _, c := range kept {
		names = append(names, c.Name)
	}
	if strings.Join(names, ",") != "zero,empty" || expired != 1 {
		t.Errorf("kept %v, skipped as expired %d; want [zero empty], 1", names, expired)
	}
}

func FuzzParseNetscape(f *testing.F) {
	fuzzCookieFormat(f, Netscape,
		"# Netscape HTTP Cookie File\n.example.com\tTRUE\t/\tFALSE\t0\ta\t1\n",
		"#HttpOnly_x.com\tFALSE\t/p\tTRUE\t1893553445\tb\n",
		".com\tTRUE\t/\tFALSE\t0\ta\t1\n",
		"::1\tFALSE\t/\tTRUE\t1\t__Host-a\t\"q\"\r\n",
		"bücher.de\tFALSE\t/\tFALSE\t99999999999\ta\t1\n")
}
