package sessionpool_test

import (
	"context"
	"fmt"
	"log"
	"net/http"
	"net/url"
	"os"

	"github.com/sessionproxy/sessionproxy/sessionpool"
)

// A pool with a file store: open (restoring any saved state), get a session,
// use its cookies, mark the outcome, persist, tear down, and open again.
func Example() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "sessionpool-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	store, err := sessionpool.NewFileStore(dir)
	if err != nil {
		log.Fatal(err)
	}

	pool, err := sessionpool.Open(ctx, sessionpool.Options{MaxPoolSize: 10, Store: store})
	if err != nil {
		log.Fatal(err)
	}
	s, err := pool.GetSession(ctx)
	if err != nil {
		log.Fatal(err)
	}
	u, _ := url.Parse("https://example.com/")
	s.SetCookiesFromResponse(&http.Response{
		Header:  http.Header{"Set-Cookie": {"uid=7; Path=/; HttpOnly"}},
		Request: &http.Request{URL: u},
	})
	s.MarkGood()
	if err := pool.PersistState(ctx); err != nil {
		log.Fatal(err)
	}
	if err := pool.Teardown(ctx); err != nil {
		log.Fatal(err)
	}

	again, err := sessionpool.Open(ctx, sessionpool.Options{MaxPoolSize: 10, Store: store})
	if err != nil {
		log.Fatal(err)
	}
	defer again.Teardown(ctx)
	restored, err := again.GetSessionByID(ctx, s.ID())
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("usable:", again.UsableSessionsCount())
	fmt.Println("uses:", restored.UsageCount())
	fmt.Println("cookies:", restored.CookieString(u))
	// Output:
	// usable: 1
	// uses: 1
	// cookies: uid=7
}

// Marks decide when a session is spent; a spent session retires itself once.
func ExampleSession_MarkBad() {
	ctx := context.Background()
	pool, err := sessionpool.Open(ctx, sessionpool.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Teardown(ctx)
	pool.OnSessionRetired(func(st sessionpool.SessionState) {
		fmt.Printf("retired: score %v after %d uses\n", st.ErrorScore, st.UsageCount)
	})
	s, _ := pool.AddSession(ctx, sessionpool.SessionOptions{ID: "s1"})
	s.MarkBad()
	s.MarkGood()
	fmt.Println("score:", s.ErrorScore(), "usable:", s.IsUsable())
	s.MarkBad()
	s.MarkBad()
	s.MarkBad()
	fmt.Println("blocked:", s.IsBlocked(), "usable:", s.IsUsable())
	// Output:
	// score: 0.5 usable: true
	// retired: score 3.5 after 5 uses
	// blocked: true usable: false
}

// RetireOnBlockedStatusCodes retires a session on 401, 403 and 429 (and any
// extra codes).
func ExampleSession_RetireOnBlockedStatusCodes() {
	ctx := context.Background()
	pool, _ := sessionpool.Open(ctx, sessionpool.Options{})
	defer pool.Teardown(ctx)
	s, _ := pool.GetSession(ctx)
	fmt.Println(s.RetireOnBlockedStatusCodes(200), s.IsUsable())
	fmt.Println(s.RetireOnBlockedStatusCodes(503, 503), s.IsUsable())
	// Output:
	// false true
	// true false
}

// CreateSessionFunc builds every new session: here it gives each one a
// sticky upstream proxy.
func ExampleOptions_createSessionFunc() {
	ctx := context.Background()
	upstreams := []string{"http://127.0.0.1:3128", "http://127.0.0.1:3129"}
	n := 0
	pool, err := sessionpool.Open(ctx, sessionpool.Options{
		MaxPoolSize: 2,
		CreateSessionFunc: func(ctx context.Context, p *sessionpool.Pool, opts sessionpool.SessionOptions) (*sessionpool.Session, error) {
			opts.ProxyURL = upstreams[n%len(upstreams)]
			n++
			return p.NewSession(opts)
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Teardown(ctx)
	a, _ := pool.GetSession(ctx)
	b, _ := pool.GetSession(ctx)
	fmt.Println(a.ProxyURL())
	fmt.Println(b.ProxyURL())
	// Output:
	// http://127.0.0.1:3128
	// http://127.0.0.1:3129
}

// PersistState writes the document to the store; MemoryStore keeps it in
// memory.
func ExamplePool_PersistState() {
	ctx := context.Background()
	store := sessionpool.NewMemoryStore()
	pool, _ := sessionpool.Open(ctx, sessionpool.Options{Store: store, PersistStateKey: "my-pool"})
	pool.AddSession(ctx, sessionpool.SessionOptions{ID: "a"})
	pool.AddSession(ctx, sessionpool.SessionOptions{ID: "b"})
	if err := pool.PersistState(ctx); err != nil {
		log.Fatal(err)
	}
	pool.Teardown(ctx)
	_, err := pool.GetSession(ctx)
	fmt.Println(err)

	data, _ := store.Get(ctx, "my-pool")
	fmt.Printf("%.62s\n", data)
	// Output:
	// get session: sessionpool: pool closed
	// {"version":1,"usableSessionsCount":2,"retiredSessionsCount":0,
}

// One pool per site: a retirement on one site leaves the same name on
// another site alone.
func ExampleSites() {
	ctx := context.Background()
	sites, err := sessionpool.OpenSites(ctx, sessionpool.Options{MaxPoolSize: 10})
	if err != nil {
		log.Fatal(err)
	}
	defer sites.Teardown(ctx)

	shop, _ := sites.Pool(ctx, "shop.example")
	news, _ := sites.Pool(ctx, "news.example")
	a, _ := shop.AddSession(ctx, sessionpool.SessionOptions{ID: "alice"})
	news.AddSession(ctx, sessionpool.SessionOptions{ID: "alice"})
	a.Retire() // blocked on shop.example

	_, err = shop.GetSessionByID(ctx, "alice")
	fmt.Println("shop.example:", err)
	s, err := news.GetSessionByID(ctx, "alice")
	fmt.Println("news.example:", s.ID(), s.Site(), err)
	// Output:
	// shop.example: get session "alice": sessionpool: session not found
	// news.example: alice news.example <nil>
}
