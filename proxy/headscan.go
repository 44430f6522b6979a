package proxy

import (
	"bytes"
	"strconv"
	"strings"
	"sync"

	"github.com/sessionproxy/sessionproxy/proxy/wire"
)

// headSlop is what a head may take beyond max_header_bytes before it is
// refused, as net/http allows for its bufio buffer.
const headSlop = 4096

// headQueue holds the header names of HTTP/1.x requests read from a client
// connection until the request's handler takes them: names in order and
// case as the client wrote them, which net/http's parsed Header has lost.
// Its methods are safe for concurrent use; the zero value is empty.
type headQueue struct {
	mu    sync.Mutex // guards heads
	heads [][]string // oldest first
}

// maxHeadsKept bounds the lists a headQueue keeps: requests read ahead of
// their handlers (pipelined) and those whose handler never took them
// (refused by the server, or not proxied).
const maxHeadsKept = 64

// keep adds the names of the next request, or reports false when the
// queue is full: dropping its oldest instead would give every request
// after it the names of the one that follows it.
func (q *headQueue) keep(names []string) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.heads) == maxHeadsKept {
		return false
	}
	q.heads = append(q.heads, names)
	return true
}

// take returns the names of the oldest request not yet taken, nil when
// there is none. Requests of one connection are taken in the order they
// came, one each.
func (q *headQueue) take() []string {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.heads) == 0 {
		return nil
	}
	names := q.heads[0]
	q.drop()
	return names
}

// drop forgets the oldest list, keeping the slice's start (and so its
// capacity: a connection's requests reuse one array). The caller holds mu.
func (q *headQueue) drop() {
	n := copy(q.heads, q.heads[1:])
	q.heads[n] = nil
	q.heads = q.heads[:n]
}

// headScanner follows the HTTP/1.x requests a client sends to the proxy's
// listener, as net/http's server reads them, and keeps each head's header
// names in its queue. It skips bodies by their framing and stops for good
// at a CONNECT (a tunnel follows) or at anything it cannot follow (a head
// over its limit, a malformed length or chunk): the server refuses such a
// request and its connection anyway. It is fed by one goroutine at a time.
type headScanner struct {
	heads headQueue
	limit int // longest head it follows

	head    []byte // the head so far
	skip    int64  // body bytes to pass over before the next state
	chunked bool   // in a chunked body: after skip, a chunk-size line (or trailer) follows
	trailer bool   // in the trailer of a chunked body
	line    []byte // a chunk-size line or trailer line so far
	stopped bool
}

// feed follows p, the next bytes the client sent.
func (s *headScanner) feed(p []byte) {
	for len(p) > 0 && !s.stopped {
		switch {
		case s.skip > 0:
			k := min(int64(len(p)), s.skip)
			s.skip -= k
			p = p[k:]
		case s.chunked:
			p = s.chunkLine(p)
		default:
			p = s.headBytes(p)
		}
	}
}

// headBytes takes bytes of a head; at its end it keeps the names and sets
// up the body.
func (s *headScanner) headBytes(p []byte) []byte {
	if len(s.head) == 0 {
		for len(p) > 0 && (p[0] == '\r' || p[0] == '\n') { // the empty lines a server skips before a request
			p = p[1:]
		}
		if len(p) == 0 {
			return nil
		}
	}
	from := max(0, len(s.head)-3)
	s.head = append(s.head, p...)
	end := -1
	if i := bytes.Index(s.head[from:], []byte("\n\r\n")); i >= 0 {
		end = from + i + 3
	}
	if i := bytes.Index(s.head[from:], []byte("\n\n")); i >= 0 && (end < 0 || from+i+2 < end) {
		end = from + i + 2
	}
	if end < 0 {
		if len(s.head) > s.limit {
			s.stopped = true
		}
		return nil
	}
	rest := p[len(p)-(len(s.head)-end):]
	head := s.head[:end]
	s.head = s.head[:0]
	s.body(head)
	return rest
}

// body notes the head's names and how its body is framed, as net/http's
// server reads them.
func (s *headScanner) body(head []byte) {
	lines := string(head) // one copy: the names are substrings of it
	names := wire.HeadNames(lines)
	if !bytes.HasPrefix(head, []byte("OPTIONS * ")) && !s.heads.keep(names) { // net/http answers that itself: no handler takes its names
		s.stopped = true // a full queue: the requests from here on go without their order
		return
	}
	if bytes.HasPrefix(head, []byte("CONNECT ")) ||
		bytes.Contains(head, []byte("\n ")) || bytes.Contains(head, []byte("\n\t")) {
		// A tunnel follows; or a line folded onto the one before
		// (obs-fold), which net/http takes, and which could hide how the
		// body is framed from fieldValue: the scanner cannot follow.
		s.stopped = true
		return
	}
	requestLine, _, _ := strings.Cut(lines, "\n")
	http10 := strings.HasSuffix(strings.TrimRight(requestLine, "\r"), " HTTP/1.0")
	for _, name := range names {
		switch {
		case strings.EqualFold(name, "Transfer-Encoding") && http10:
			// net/http reads an HTTP/1.0 body by its Content-Length alone.
		case strings.EqualFold(name, "Transfer-Encoding"):
			v := fieldValue(lines, name)
			s.chunked = strings.HasSuffix(strings.ToLower(strings.TrimSpace(v)), "chunked")
		case strings.EqualFold(name, "Content-Length"):
			n, err := strconv.ParseInt(strings.TrimSpace(fieldValue(lines, name)), 10, 64)
			if err != nil || n < 0 {
				s.stopped = true
				return
			}
			s.skip = n
		}
	}
	if s.chunked {
		s.skip = 0
	}
}

// fieldValue returns the value of the first field line named name in head.
func fieldValue(head, name string) string {
	for line := range strings.Lines(head) {
		if len(line) > len(name) && line[len(name)] == ':' && line[:len(name)] == name {
			return strings.TrimRight(line[len(name)+1:], "\r\n")
		}
	}
	return ""
}

// chunkLine takes bytes of a chunk-size or trailer line; a size sets up the
// chunk's data (and its CRLF), size 0 the trailer, an empty trailer line
// the next head.
func (s *headScanner) chunkLine(p []byte) []byte {
	i := bytes.IndexByte(p, '\n')
	if i < 0 {
		s.line = append(s.line, p...)
		if len(s.line) > s.limit {
			s.stopped = true
		}
		return nil
	}
	s.line = append(s.line, p[:i]...)
	line := strings.TrimSpace(string(s.line))
	s.line = s.line[:0]
	switch {
	case s.trailer:
		if line == "" {
			s.chunked, s.trailer = false, false
		}
	case line == "": // the CRLF after a chunk's data
	default:
		size, _, _ := strings.Cut(line, ";")
		n, err := strconv.ParseInt(strings.TrimSpace(size), 16, 64)
		switch {
		case err != nil || n < 0:
			s.stopped = true
		case n == 0:
			s.trailer = true
		default:
			s.skip = n
		}
	}
	return p[i+1:]
}
