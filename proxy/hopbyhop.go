package proxy

import (
	"net/http"
	"strings"

	"golang.org/x/net/http/httpguts"
)

// What belongs to one hop of a connection and is never passed on.

// hopByHop are the header fields of one connection's hop (RFC 9110 7.6.1),
// and the proxy's own: never passed on.
var hopByHop = [...]string{"Connection", "Keep-Alive", "Proxy-Connection", "Transfer-Encoding", "Upgrade", "Proxy-Authenticate", "Proxy-Authorization"}

// interimHeader returns the lines of an interim response's header h that go
// on to the client: a copy without those of the origin's hop (the ones its
// Connection names, and hopByHop). HTTP/2 clients take a message that has
// them for malformed.
func interimHeader(h http.Header) http.Header {
	out := h.Clone()
	dropConnectionOptions(out)
	for _, name := range hopByHop {
		delete(out, name)
	}
	return out
}

// dropConnectionOptions removes the headers that h's Connection names:
// they are for the client's hop only (RFC 9110 7.6.1), such as an h2c
// upgrade's Upgrade and HTTP2-Settings. A WebSocket handshake keeps its
// Upgrade, which goes on with the Connection goproxy keeps for it.
func dropConnectionOptions(h http.Header) {
	ws := webSocketHandshake(h)
	for _, v := range h["Connection"] {
		for tok := range strings.SplitSeq(v, ",") {
			name := http.CanonicalHeaderKey(strings.TrimSpace(tok))
			if name == "" || name == "Connection" || name == "Upgrade" && ws {
				continue
			}
			delete(h, name)
		}
	}
}

// webSocketHandshake reports whether h asks for a WebSocket (Connection:
// upgrade, Upgrade: websocket): the one switch of protocols relayed.
func webSocketHandshake(h http.Header) bool {
	return httpguts.HeaderValuesContainsToken(h["Connection"], "upgrade") &&
		httpguts.HeaderValuesContainsToken(h["Upgrade"], "websocket")
}

// expectsContinue reports whether net/http's server writes a 100 Continue
// on the first read of req's body, req being a request it has handed to a
// handler. It does for a body that may be there whenever the first Expect
// line is not empty: any value without "100-continue" in it got a 417
// before the handler ran.
func expectsContinue(req *http.Request) bool {
	return req.ContentLength != 0 && req.Header.Get("Expect") != ""
}
