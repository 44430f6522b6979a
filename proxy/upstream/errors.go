package upstream

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"net/url"
	"os"
	"strings"
)

// Errors of the package, matched with errors.Is.
var (
	// ErrInvalidURL: an upstream proxy URL does not follow Parse's rule.
	// It comes as a *ParseError, which shows the URL redacted.
	ErrInvalidURL = errors.New("upstream: invalid proxy URL")
	// ErrConnectRefused: an upstream proxy answered CONNECT (or, over plain
	// HTTP, a request) with a status other than 200; the status follows in
	// the message.
	ErrConnectRefused = errors.New("upstream: proxy refused CONNECT")
	// ErrRootCAs: a file given to LoadRootCAs holds no usable certificate.
	ErrRootCAs = errors.New("upstream: bad CA file")
	// ErrBadTarget: Dial got a network other than TCP or an address that
	// is not host:port.
	ErrBadTarget = errors.New("upstream: bad dial target")
)

// ErrorKind says how an attempt to get a response failed. Its values are
// the words configuration rules match on.
type ErrorKind string

// Kinds of Error.
const (
	KindConnect  ErrorKind = "connect"  // no connection: refused, unreachable, DNS, CONNECT or SOCKS refused
	KindTLS      ErrorKind = "tls"      // certificate or handshake failure
	KindTimeout  ErrorKind = "timeout"  // a deadline passed
	KindProtocol ErrorKind = "protocol" // anything else: bad answers, resets, cancellation
)

// Error is a failure to get a response from an origin, naming the hop that
// failed. Error() is one line and never shows credentials.
type Error struct {
	// Hop is "upstream proxy HOST:PORT" or "origin HOST:PORT", never with
	// credentials.
	Hop string
	// Kind is KindConnect, KindTLS, KindTimeout or KindProtocol.
	Kind ErrorKind
	// Err is the underlying error; its text may hold credentials, which
	// Error() removes.
	Err error

	secrets []string // strings Error() replaces with "xxxxx"
}

// Error returns "KIND error at HOP: DETAIL" on one line, with user info
// passwords in URLs and the upstream's password replaced by "xxxxx", and a
// DNS failure's resolver address left out (the host that failed stays).
func (e *Error) Error() string {
	detail := "unknown error"
	if e.Err != nil {
		detail = scrub(withoutResolver(e.Err), e.secrets)
	}
	return string(e.Kind) + " error at " + OneLine(e.Hop) + ": " + detail
}

// Unwrap returns Err.
func (e *Error) Unwrap() error { return e.Err }

// withoutResolver is err's text without the " on RESOLVER" part of a
// *net.DNSError ("lookup HOST on 127.0.0.53:53: no such host"): the address
// of the proxy's resolver is none of its clients' business.
func withoutResolver(err error) string {
	text := err.Error()
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) && dnsErr.Server != "" {
		text = strings.ReplaceAll(text, " on "+dnsErr.Server, "")
	}
	return text
}

// Classify turns an error from a Transports transport's RoundTrip or from
// Dial into an *Error: its Kind from the error (TLS and certificate errors,
// timeouts and deadlines, failed dials and refused CONNECT or SOCKS
// requests, else protocol) and its Hop (the upstream proxy when reaching it
// or its answer failed, else the origin target, given as host:port or URL).
// proxyURL is the session's upstream URL ("" = direct). An error that
// already holds an *Error gives that; nil gives nil. A client that went away
// shows as KindProtocol wrapping context.Canceled.
func Classify(err error, proxyURL string, target string) *Error {
	if err == nil {
		return nil
	}
	var ue *Error
	if errors.As(err, &ue) {
		return ue
	}
	secrets := secretsOf(proxyURL)
	if errors.Is(err, ErrInvalidURL) {
		return &Error{Hop: "upstream proxy (invalid URL)", Kind: KindProtocol, Err: err, secrets: secrets}
	}
	hop := originHop(target)
	if proxyURL != "" && failedAtProxy(err) {
		if u, perr := Parse(proxyURL); perr == nil {
			hop = proxyHop(u)
		}
	}
	return &Error{Hop: hop, Kind: errorKind(err), Err: err, secrets: secrets}
}

// proxyHop names the upstream proxy u (a Parse result) without its
// credentials.
func proxyHop(u *url.URL) string { return "upstream proxy " + u.Host }

// originHop names target ("host:port", "host" or a URL) as "origin HOST:PORT".
func originHop(target string) string {
	if strings.Contains(target, "://") {
		if u, err := url.Parse(target); err == nil && u.Hostname() != "" {
			port := u.Port()
			if port == "" {
				port = "80"
				if u.Scheme == "https" || u.Scheme == "wss" {
					port = "443"
				}
			}
			return "origin " + net.JoinHostPort(u.Hostname(), port)
		}
	}
	if i := strings.LastIndex(target, "@"); i >= 0 { // user info, never shown
		target = target[i+1:]
	}
	if i := strings.IndexAny(target, "/?# \t\r\n"); i >= 0 {
		target = target[:i]
	}
	if target == "" {
		return "origin"
	}
	return "origin " + target
}

// failedAtProxy reports whether err happened reaching the upstream proxy or
// in its answer to CONNECT or SOCKS5, rather than at the origin.
func failedAtProxy(err error) bool {
	if errors.Is(err, ErrConnectRefused) {
		return true
	}
	var pe *proxyDialError
	if errors.As(err, &pe) {
		return true
	}
	for e := err; e != nil; e = errors.Unwrap(e) {
		if op, ok := e.(*net.OpError); ok && (op.Op == "proxyconnect" || strings.HasPrefix(op.Op, "socks")) {
			return true
		}
	}
	return false
}

// errorKind decides the Kind of err.
func errorKind(err error) ErrorKind {
	if isTLSError(err) {
		return KindTLS
	}
	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded) ||
		(errors.As(err, &ne) && ne.Timeout()) {
		return KindTimeout
	}
	if errors.Is(err, context.Canceled) {
		return KindProtocol
	}
	if errors.Is(err, ErrConnectRefused) {
		return KindConnect
	}
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) {
		return KindConnect
	}
	for e := err; e != nil; e = errors.Unwrap(e) {
		if op, ok := e.(*net.OpError); ok && (op.Op == "dial" || op.Op == "proxyconnect" || strings.HasPrefix(op.Op, "socks")) {
			return KindConnect
		}
	}
	var pe *proxyDialError
	if errors.As(err, &pe) {
		return KindConnect
	}
	return KindProtocol
}

func isTLSError(err error) bool {
	var (
		unknownAuth  x509.UnknownAuthorityError
		hostErr      x509.HostnameError
		invalidErr   x509.CertificateInvalidError
		verifyErr    *tls.CertificateVerificationError
		recordErr    tls.RecordHeaderError
		alertErr     tls.AlertError
		rootsErr     x509.SystemRootsError
		echRejectErr *tls.ECHRejectionError
	)
	if errors.As(err, &unknownAuth) || errors.As(err, &hostErr) || errors.As(err, &invalidErr) ||
		errors.As(err, &verifyErr) || errors.As(err, &recordErr) || errors.As(err, &alertErr) ||
		errors.As(err, &rootsErr) || errors.As(err, &echRejectErr) {
		return true
	}
	msg := err.Error()
	return strings.Contains(msg, "tls: ") || strings.Contains(msg, "x509: ")
}
