package proxy

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"runtime"
	"strings"
	"testing"
	"time"
)

// rawConnect sends CONNECT target through the proxy at proxyAddr and
// returns the first response the proxy writes, with its body.
func rawConnect(t *testing.T, proxyAddr, target string) (*http.Response, string) {
	t.Helper()
	conn, err := net.Dial("tcp", proxyAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "CONNECT %s HTTP/1.1\r\nHost: %s\r\nX-Session-Id: guarded\r\n\r\n", target, target)
	req, _ := http.NewRequest(http.MethodConnect, "http://"+target, nil)
	resp, err := http.ReadResponse(bufio.NewReader(conn), req)
	if err != nil {
		t.Fatalf("CONNECT %s: %v", target, err)
	}
	var body []byte
	if resp.StatusCode != http.StatusOK {
		body, _ = io.ReadAll(resp.Body)
	}
	resp.Body.Close()
	return resp, string(body)
}

// TestProxyRefusesItsOwnListeners: with the default loopback listener, a
// request through the proxy to the proxy itself or to its admin API, by
// address or by name, plain HTTP or CONNECT, gets 403 (a CONNECT before any
// 200), and marks nothing; other loopback targets stay allowed.
func TestProxyRefusesItsOwnListeners(t *testing.T) {
	origin := httptest.NewServer(originMux())
	defer origin.Close()
	h := startProxy(t, testConfig(t))
	c := h.client("", "")
	admin := strings.TrimPrefix(h.adminURL, "http://")
	_, adminPort, _ := net.SplitHostPort(admin)
	self := h.proxyURL.Host
	waitListening(t, h)
	_, selfPort, _ := net.SplitHostPort(self)
	for _, u := range []string{
		h.adminURL + "/sessions",
		"http://localhost:" + adminPort + "/sessions",
		"http://[::ffff:127.0.0.1]:" + adminPort + "/sessions",
		"http://0.0.0.0:" + adminPort + "/sessions",
		"http://" + self + "/",
		"http://localhost:" + selfPort + "/",
	} {
		resp, body := get(t, c, u, "guarded")
		if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "own listener") {
			t.Errorf("GET %s through the proxy: %d %q, want 403 naming the own listener", u, resp.StatusCode, body)
		}
	}
	for _, target := range []string{admin, "localhost:" + adminPort, self, "localhost:" + selfPort} {
		resp, body := rawConnect(t, self, target)
		if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "own listener") {
			t.Errorf("CONNECT %s: %d %q, want 403 before any 200", target, resp.StatusCode, body)
		}
	}
	if resp, _ := get(t, c, origin.URL+"/echo", "guarded"); resp.StatusCode != http.StatusOK {
		t.Errorf("GET of a loopback origin: %d, want 200 (the proxy listens on loopback)", resp.StatusCode)
	}
	if st := stateOf(t, h, "guarded?site="+originSite); st.ErrorScore != 0 || st.Retired {
		t.Errorf("refusals marked the session: %+v", st)
	}
}

// TestProxyRefusesOwnListenersThroughUpstream: with an upstream (which
// resolves and dials for the proxy, so no dialer of the proxy's checks the
// target), a request still cannot reach the proxy's own listeners: by
// address, by "localhost", and inside an intercepted tunnel whose requests
// name another Host than the CONNECT did.
func TestProxyRefusesOwnListenersThroughUpstream(t *testing.T) {
	up, count := startGoproxyUpstream(t, "", "")
	cfg := testConfig(t)
	cfg.Upstreams = []*url.URL{mustURL(t, up)}
	h := startProxy(t, cfg)
	waitListening(t, h)
	admin := strings.TrimPrefix(h.adminURL, "http://")
	_, adminPort, _ := net.SplitHostPort(admin)

	// 127.0.0.1 as inet_aton(3), getaddrinfo and browsers also read it.
	numeric := []string{"2130706433", "127.1", "0x7f.0.0.1", "0177.0.0.01", "0x7F000001", "127.0.0.1."}
	targets := []string{admin, "localhost:" + adminPort, "LocalHost.:" + adminPort, "a.localhost:" + adminPort}
	for _, host := range numeric {
		targets = append(targets, host+":"+adminPort)
	}
	for _, target := range targets {
		resp, body := get(t, h.client("", ""), "http://"+target+"/sessions", "")
		if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "own listener") {
			t.Errorf("GET http://%s/sessions: %d %q, want 403 naming the own listener", target, resp.StatusCode, body)
		}
	}
	for _, inner := range []string{admin, "localhost:" + adminPort, numeric[0] + ":" + adminPort} {
		conn, err := net.Dial("tcp", h.proxyURL.Host)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(conn, "CONNECT example.test:80 HTTP/1.1\r\nHost: example.test:80\r\n\r\n")
		br := bufio.NewReader(conn)
		resp, err := http.ReadResponse(br, nil)
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("CONNECT example.test:80: %v %v", resp, err)
		}
		fmt.Fprintf(conn, "GET /sessions HTTP/1.1\r\nHost: %s\r\n\r\n", inner)
		resp, err = http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		conn.Close()
		if resp.StatusCode != http.StatusForbidden || !strings.Contains(string(body), "own listener") {
			t.Errorf("inside a tunnel to example.test, Host %s: %d %q, want 403 naming the own listener", inner, resp.StatusCode, body)
		}
	}
	if n := count(); n != 0 {
		t.Errorf("the upstream was asked %d times, want none", n)
	}
}

