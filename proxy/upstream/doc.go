// Package upstream is how the proxy reaches origins: directly or through a
// session's upstream proxy (http, https with TLS to the proxy, socks5 and
// socks5h, with credentials in the URL).
//
// Transports hands out one transport per session, so that sessions never
// share a connection: net/http's for the "go" fingerprint mode, else one
// that makes its TLS with uTLS from a ClientHello (a browser profile's, or
// the proxy client's own) through the session's upstream and speaks with
// package wire. Dial opens raw tunnels (CONNECT or SOCKS5) for traffic that
// is not intercepted, and the tunnels of every session's transport. Parse is the one rule for upstream proxy
// URLs and Redact the one way to show them. Classify turns a failure into an
// *Error that names the failing hop and its ErrorKind, never the
// credentials.
//
// The package never logs; everything in it is safe for concurrent use.
package upstream
