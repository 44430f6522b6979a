package proxy

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
)

// streamWriter is the ResponseWriter goproxy gets for a plain-HTTP request.
// goproxy copies the body into the server's buffer and flushes only at the
// end, so a slow or endless body would reach the client late or never.
// streamWriter flushes as httputil.ReverseProxy does, and only then: after
// every write when the response streams (no Content-Length, or
// text/event-stream), and otherwise before a read of the body that may wait
// (the previous read came short and the body is not complete), so that what
// has arrived is with the client while the origin is silent. It keeps the
// ResponseWriter's ReadFrom (the server copies with a pooled buffer) and the
// Hijacker goproxy needs for WebSocket upgrades. It is used by one request's
// goroutine only.
type streamWriter struct {
	http.ResponseWriter
	decided bool  // WriteHeader with a final status has been seen
	stream  bool  // flush after every write
	left    int64 // body bytes not yet read when the length is known
	pending bool  // flush before the next read of the body
	body    flushBeforeWait
	order   *headOrderer // the client connection's; nil when it has none
	names   []string     // the origin's header names, for order
	interim bool         // the client may get interim responses (Interim)
}

// Interim passes an origin's interim response (103 Early Hints) on to the
// client, ahead of the final one; not to an HTTP/1.0 client, which knows
// none, nor to one that waits for a 100 Continue: net/http's server writes
// that from the goroutine that reads the body, and a 1xx of the handler's
// beside it, with no lock between them.
func (w *streamWriter) Interim(resp *http.Response, names []string) {
	if w.decided || !w.interim {
		return
	}
	if w.order != nil {
		w.order.expect(names)
	}
	writeInterim(w.ResponseWriter, resp)
}

// writeInterim writes the interim response resp through w, which sends it
// at once with the header lines it holds; they are cleared after, for the
// final response's.
func writeInterim(w http.ResponseWriter, resp *http.Response) {
	h := w.Header()
	for name, values := range interimHeader(resp.Header) {
		h[name] = values
	}
	w.WriteHeader(resp.StatusCode)
	clear(h)
}

// handOver puts resp's header lines straight into the ResponseWriter's
// header and returns a copy of resp without them for goproxy, which would
// otherwise copy each line's values into it. resp itself keeps its Header
// (the session's cookies are read from it when the body ends).
func (w *streamWriter) handOver(resp *http.Response, names []string) *http.Response {
	w.names = names
	h := w.Header()
	for name, values := range resp.Header {
		h[name] = values
	}
	out := *resp
	out.Header = nil
	return &out
}

func (w *streamWriter) WriteHeader(code int) {
	if code >= 200 && !w.decided {
		w.decided = true
		h := w.Header()
		cl, err := strconv.ParseInt(h.Get("Content-Length"), 10, 64)
		if err != nil {
			cl = -1
		}
		w.left = cl
		w.stream = streams(cl, h.Get("Content-Type"))
		if w.order != nil {
			w.order.expect(w.names) // the head the server writes next
		}
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *streamWriter) Write(p []byte) (int, error) {
	if !w.decided {
		w.WriteHeader(http.StatusOK)
	}
	n, err := w.ResponseWriter.Write(p)
	if err == nil && w.stream {
		err = w.flush()
	}
	return n, err
}

// flush sends what the server holds of the response to the client now: the
// head, while no body byte has gone.
func (w *streamWriter) flush() error {
	return http.NewResponseController(w.ResponseWriter).Flush()
}

// ReadFrom copies src through the ResponseWriter's own ReadFrom, which
// writes it through the server's buffer with a pooled copy buffer.
func (w *streamWriter) ReadFrom(src io.Reader) (int64, error) {
	if !w.decided {
		w.WriteHeader(http.StatusOK)
	}
	rf, ok := w.ResponseWriter.(io.ReaderFrom)
	if !ok {
		return io.Copy(writerOnly{w}, src)
	}
	w.body = flushBeforeWait{w: w, src: src}
	n, err := rf.ReadFrom(&w.body)
	if n == 0 && err == nil && w.left < 0 {
		// An empty body of unknown length (chunked): the head goes now,
		// so that the server frames it as the origin did and does not
		// say Content-Length: 0 for a response that had none.
		err = w.flush()
	}
	return n, err
}

func (w *streamWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, rw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err == nil {
		hijacked(conn)
	}
	return conn, rw, err
}

func (w *streamWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// streams reports whether a response streams, and so is flushed to the
// client after every write, as httputil.ReverseProxy does: its length is
// unknown (-1), or it is server-sent events.
func streams(contentLength int64, contentType string) bool {
	return contentLength < 0 || eventStream(contentType)
}

// eventStream reports whether a response of contentType is an event
// stream (server-sent events), whose events come as they happen.
func eventStream(contentType string) bool {
	return strings.HasPrefix(contentType, "text/event-stream")
}

// writerOnly hides a writer's ReadFrom from io.Copy.
type writerOnly struct{ io.Writer }

// flushBeforeWait is the body as the ResponseWriter's ReadFrom reads it: it
// flushes what was written before the next read when the response streams,
// and otherwise before a read that may wait, one that follows a short read
// while the body is not complete.
type flushBeforeWait struct {
	w   *streamWriter
	src io.Reader
}

func (f *flushBeforeWait) Read(p []byte) (int, error) {
	if f.w.pending {
		f.w.pending = false
		if err := f.w.flush(); err != nil {
			return 0, err
		}
	}
	n, err := f.src.Read(p)
	f.w.left -= int64(n)
	f.w.pending = err == nil && n > 0 && (f.w.stream || n < len(p) && f.w.left > 0)
	return n, err
}
