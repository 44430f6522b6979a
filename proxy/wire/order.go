// Package wire sends requests to origins in exactly the form asked for:
// header lines in a given order and case, nothing added (no User-Agent, no
// Accept-Encoding, no Date), and HTTP/2 connections that open with a given
// preface (SETTINGS in order, connection WINDOW_UPDATE, PRIORITY frames)
// and send pseudo-headers in a given order. net/http's Transport sorts and
// re-cases header lines, adds headers, and opens HTTP/2 with Go's own
// preface; a fingerprinting origin tells it from a browser on the first
// packet.
//
// TLS is not its business: a Transport's Dial hands it connections with
// the handshake done.
package wire

import (
	"context"
	"net/http"
	"slices"
	"strconv"
	"strings"
)

// Order is how a request's header lines go out.
type Order struct {
	// Names are the header names in wire order and case, one entry per
	// line: a name given twice sends the header's next value. Values come
	// from the request's Header (canonical keys); a name the Header lacks
	// sends nothing, except Host (req.Host), Content-Length and
	// Transfer-Encoding (the body's framing) and Connection (keep-alive,
	// or close when req.Close). Headers of the Header that Names does not
	// name go after, in sorted order.
	Names []string
	// Pseudo is the HTTP/2 pseudo-header order; nil means :method,
	// :authority, :scheme, :path.
	Pseudo []string
}

// OrderKey is the context key of a request's *Order (WithOrder). A
// context of the caller's own may answer it, to carry an Order without a
// layer of its own.
type OrderKey struct{}

// WithOrder returns ctx carrying o for the requests made with it.
func WithOrder(ctx context.Context, o Order) context.Context {
	return context.WithValue(ctx, OrderKey{}, &o)
}

// OrderFrom returns the Order ctx carries; ok is false when there is none.
func OrderFrom(ctx context.Context) (o Order, ok bool) {
	if p, _ := ctx.Value(OrderKey{}).(*Order); p != nil {
		return *p, true
	}
	return Order{}, false
}

// defaultPseudo is the pseudo-header order of an Order without one.
var defaultPseudo = []string{":method", ":authority", ":scheme", ":path"}

// field is one header line to send.
type field struct{ name, value string }

// fields returns req's header lines in o's order, for HTTP/1.1 (h2 false:
// Host first unless o places it, the body's framing included) or HTTP/2
// (lowercase names, without Host and the connection-specific headers).
func fields(req *http.Request, o Order, h2 bool) []field {
	n := len(req.Header) + 2 // a line per name, and the framing's
	f := fieldList{req: req, h2: h2, out: make([]field, 0, n), used: make([]keyCount, 0, n)}
	if !h2 && !slices.ContainsFunc(o.Names, func(n string) bool { return strings.EqualFold(n, "Host") }) {
		f.add("Host", "Host")
	}
	for _, name := range o.Names {
		f.add(name, http.CanonicalHeaderKey(name))
	}
	var rest []string
	for key, vs := range req.Header {
		if f.sent(key) < len(vs) {
			rest = append(rest, key)
		}
	}
	slices.Sort(rest)
	for _, key := range rest {
		for f.sent(key) < len(req.Header[key]) {
			f.add(key, key)
		}
	}
	for _, key := range [...]string{"Content-Length", "Transfer-Encoding"} {
		if !h2 && f.sent(key) == 0 {
			f.add(key, key) // framing the client's head did not name
		}
	}
	return f.out
}

// fieldList builds the lines of fields.
type fieldList struct {
	req  *http.Request
	h2   bool
	out  []field
	used []keyCount // values of each canonical name taken so far: a few, so a slice
}

type keyCount struct {
	key string
	n   int
}

// sent returns how many values of key were taken.
func (f *fieldList) sent(key string) int {
	for _, u := range f.used {
		if u.key == key {
			return u.n
		}
	}
	return 0
}

// take counts one more value of key taken and returns its index.
func (f *fieldList) take(key string) int {
	for i := range f.used {
		if f.used[i].key == key {
			f.used[i].n++
			return f.used[i].n - 1
		}
	}
	f.used = append(f.used, keyCount{key, 1})
	return 0
}

// add appends the next line of canonical key, named name on the wire.
func (f *fieldList) add(name, key string) {
	req := f.req
	if key == "Content-Length" && chunked(req) {
		return // the framing is the chunks
	}
	vs := req.Header[key]
	i := f.take(key)
	var v string
	switch {
	case i < len(vs):
		v = vs[i]
	case i > 0:
		return
	default:
		var ok bool
		if v, ok = implied(req, key, f.h2); !ok {
			return
		}
	}
	if f.h2 {
		if connectionSpecific(key, v) {
			return
		}
		name = strings.ToLower(name)
	}
	f.out = append(f.out, field{name, v})
}

// implied returns the value of a header that req carries outside its
// Header: Host, the body's framing, Connection.
func implied(req *http.Request, key string, h2 bool) (string, bool) {
	switch key {
	case "Host":
		if h2 {
			return "", false // it is :authority
		}
		if req.Host != "" {
			return req.Host, true
		}
		return req.URL.Host, req.URL.Host != ""
	case "Content-Length":
		if chunked(req) || req.ContentLength <= 0 {
			return "", false
		}
		return strconv.FormatInt(req.ContentLength, 10), true
	case "Transfer-Encoding":
		return "chunked", !h2 && chunked(req)
	case "Connection":
		if h2 {
			return "", false
		}
		if req.Close {
			return "close", true
		}
		return "keep-alive", true
	}
	return "", false
}

// chunked reports whether req's body goes chunked over HTTP/1.1: its
// length is unknown, or it came chunked.
func chunked(req *http.Request) bool {
	if slices.Contains(req.TransferEncoding, "chunked") {
		return true
	}
	return req.ContentLength < 0 && req.Body != nil && req.Body != http.NoBody
}

// connectionSpecific reports whether an HTTP/1.1 header has no place in
// HTTP/2 (RFC 9113 8.2.2).
func connectionSpecific(key, value string) bool {
	switch key {
	case "Host", "Connection", "Keep-Alive", "Proxy-Connection", "Transfer-Encoding", "Upgrade":
		return true
	case "Te":
		return !strings.EqualFold(value, "trailers")
	}
	return false
}
