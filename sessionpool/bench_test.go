package sessionpool_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sessionproxy/sessionproxy/sessionpool"
)

// benchPool opens a pool of size sessions and fills it.
func benchPool(b *testing.B, size int, opts sessionpool.Options) *sessionpool.Pool {
	b.Helper()
	opts.MaxPoolSize = size
	p, err := sessionpool.Open(context.Background(), opts)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { p.Teardown(context.Background()) })
	for range size {
		if _, err := p.GetSession(context.Background()); err != nil {
			b.Fatal(err)
		}
	}
	return p
}

// BenchmarkGetSessionMarkGood measures GetSession + MarkGood in one
// goroutine, with the default session limits (so sessions wear out after 50
// uses and are evicted and replaced as in production).
//
//	go test -run '^$' -bench 'GetSessionMarkGood$' ./sessionpool/
func BenchmarkGetSessionMarkGood(b *testing.B) {
	for _, size := range []int{1000, 1_000_000} {
		b.Run(fmt.Sprintf("sessions=%d", size), func(b *testing.B) {
			p := benchPool(b, size, sessionpool.Options{})
			b.ReportAllocs()
			b.ResetTimer()
			getMarkLoop(b, p)
		})
	}
}

// getMarkLoop runs GetSession+MarkGood b.N times and reports ops/s.
func getMarkLoop(b *testing.B, p *sessionpool.Pool) {
	ctx := context.Background()
	for range b.N {
		s, err := p.GetSession(ctx)
		if err != nil {
			b.Fatal(err)
		}
		s.MarkGood()
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
}

// BenchmarkGetSessionMarkGoodParallel is the same from GOMAXPROCS
// goroutines.
func BenchmarkGetSessionMarkGoodParallel(b *testing.B) {
	p := benchPool(b, 1000, sessionpool.Options{})
	b.ReportAllocs()
	b.ResetTimer()
	getMarkParallel(b, p)
}

// getMarkParallel runs GetSession+MarkGood from the goroutines of
// b.RunParallel and reports ops/s.
func getMarkParallel(b *testing.B, p *sessionpool.Pool) {
	ctx := context.Background()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			s, err := p.GetSession(ctx)
			if err != nil {
				b.Error(err)
				return
			}
			s.MarkGood()
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
}

// BenchmarkSessionHeap measures the heap taken per session (without
// cookies) in a pool of 100,000, map entry and slice slots included.
//
//	go test -run '^$' -bench SessionHeap -benchtime 1x ./sessionpool/
func BenchmarkSessionHeap(b *testing.B) {
	const n = 100_000
	var perSession float64
	for range b.N {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		p, err := sessionpool.Open(context.Background(), sessionpool.Options{MaxPoolSize: n})
		if err != nil {
			b.Fatal(err)
		}
		for range n {
			if _, err := p.GetSession(context.Background()); err != nil {
				b.Fatal(err)
			}
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		if got := p.UsableSessionsCount(); got != n {
			b.Fatalf("%d sessions", got)
		}
		perSession = float64(after.HeapAlloc-before.HeapAlloc) / n
		runtime.KeepAlive(p)
		p.Teardown(context.Background())
	}
	b.ReportMetric(perSession, "B/session")
}

// BenchmarkIdleSiteHeap measures the heap a site's pool takes beyond its
// sessions: 10,000 sites, each with its pool opened and one session, less
// one pool of 10,000 sessions.
//
//	go test -run '^$' -bench IdleSiteHeap -benchtime 1x ./sessionpool/
func BenchmarkIdleSiteHeap(b *testing.B) {
	const n = 10_000
	ctx := context.Background()
	heap := func(fill func() func()) float64 {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		done := fill()
		runtime.GC()
		runtime.ReadMemStats(&after)
		done()
		return float64(after.HeapAlloc) - float64(before.HeapAlloc)
	}
	var perSite float64
	for range b.N {
		sites := heap(func() func() {
			ss, err := sessionpool.OpenSites(ctx, sessionpool.Options{MaxPoolSize: 10})
			if err != nil {
				b.Fatal(err)
			}
			for i := range n {
				p, err := ss.Pool(ctx, "site"+strconv.Itoa(i)+".example")
				if err != nil {
					b.Fatal(err)
				}
				if _, err := p.GetSession(ctx); err != nil {
					b.Fatal(err)
				}
			}
			return func() { ss.Teardown(ctx) }
		})
		one := heap(func() func() {
			p, err := sessionpool.Open(ctx, sessionpool.Options{MaxPoolSize: n})
			if err != nil {
				b.Fatal(err)
			}
			for range n {
				if _, err := p.GetSession(ctx); err != nil {
					b.Fatal(err)
				}
			}
			return func() { p.Teardown(ctx) }
		})
		perSite = (sites - one) / n
	}
	b.ReportMetric(perSite, "B/site")
}

// BenchmarkPersistState persists 100,000 sessions with 5 cookies each while
// another goroutine calls GetSession in a loop, and reports the longest
// GetSession it saw (max-get-ms).
//
//	go test -run '^$' -bench PersistState -benchtime 3x ./sessionpool/
func BenchmarkPersistState(b *testing.B) {
	for _, kind := range []string{"file", "memory"} {
		b.Run("store="+kind, func(b *testing.B) {
			var store sessionpool.Store = sessionpool.NewMemoryStore()
			if kind == "file" {
				fs, err := sessionpool.NewFileStore(b.TempDir())
				if err != nil {
					b.Fatal(err)
				}
				store = fs
			}
			const n = 100_000
			p := benchPool(b, n, sessionpool.Options{Store: store, PersistInterval: time.Hour})
			u, _ := url.Parse("https://www.example.com/")
			cookies := make([]*http.Cookie, 5)
			for i := range cookies {
				cookies[i] = &http.Cookie{Name: fmt.Sprintf("cookie%d", i), Value: "0123456789abcdef0123456789abcdef", Domain: ".example.com", Path: "/", Expires: time.Now().Add(24 * time.Hour)}
			}
			for _, s := range p.Sessions() {
				s.SetCookies(u, cookies)
			}
			ctx := context.Background()

			stop := make(chan struct{})
			done := make(chan struct{})
			var maxLatency atomic.Int64
			go func() {
				defer close(done)
				for {
					select {
					case <-stop:
						return
					default:
					}
					start := time.Now()
					if _, err := p.GetSession(ctx); err != nil {
						b.Error(err)
						return
					}
					if d := int64(time.Since(start)); d > maxLatency.Load() {
						maxLatency.Store(d) // only this goroutine writes
					}
				}
			}()
			b.ResetTimer()
			for range b.N {
				if err := p.PersistState(ctx); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			close(stop)
			<-done
			b.ReportMetric(float64(maxLatency.Load())/1e6, "max-get-ms")
			data, err := store.Get(ctx, sessionpool.DefaultPersistStateKey)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(len(data))/1e6, "MB/doc")
		})
	}
}

// BenchmarkRedisGetSessionMarkGood measures GetSession + MarkGood on a
// Redis pool of 1,000 sessions (filled before the timer) on a redis-server
// on loopback: one pool, so one go-redis client and its connection pool.
// Each operation is two script runs (the allocation, then the mark), and
// sessions wear out after 50 uses, so evictions and creations are included
// as in production. "goroutines=1" is one caller; "parallel" is
// b.RunParallel with 64 callers per GOMAXPROCS (a proxy has that many
// requests in flight): go-redis's autopipeliner sends the scripts of
// concurrent callers together, so the rate grows with the callers (on 2
// cores, before the scripts got cheaper: about 12k ops/s with 8, 17k with
// 32, 20k with 64, 22k with 128; ?pool_size= in the URL changed little).
// ops/s counts operations.
//
//	go test -run '^$' -bench RedisGetSessionMarkGood -benchtime 3s -count 3 ./sessionpool/
func BenchmarkRedisGetSessionMarkGood(b *testing.B) {
	const size = 1000
	open := func(b *testing.B) *sessionpool.Pool {
		b.Helper()
		opts := redisBackend().Options(b, sessionpool.Options{})
		opts.Redis.OnError = func(err error) { b.Error(err) }
		return benchPool(b, size, opts)
	}
	b.Run("goroutines=1", func(b *testing.B) {
		p := open(b)
		b.ReportAllocs()
		b.ResetTimer()
		getMarkLoop(b, p)
	})
	b.Run("parallel", func(b *testing.B) {
		p := open(b)
		b.ReportAllocs()
		b.SetParallelism(64)
		b.ResetTimer()
		getMarkParallel(b, p)
	})
}
