package cookiefile

import (
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
