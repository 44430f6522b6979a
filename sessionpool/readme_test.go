package sessionpool_test

import (
	"context"
	"errors"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/sessionproxy/sessionproxy/sessionpool"
	"github.com/sessionproxy/sessionproxy/sessionpool/sessionpooltest"
)

// The README's library examples, as functions that compile and run. The
// text between the README markers of each is what the README shows
// (TestReadmeLibrarySnippets checks it does, verbatim but for one level of
// indentation).

func readmeFileStore(ctx context.Context, store sessionpool.Store, client *http.Client, req *http.Request) error {
	// README begin
	pool, err := sessionpool.Open(ctx, sessionpool.Options{
		MaxPoolSize: 100,
		Store:       store, // sessionpool.NewFileStore(dir) or NewMemoryStore(); nil persists nothing
	})
	if err != nil {
		return err
	}
	defer pool.Teardown(ctx) // persists once more

	sess, err := pool.GetSession(ctx)
	if err != nil {
		return err
	}
	req.Header.Set("Cookie", sess.CookieString(req.URL))
	resp, err := client.Do(req)
	if err != nil {
		sess.MarkBad()
		return err
	}
	defer resp.Body.Close()
	sess.SetCookiesFromResponse(resp)
	if !sess.RetireOnBlockedStatusCodes(resp.StatusCode) {
		sess.MarkGood()
	}
	// README end
	return nil
}

func readmeRedis(ctx context.Context, redisURL string, client *http.Client, req *http.Request) error {
	// README begin
	pool, err := sessionpool.Open(ctx, sessionpool.Options{
		Redis: &sessionpool.RedisOptions{
			URL:     redisURL, // "redis://:s3cret@10.0.0.5:6379/0"
			OnError: func(err error) { log.Print(err) },
		},
	})
	if err != nil {
		return err
	}
	defer pool.Teardown(ctx)

	sess, err := pool.GetSession(ctx) // errors.Is(err, sessionpool.ErrStoreUnavailable) when Redis is down
	if err != nil {
		return err
	}
	req.Header.Set("Cookie", sess.CookieString(req.URL))
	resp, err := client.Do(req)
	if err != nil {
		return errors.Join(err, sess.Commit(ctx, nil, sessionpool.Bad))
	}
	defer resp.Body.Close()
	return sess.Commit(ctx, resp, sessionpool.Good) // its cookies and its mark, in one round trip
	// README end
}

func readmeSites(ctx context.Context, store sessionpool.Store, client *http.Client, req *http.Request) error {
	// README begin
	sites, err := sessionpool.OpenSites(ctx, sessionpool.Options{MaxPoolSize: 10, Store: store})
	if err != nil {
		return err
	}
	defer sites.Teardown(ctx) // persists every site's pool and the index of the sites

	pool, err := sites.Pool(ctx, req.URL.Hostname()) // the proxy uses the registrable domain
	if err != nil {
		return err
	}
	sess, err := pool.GetSession(ctx) // a session of this site only: its blocks cost the others nothing
	if err != nil {
		return err
	}
	req.Header.Set("Cookie", sess.CookieString(req.URL))
	resp, err := client.Do(req)
	if err != nil {
		sess.MarkBad()
		return err
	}
	defer resp.Body.Close()
	sess.SetCookiesFromResponse(resp)
	if !sess.RetireOnBlockedStatusCodes(resp.StatusCode) {
		sess.MarkGood()
	}
	// README end
	return nil
}

// TestReadmeLibrarySnippets runs the examples against a local origin (the
// Redis one on a redis-server) and checks that the README shows them.
func TestReadmeLibrarySnippets(t *testing.T) {
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.SetCookie(w, &http.Cookie{Name: "seen", Value: "1"})
	}))
	defer origin.Close()
	ctx := context.Background()
	store := sessionpool.NewMemoryStore()
	req, _ := http.NewRequest(http.MethodGet, origin.URL, nil)
	if err := readmeFileStore(ctx, store, origin.Client(), req); err != nil {
		t.Fatalf("the README's first example: %v", err)
	}
	if doc, err := store.Get(ctx, sessionpool.DefaultPersistStateKey); err != nil || !strings.Contains(string(doc), `"seen"`) {
		t.Errorf("the first example persisted %.200s (%v), want its session with the cookie", doc, err)
	}
	store = sessionpool.NewMemoryStore()
	req, _ = http.NewRequest(http.MethodGet, origin.URL, nil)
	if err := readmeSites(ctx, store, origin.Client(), req); err != nil {
		t.Fatalf("the README's Sites example: %v", err)
	}
	key := sessionpool.DefaultPersistStateKey + "@" + req.URL.Hostname()
	if doc, err := store.Get(ctx, key); err != nil || !strings.Contains(string(doc), `"seen"`) {
		t.Errorf("the Sites example persisted %.200s (%v) under %s, want its session with the cookie", doc, err, key)
	}
	rds := sessionpooltest.Start(t)
	req, _ = http.NewRequest(http.MethodGet, origin.URL, nil)
	if err := readmeRedis(ctx, rds.URL(0), origin.Client(), req); err != nil {
		t.Fatalf("the README's Redis example: %v", err)
	}

	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile("readme_test.go")
	if err != nil {
		t.Fatal(err)
	}
	rest := string(src)
	for n := 1; ; n++ {
		_, after, ok := strings.Cut(rest, "\t// README begin\n")
		if !ok {
			if n == 1 {
				t.Fatal("no README markers in readme_test.go")
			}
			return
		}
		body, after, _ := strings.Cut(after, "\t// README end\n")
		rest = after
		var lines []string
		for _, l := range strings.SplitAfter(body, "\n") {
			lines = append(lines, strings.TrimPrefix(l, "\t"))
		}
		if shown := strings.Join(lines, ""); !strings.Contains(string(readme), "```go\n"+shown+"```") {
			t.Errorf("README.md does not show library example %d as it is:\n%s", n, shown)
		}
	}
}
