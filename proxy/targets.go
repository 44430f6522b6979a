package proxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sessionproxy/sessionproxy/proxy/upstream"
)

var (
	// errOwnListener: a request's target is one of the proxy's own
	// listeners (proxy or admin API).
	errOwnListener = errors.New("proxy: target is the proxy's own listener")
	// errPrivateTarget: a request's target is a loopback, link-local or
	// private address while the proxy listens on a non-loopback address
	// and allow_private_targets is off.
	errPrivateTarget = errors.New("proxy: target is a loopback, link-local or private address")
)

// targetLookupTimeout bounds the name resolution of a target checked before
// its CONNECT is answered or its request sent.
const targetLookupTimeout = 5 * time.Second

// listenAddrs remembers the addresses the server listens on, for the
// refusal of requests to them. Safe for concurrent use; the zero value
// holds none.
type listenAddrs struct {
	mu    sync.Mutex // guards the fields below; snap is read without it
	proxy []netip.AddrPort
	admin []netip.AddrPort
	snap  atomic.Pointer[listenSnapshot] // what snapshot returns, made by add
}

// listenSnapshot is every listener address, and whether some proxy
// listener is on a non-loopback address. Never changed once made.
type listenSnapshot struct {
	all     []netip.AddrPort
	exposed bool
}

// add remembers ln's address, of the proxy listener or (admin) the admin
// API's, once. A listener that is not TCP is ignored.
func (l *listenAddrs) add(ln net.Listener, admin bool) {
	ta, ok := ln.Addr().(*net.TCPAddr)
	if !ok {
		return
	}
	ap := ta.AddrPort()
	ap = netip.AddrPortFrom(ap.Addr().Unmap().WithZone(""), ap.Port()) // as checkTarget compares
	l.mu.Lock()
	defer l.mu.Unlock()
	list := &l.proxy
	if admin {
		list = &l.admin
	}
	if slices.Contains(*list, ap) {
		return
	}
	*list = append(*list, ap)
	snap := &listenSnapshot{all: slices.Concat(l.proxy, l.admin)}
	for _, ap := range l.proxy {
		if !ap.Addr().IsLoopback() {
			snap.exposed = true
		}
	}
	l.snap.Store(snap)
}

// snapshot returns every listener address and whether some proxy listener
// is on a non-loopback address. The caller must not change all: every
// request checks its target against it, so it is made once, by add.
func (l *listenAddrs) snapshot() (all []netip.AddrPort, exposed bool) {
	if snap := l.snap.Load(); snap != nil {
		return snap.all, snap.exposed
	}
	return nil, false
}

// checkTarget refuses an address the proxy must not connect to for a
// client: one of its own listeners (errOwnListener), and, while a proxy
// listener is on a non-loopback address and allow_private_targets is off,
// loopback, link-local, private and unspecified addresses
// (errPrivateTarget). It is upstream.Options.CheckTarget for every direct
// dial, and checks the targets named by CONNECT and plain-HTTP requests.
func (s *Server) checkTarget(ap netip.AddrPort) error {
	// A zone (fe80::1%eth0) names the interface to leave by, not another
	// address: a listener's address, or this host's, with one added is
	// still the same one, and the dial reaches it.
	ip := ap.Addr().Unmap().WithZone("")
	own, exposed := s.listening.snapshot()
	for _, l := range own {
		if l.Port() == ap.Port() && reachesListener(ip, l.Addr()) {
			return fmt.Errorf("%w %s", errOwnListener, netip.AddrPortFrom(ip, ap.Port()))
		}
	}
	if exposed && !s.cfg.Load().AllowPrivateTargets && privateIP(ip) {
		return fmt.Errorf("%w (%s) and allow_private_targets is off", errPrivateTarget, ip)
	}
	return nil
}

// reachesListener reports whether connecting to ip reaches a listener on
// lip (same port): the same address; a loopback or unspecified ip for a
// listener on loopback or on every address; an address of this host for a
// listener on every address.
func reachesListener(ip, lip netip.Addr) bool {
	switch {
	case ip == lip:
		return true
	case ip.IsLoopback() || ip.IsUnspecified():
		return lip.IsLoopback() || lip.IsUnspecified()
	case lip.IsUnspecified():
		return localIP(ip)
	}
	return false
}

// localIP reports whether ip is an address of one of this host's
// interfaces.
func localIP(ip netip.Addr) bool {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return false
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok {
			if la, ok := netip.AddrFromSlice(n.IP); ok && la.Unmap() == ip {
				return true
			}
		}
	}
	return false
}

// privateIP reports whether ip is loopback, link-local, private (RFC 1918,
// RFC 4193) or unspecified (which reaches this host).
func privateIP(ip netip.Addr) bool {
	return ip.IsLoopback() || ip.IsPrivate() || ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() ||
		ip.IsUnspecified()
}