// waitListening waits until both of h's listeners are known to the
// proxy: Serve and ServeAdmin, started in goroutines, record them.
func waitListening(t *testing.T, h *harness) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if own, _ := h.srv.listening.snapshot(); len(own) == 2 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the proxy never recorded its listeners")
		}
		runtime.Gosched()
	}
}

// exposedListener is a loopback listener that says it listens on a
// non-loopback address (TEST-NET-1): the proxy then behaves as one exposed
// to a network, while the test stays on loopback.
type exposedListener struct{ net.Listener }

func (l exposedListener) Addr() net.Addr {
	a := l.Listener.Addr().(*net.TCPAddr)
	return &net.TCPAddr{IP: net.IPv4(192, 0, 2, 1), Port: a.Port}
}

// TestProxyRefusesPrivateTargetsWhenExposed: a proxy listening on a
// non-loopback address refuses loopback (and other private) targets with
// 403, by address or by name, plain HTTP, CONNECT before any 200 and
// requests inside an intercepted tunnel; allow_private_targets: true lets
// them through.
func TestProxyRefusesPrivateTargetsWhenExposed(t *testing.T) {
	origin, tlsOrigin, cfg := origins(t, originMux())
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h := startProxyOn(t, Options{Config: cfg}, exposedListener{ln})
	h.proxyURL.Host = ln.Addr().String()
	waitListening(t, h)
	c := h.client("", "")
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(origin.URL, "http://"))
	tlsHost := strings.TrimPrefix(tlsOrigin.URL, "https://")
	_, tlsPort, _ := net.SplitHostPort(tlsHost)

	refused := func(allowed bool) {
		t.Helper()
		want := http.StatusForbidden
		if allowed {
			want = http.StatusOK
		}
		// By address and by "localhost" (both checked before the session
		// is chosen).
		for _, u := range []string{origin.URL + "/echo", "http://localhost:" + port + "/echo"} {
			resp, body := get(t, c, u, "guarded")
			if resp.StatusCode != want || !allowed && !strings.Contains(body, "allow_private_targets") {
				t.Errorf("GET %s: %d %q, want %d", u, resp.StatusCode, body, want)
			}
		}
		resp, err := c.Get(tlsOrigin.URL + "/echo")
		if allowed && (err != nil || resp.StatusCode != http.StatusOK) || !allowed && (err == nil || !strings.Contains(err.Error(), "Forbidden")) {
			t.Errorf("GET %s: %v, allowed %v", tlsOrigin.URL, err, allowed)
		}
		if err == nil {
			resp.Body.Close()
		}
		for _, target := range []string{tlsHost, "localhost:" + tlsPort} {
			resp, body := rawConnect(t, ln.Addr().String(), target)
			if resp.StatusCode != want {
				t.Errorf("CONNECT %s: %d %q, want %d", target, resp.StatusCode, body, want)
			}
		}
	}
	refused(false)
	for _, p := range h.srv.sites.Pools() {
		for _, st := range p.State().Sessions {
			if st.ErrorScore != 0 || st.Retired {
				t.Errorf("refusals marked a session: %+v", st)
			}
		}
	}
	allow := *h.srv.Config()
	allow.AllowPrivateTargets = true
	h.srv.cfg.Store(&allow)
	refused(true)
}

// TestCheckTargetTable: which addresses are refused, for a proxy on
// loopback and one exposed (on every address), with the admin API on
// 127.0.0.1:8081.
func TestCheckTargetTable(t *testing.T) {
	cfg := testConfig(t)
	for _, tc := range []struct {
		target        string
		onLoopback    bool // refused by a proxy on 127.0.0.1:8080
		exposed       bool // refused by a proxy on 0.0.0.0:8080
		exposedAllowd bool // refused by it with allow_private_targets
	}{
		{"127.0.0.1:8081", true, true, true},
		{"127.0.0.1:8080", true, true, true},
		{"[::1]:8080", true, true, true},
		{"[::ffff:127.0.0.1]:8081", true, true, true},
		{"0.0.0.0:8081", true, true, true},
		{"127.0.0.1:9000", false, true, false},
		{"127.9.9.9:9000", false, true, false},
		{"10.1.2.3:80", false, true, false},
		{"172.16.0.1:443", false, true, false},
		{"192.168.1.1:80", false, true, false},
		{"169.254.169.254:80", false, true, false},
		{"[fe80::1]:80", false, true, false},
		{"[fd00::1]:80", false, true, false},
		{"[::]:80", false, true, false},
		{"93.184.216.34:443", false, false, false},
		{"[2606:4700::1111]:443", false, false, false},
		{"93.184.216.34:8080", false, false, false},
	} {
		ap := netip.MustParseAddrPort(tc.target)
		for _, env := range []struct {
			name   string
			listen string
			allow  bool
			want   bool
		}{
			{"on loopback", "127.0.0.1:8080", false, tc.onLoopback},
			{"exposed", "0.0.0.0:8080", false, tc.exposed},
			{"exposed, allow_private_targets", "0.0.0.0:8080", true, tc.exposedAllowd},
		} {
			s := &Server{}
			c := *cfg
			c.AllowPrivateTargets = env.allow
			s.cfg.Store(&c)
			s.listening.add(fakeListener(env.listen), false)
			s.listening.add(fakeListener("127.0.0.1:8081"), true)
			if got := s.checkTarget(ap) != nil; got != env.want {
				t.Errorf("%s, %s: refused %v, want %v", tc.target, env.name, got, env.want)
			}
		}
	}
}

