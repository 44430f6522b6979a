package proxy

import (
	"context"
	"io"
	"net"
	"net/http"

	"github.com/elazarl/goproxy"
	"golang.org/x/net/http2"

	"github.com/sessionproxy/sessionproxy/proxy/wire"
)

// serveTunnelH2 serves an HTTP/2 client inside an intercepted tunnel with
// the proxy's own HTTP/2 server, so that the server's limits are the
// proxy's: a header list over max_header_bytes gets 431 as it would
// outside (goproxy's embedded server would take 1 MiB whatever the
// configuration). Each stream goes through the request path as a request
// of tunnel t, as goproxy would send it. It returns when the connection
// ends.
func (s *Server) serveTunnelH2(conn net.Conn, t *tunnel) {
	cfg := s.cfg.Load()
	// IdleTimeout: a client that sends no request for idle_timeout is
	// closed even if it sends PINGs, which the tunnel's own idle watch
	// takes for use.
	srv := &http2.Server{IdleTimeout: cfg.IdleTimeout}
	// A block holds an origin's head (max_header_bytes at most) and the
	// proxy's few fields.
	conn = h2OrderedConn{Conn: conn, o: newH2Orderer(s.orderField, 2*cfg.MaxHeaderBytes+64<<10)}
	srv.ServeConn(conn, &http2.ServeConnOpts{
		Context:    context.Background(),
		BaseConfig: &http.Server{MaxHeaderBytes: cfg.MaxHeaderBytes},
		Handler:    http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { s.serveTunnelStream(w, r, t) }),
	})
}

// serveTunnelStream is one HTTP/2 stream of an intercepted tunnel: the
// request as goproxy would make it (scheme https, host from :authority,
// hop-by-hop and proxy headers removed), the request path, and the
// response written back, streamed when it streams. A body that fails
// midway panics with http.ErrAbortHandler (truncate.go), which the server
// turns into RST_STREAM.
func (s *Server) serveTunnelStream(w http.ResponseWriter, r *http.Request, t *tunnel) {
	r.URL.Scheme = "http" // h2c inside the CONNECT
	if t.mitm.tls.Load() {
		r.URL.Scheme = "https"
	}
	if r.Host != "" {
		r.URL.Host = r.Host
	} else {
		r.URL.Host = t.host
	}
	r.RequestURI = ""
	for _, h := range hopByHop {
		r.Header.Del(h)
	}
	if r.ContentLength == 0 {
		r.Body = http.NoBody
	}
	cs := &clientStream{w: w, orderField: s.orderField}
	r = r.WithContext(context.WithValue(r.Context(), wire.InterimKey{}, cs))
	ctx := &goproxy.ProxyCtx{Req: r, UserData: t, Proxy: s.gp}
	resp, err := t.mitm.countRequests(s.roundTrip)(r, ctx)
	if err != nil { // roundTrip answers every failure itself; kept for the contract
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	h := w.Header()
	for k, vs := range resp.Header {
		h[k] = vs // as goproxy copies: a name with no value keeps the server from adding it
	}
	if resp.StatusCode == http.StatusNoContent {
		// A 204 has no content and must not say a length (RFC 9110
		// 8.6): over HTTP/1.1 the framing hides one an origin sent
		// anyway, but an HTTP/2 client takes it for a malformed stream.
		delete(h, "Content-Length")
	}
	if cs.names != nil {
		h[s.orderField] = []string{orderValue(cs.names)}
	}
	var announced map[string]bool // the trailers known before the body: declared
	for k := range resp.Trailer {
		if announced == nil {
			announced = make(map[string]bool, len(resp.Trailer))
		}
		announced[k] = true
		h.Add("Trailer", k)
	}
	w.WriteHeader(resp.StatusCode)
	if resp.Body != nil {
		copyStream(w, resp)
	}
	for k, vs := range resp.Trailer { // filled once the body has ended
		if !announced[k] {
			k = http.TrailerPrefix + k
		}
		for _, v := range vs {
			h.Add(k, v)
		}
	}
}

// clientStream is an HTTP/2 client's stream as the request path sees it:
// where an origin's interim responses (103 Early Hints) go, ahead of the
// final response, and where the final response's names are left.
type clientStream struct {
	w          http.ResponseWriter
	orderField string   // Server.orderField
	names      []string // the final response's names as the origin sent them; from roundTrip (namesTaker)
}

func (s *clientStream) takeNames(names []string) { s.names = names }

func (s *clientStream) Interim(resp *http.Response, names []string) {
	if names != nil {
		s.w.Header()[s.orderField] = []string{orderValue(names)} // cleared with the rest
	}
	writeInterim(s.w, resp)
}

// copyStream copies a response body to w, flushing after every write when
// the response streams.
func copyStream(w http.ResponseWriter, resp *http.Response) {
	if !streams(resp.ContentLength, resp.Header.Get("Content-Type")) {
		io.Copy(w, resp.Body)
		return
	}
	rc := http.NewResponseController(w)
	buf := make([]byte, 32<<10)
	for {
		n, err := resp.Body.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return
			}
			rc.Flush()
		}
		if err != nil {
			return
		}
	}
}
