package sessionpool

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// benchJar returns a jar holding 20 cookies for https://www.example.com/a/b
// (host-only and domain cookies, several paths), plus others cookies for
// other hosts.
func benchJar(b *testing.B, others int) (*jar, *url.URL) {
	b.Helper()
	j := &jar{}
	from, err := url.Parse("https://www.example.com/a/b/c")
	if err != nil {
		b.Fatal(err)
	}
	paths := []string{"/", "/a", "/a/b", "/a/"}
	for i := range 20 {
		attrs := "; Path=" + paths[i%len(paths)]
		if i%2 == 0 {
			attrs += "; Domain=example.com"
		}
		if i%3 == 0 {
			attrs += "; Secure; HttpOnly; Max-Age=3600"
		}
		j.setFromResponse(from, []string{fmt.Sprintf("cookie%02d=%s%s", i, strings.Repeat("v", 24), attrs)}, jarT0)
	}
	for i := range others {
		u, _ := url.Parse(fmt.Sprintf("https://site%d.example.org/", i))
		j.setFromResponse(u, []string{fmt.Sprintf("o%d=1", i)}, jarT0)
	}
	return j, from
}

func BenchmarkCookieString(b *testing.B) {
	for _, others := range []int{0, 200} {
		b.Run(fmt.Sprintf("20cookies+%dother", others), func(b *testing.B) {
			j, u := benchJar(b, others)
			now := jarT0.Add(time.Minute)
			buf := j.appendCookieString(nil, u, now)
			if n := strings.Count(string(buf), "; ") + 1; n != 20 {
				b.Fatalf("%d cookies match, want 20: %s", n, buf)
			}
			b.ReportAllocs()
			for b.Loop() {
				buf = j.appendCookieString(buf[:0], u, now)
			}
		})
	}
	b.Run("string(append(nil))", func(b *testing.B) {
		j, u := benchJar(b, 0)
		now := jarT0.Add(time.Minute)
		b.ReportAllocs()
		for b.Loop() {
			_ = string(j.appendCookieString(nil, u, now))
		}
	})
	b.Run("cookieString", func(b *testing.B) {
		j, u := benchJar(b, 0)
		now := jarT0.Add(time.Minute)
		b.ReportAllocs()
		for b.Loop() {
			_ = j.cookieString(u, now)
		}
	})
}

func BenchmarkSetFromResponse(b *testing.B) {
	u, _ := url.Parse("https://www.example.com/a/b")
	lines := []string{
		"sid=0123456789abcdef; Domain=example.com; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age=3600",
		"pref=dark; Expires=Wed, 21 Oct 2037 07:28:00 GMT",
		"track=1; Path=/a",
	}
	var j jar
	b.ReportAllocs()
	for b.Loop() {
		j.setFromResponse(u, lines, jarT0)
	}
}

func BenchmarkCookies(b *testing.B) {
	j, u := benchJar(b, 0)
	now := jarT0.Add(time.Minute)
	b.ReportAllocs()
	for b.Loop() {
		_ = j.cookies(u, now)
	}
}

// BenchmarkSessionCookieString is what the proxy calls on every request: a
// session's Cookie header for a URL, with 20 cookies in its jar.
//
//	go test -run '^$' -bench SessionCookieString ./sessionpool/
func BenchmarkSessionCookieString(b *testing.B) {
	p, err := Open(context.Background(), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer p.Teardown(context.Background())
	s, err := p.GetSession(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	u, _ := url.Parse("https://www.example.com/shop/item/1")
	var cs []*http.Cookie
	for i := range 20 {
		cs = append(cs, &http.Cookie{Name: fmt.Sprintf("cookie%02d", i), Value: strings.Repeat("v", 24), Path: "/"})
	}
	s.SetCookies(u, cs)
	if n := strings.Count(s.CookieString(u), "; ") + 1; n != 20 {
		b.Fatalf("%d cookies, want 20", n)
	}
	b.ReportAllocs()
	for b.Loop() {
		_ = s.CookieString(u)
	}
}
