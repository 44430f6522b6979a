package upstream

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/sessionproxy/sessionproxy/proxy/proxytest"
)

// TestCheckTargetDirectOnly: Options.CheckTarget sees the resolved address
// of every direct dial (transport and Dial, names included) and refuses it
// with ErrTargetRefused; dials to an upstream proxy are not checked, and
// the origin behind it is the upstream's to reach.
func TestCheckTargetDirectOnly(t *testing.T) {
	var hits atomic.Int64
	origin := startHTTPOrigin(t, helloHandler(&hits))
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(origin.URL, "http://"))
	var mu sync.Mutex
	var seen []netip.AddrPort
	opts := Options{CheckTarget: func(ap netip.AddrPort) error {
		mu.Lock()
		seen = append(seen, ap)
		mu.Unlock()
		if ap.Addr().IsLoopback() {
			return fmt.Errorf("%s is loopback", ap)
		}
		return nil
	}}
	up, count := proxytest.StartGoproxyUpstream(t, "", "")
	ts := newTestTransports(t, opts)
	for _, target := range []string{origin.URL, "http://localhost:" + port} {
		direct, err := ts.Get("direct", "", "go")
		if err != nil {
			t.Fatal(err)
		}
		_, _, err = proxytest.GetThrough(t, direct, target+"/x")
		if !errors.Is(err, ErrTargetRefused) || !strings.Contains(err.Error(), "is loopback") {
			t.Errorf("direct GET %s: %v, want ErrTargetRefused", target, err)
		}
		if _, err := Dial(context.Background(), "", "tcp", strings.TrimPrefix(target, "http://"), opts); !errors.Is(err, ErrTargetRefused) {
			t.Errorf("direct Dial %s: %v, want ErrTargetRefused", target, err)
		}
	}
	if hits.Load() != 0 {
		t.Errorf("the origin got %d requests through refused dials", hits.Load())
	}
	mu.Lock()
	n := len(seen)
	mu.Unlock()
	if n < 4 {
		t.Errorf("CheckTarget saw %d addresses, want one per dial at least", n)
	}

	through, err := ts.Get("through", up, "go")
	if err != nil {
		t.Fatal(err)
	}
	if status, _, err := proxytest.GetThrough(t, through, origin.URL+"/x"); err != nil || status != http.StatusOK || count() != 1 {
		t.Errorf("GET through the upstream: %d %v (upstream saw %d), want 200", status, err, count())
	}
	conn, err := Dial(context.Background(), up, "tcp", strings.TrimPrefix(origin.URL, "http://"), opts)
	if err != nil {
		t.Errorf("Dial through the upstream: %v", err)
	} else {
		conn.Close()
	}
}