// checkTargetHost checks the target a CONNECT, plain-HTTP or tunnelled
// request names (host:port) before anything is sent or answered: an IP
// address (in any spelling, numericIPv4) as it is, through an upstream
// too; "localhost" and its subdomains as the loopback addresses they always are (RFC 6761), through
// an upstream too (one on this host would reach this host); a name, with resolve (CONNECT, whose 200
// comes before any dial when intercepted), when the proxy connects
// directly (no upstreams configured) and the name could be refused (its
// port is a listener's, or private targets are refused): resolved, and
// every address checked. A name that does not resolve passes: its dial
// fails later and says so. Direct dials check again what they connect to
// (checkTarget in the dialer), so a name that resolves differently by then
// gains nothing.
func (s *Server) checkTargetHost(ctx context.Context, hostport string, resolve bool) error {
	host, portStr, err := net.SplitHostPort(hostport)
	if err != nil || host == "" {
		return nil
	}
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil {
		return nil
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		return s.checkTarget(netip.AddrPortFrom(ip, uint16(port)))
	}
	if ip, ok := numericIPv4(host); ok { // an upstream or a resolver reads it as this address
		return s.checkTarget(netip.AddrPortFrom(ip, uint16(port)))
	}
	if h := strings.ToLower(strings.TrimSuffix(host, ".")); h == "localhost" || strings.HasSuffix(h, ".localhost") {
		for _, ip := range [...]netip.Addr{netip.AddrFrom4([4]byte{127, 0, 0, 1}), netip.IPv6Loopback()} {
			if err := s.checkTarget(netip.AddrPortFrom(ip, uint16(port))); err != nil {
				return err
			}
		}
		return nil
	}
	cfg := s.cfg.Load()
	if !resolve || len(cfg.Upstreams) > 0 {
		return nil // the dialer checks, or the upstream resolves and connects
	}
	own, exposed := s.listening.snapshot()
	if (!exposed || cfg.AllowPrivateTargets) && !slices.ContainsFunc(own, func(l netip.AddrPort) bool { return l.Port() == uint16(port) }) {
		return nil // no address could be refused: no lookup
	}
	ctx, cancel := context.WithTimeout(ctx, targetLookupTimeout)
	defer cancel()
	ips, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return nil
	}
	for _, ip := range ips {
		if err := s.checkTarget(netip.AddrPortFrom(ip, uint16(port))); err != nil {
			return err
		}
	}
	return nil
}

// numericIPv4 reads host as the IPv4 address it spells in a form that
// netip does not take but inet_aton(3), getaddrinfo and WHATWG URL parsers
// do: one to four parts, each decimal, octal (a leading 0) or hexadecimal
// (0x), the last filling the bytes left ("127.1", "2130706433",
// "0x7f.0.0.1", "0177.0.0.1"), and a trailing dot. ok is false when host
// is not such a spelling (a name).
func numericIPv4(host string) (ip netip.Addr, ok bool) {
	parts := strings.Split(strings.TrimSuffix(host, "."), ".")
	if len(parts) > 4 {
		return netip.Addr{}, false
	}
	var n uint64
	for i, p := range parts {
		base := 10
		switch {
		case len(p) >= 2 && (p[:2] == "0x" || p[:2] == "0X"):
			base, p = 16, p[2:]
			if p == "" {
				p = "0" // "0x" is 0, as URL parsers read it
			}
		case len(p) >= 2 && p[0] == '0':
			base, p = 8, p[1:]
		}
		if p == "" {
			return netip.Addr{}, false
		}
		v, err := strconv.ParseUint(p, base, 32)
		if err != nil {
			return netip.Addr{}, false
		}
		bits := 8
		if i == len(parts)-1 {
			bits = 8 * (5 - len(parts))
		}
		if v >= 1<<bits {
			return netip.Addr{}, false
		}
		n = n<<bits | v
	}
	return netip.AddrFrom4([4]byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)}), true
}

// targetAddr is the host:port a CONNECT, plain-HTTP or tunnelled request
// is for, the scheme's port when the URL names none.
func targetAddr(r *http.Request) string {
	if r.Method == http.MethodConnect {
		return r.Host
	}
	if r.URL.Port() != "" {
		return r.URL.Host
	}
	port := "80"
	if r.URL.Scheme == "https" {
		port = "443"
	}
	return net.JoinHostPort(r.URL.Hostname(), port)
}

// refusedTarget is the 403 a client gets for a target the proxy refuses.
func refusedTarget(req *http.Request, err error) *http.Response {
	return textResponse(req, http.StatusForbidden, "sessionproxy: refused: "+err.Error())
}

// targetRefused reports whether err is a refusal of the target by the
// dialer's check rather than a failure to reach it.
func targetRefused(err error) bool {
	return errors.Is(err, upstream.ErrTargetRefused)
}