// fakeListener is a listener that is only an address.
type fakeListener string

func (l fakeListener) Accept() (net.Conn, error) { return nil, net.ErrClosed }
func (l fakeListener) Close() error              { return nil }
func (l fakeListener) Addr() net.Addr {
	return net.TCPAddrFromAddrPort(netip.MustParseAddrPort(string(l)))
}

// TestNumericIPv4: the spellings of an IPv4 address that address parsers
// other than netip's take (inet_aton(3), getaddrinfo, WHATWG URL hosts) are
// read as the address they spell; names are not addresses.
func TestNumericIPv4(t *testing.T) {
	for _, tc := range []struct {
		host string
		want string // "" when host is a name
	}{
		{"2130706433", "127.0.0.1"},
		{"127.1", "127.0.0.1"},
		{"127.0.1", "127.0.0.1"},
		{"0x7f.1", "127.0.0.1"},
		{"0X7F000001", "127.0.0.1"},
		{"0177.0.0.1", "127.0.0.1"},
		{"017700000001", "127.0.0.1"},
		{"127.0.0.1.", "127.0.0.1"},
		{"0", "0.0.0.0"},
		{"0x", "0.0.0.0"},
		{"10.0x10.0300", "10.16.0.192"},
		{"169.254.43518", "169.254.169.254"},
		{"4294967295", "255.255.255.255"},
		{"4294967296", ""},
		{"256.0.0.1", ""},
		{"1.2.65536", ""},
		{"1.2.3.4.5", ""},
		{"08", ""},
		{"0xg", ""},
		{"1..2", ""},
		{"", ""},
		{".", ""},
		{"+1", ""},
		{"1_000", ""},
		{"example.com", ""},
		{"1.2.3.com", ""},
	} {
		ip, ok := numericIPv4(tc.host)
		got := ""
		if ok {
			got = ip.String()
		}
		if got != tc.want {
			t.Errorf("numericIPv4(%q) = %q, want %q", tc.host, got, tc.want)
		}
	}
}

// TestCheckTargetZonedAddresses: an IPv6 zone (fe80::1%eth0) names the
// interface to leave by, not another address: a listener's address with a
// zone added is still the listener, and so is an address of this host with
// one when a listener is on every address. The dial connects to it all the
// same.
func TestCheckTargetZonedAddresses(t *testing.T) {
	cfg := testConfig(t)
	cfg.AllowPrivateTargets = true // only the own-listener check refuses
	newServer := func(proxy, admin string) *Server {
		s := &Server{}
		s.cfg.Store(cfg)
		s.listening.add(fakeListener(proxy), false)
		s.listening.add(fakeListener(admin), true)
		return s
	}
	s := newServer("[2001:db8::5]:8080", "[fe80::1%eth0]:8081")
	for _, target := range []string{"[2001:db8::5%eth0]:8080", "[2001:db8::5%1]:8080", "[fe80::1%eth0]:8081", "[fe80::1]:8081"} {
		if err := s.checkTarget(netip.MustParseAddrPort(target)); !errors.Is(err, errOwnListener) {
			t.Errorf("listeners on [2001:db8::5]:8080 and [fe80::1%%eth0]:8081: %s gives %v, want the own listener refused", target, err)
		}
	}
	if err := s.checkTarget(netip.MustParseAddrPort("[2001:db8::6%eth0]:8080")); err != nil {
		t.Errorf("another address, zoned: %v", err)
	}

	// An address of this host, zoned, to a listener on every address.
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	s = newServer("[::]:8080", "[::]:8081")
	tried := 0
	for _, a := range addrs {
		n, ok := a.(*net.IPNet)
		if !ok || n.IP.To4() != nil || n.IP.IsLoopback() {
			continue
		}
		ip, _ := netip.AddrFromSlice(n.IP)
		target := netip.AddrPortFrom(ip.WithZone("eth0"), 8081)
		if err := s.checkTarget(target); !errors.Is(err, errOwnListener) {
			t.Errorf("admin on [::]:8081: %s, an address of this host, gives %v, want the own listener refused", target, err)
		}
		tried++
	}
	if tried == 0 {
		t.Log("no non-loopback IPv6 address on this host: the every-address case is not tried")
	}
}
