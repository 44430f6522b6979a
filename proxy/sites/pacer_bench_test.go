package sites

import (
	"context"
	"runtime"
	"strconv"
	"testing"
	"time"
)

// BenchmarkIdleSiteHeap measures the heap an idle site holds: one request
// of one session has gone to each of 100,000 sites and ended, and each
// site keeps that session's delay. A site without a delay or a pause
// holds nothing once its requests end.
//
//	go test -run '^$' -bench IdleSiteHeap -benchtime 1x ./proxy/sites/
func BenchmarkIdleSiteHeap(b *testing.B) {
	const n = 100_000
	hosts := make([]string, n)
	for i := range hosts {
		hosts[i] = "www.site" + strconv.Itoa(i) + ".com"
	}
	for b.Loop() {
		p, err := New(Options{Rules: []Rule{{Host: "*", Delay: time.Hour, Concurrency: 4}}})
		if err != nil {
			b.Fatal(err)
		}
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		for _, h := range hosts {
			release, err := p.Wait(context.Background(), h, "session-1")
			if err != nil {
				b.Fatal(err)
			}
			release()
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		if len(p.sites) != n {
			b.Fatalf("%d sites kept, want %d", len(p.sites), n)
		}
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/n, "B/site")
		runtime.KeepAlive(p)
	}
}
