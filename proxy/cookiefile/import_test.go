package cookiefile

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/sessionproxy/sessionproxy/sessionpool"
)

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

// TestCookieFormatJarBounds: a document with more cookies than a session's
// jar keeps, for one domain or in all, is refused with the line of the
// first cookie over the bound, instead of the jar dropping some of them
// without a word; one within the bounds is stored whole.
func TestCookieFormatJarBounds(t *testing.T) {
	// lines is a cookies.txt with n cookies of each domain, named c0...,
	// from line 2 on.
	lines := func(n int, domains ...string) string {
		var b strings.Builder
		b.WriteString(NetscapeHeader + "\n")
		for _, d := range domains {
			for i := range n {
				fmt.Fprintf(&b, "%s\tTRUE\t/\tFALSE\t0\tc%d\tv\n", d, i)
			}
		}
		return b.String()
	}
	const perDomain = sessionpool.MaxCookiesPerDomain
	manyDomains := make([]string, sessionpool.MaxCookiesPerJar/perDomain+1)
	for i := range manyDomains {
		manyDomains[i] = fmt.Sprintf("d%d.example.com", i)
	}
	p := cookieTestPool(t)
	for _, tt := range []struct {
		name    string
		in      string
		want    int // cookies the session holds
		wantErr string
	}{
		{name: "a domain full", in: lines(perDomain, "example.com"), want: perDomain},
		{name: "a domain over", in: lines(perDomain+20, "example.com"),
			wantErr: fmt.Sprintf(`line %d: domain "example.com" has %d cookies, more than the %d`, perDomain+2, perDomain+20, perDomain)},
		{name: "host-only and domain cookies share the bound",
			in:      lines(perDomain, "example.com") + "example.com\tFALSE\t/\tFALSE\t0\tx\tv\n",
			wantErr: fmt.Sprintf(`line %d: domain "example.com"`, perDomain+2)},
		{name: "domains count apart", in: lines(perDomain, "example.com", "www.example.com"), want: 2 * perDomain},
		{name: "a cookie replaced takes no room",
			in:   lines(perDomain, "example.com") + "example.com\tTRUE\t/\tFALSE\t0\tc0\tw\n",
			want: perDomain},
		{name: "the jar over", in: lines(perDomain, manyDomains...),
			wantErr: fmt.Sprintf("line %d: %d cookies in all, more than the %d a session keeps",
				sessionpool.MaxCookiesPerJar+2, len(manyDomains)*perDomain, sessionpool.MaxCookiesPerJar)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cs, err := parseNetscape([]byte(tt.in))
			if err != nil {
				t.Fatal(err)
			}
			checked, err := CheckWithJar(p, cs)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want one with %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			sess, err := p.NewSession(sessionpool.SessionOptions{})
			if err != nil {
				t.Fatal(err)
			}
			Apply(sess, checked)
			if got := len(sess.State().Cookies); got != tt.want {
				t.Errorf("the session holds %d cookies, want %d", got, tt.want)
			}
		})
	}
}
