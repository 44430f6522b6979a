package wire

import (
	"bufio"
	"bytes"
	"net/http"
	"strings"
)

// HeadNames returns the header field names of an HTTP/1.x head (a request's
// or a response's), one per field line, in order and with their case: the
// start line, obsolete line folds and what follows the blank line that
// ends the head are skipped. The names are substrings of head.
func HeadNames(head string) []string {
	names := make([]string, 0, strings.Count(head, "\n")) // a line each at most
	first := true
	for len(head) > 0 {
		line := head
		if i := strings.IndexByte(head, '\n'); i >= 0 {
			line, head = head[:i], head[i+1:]
		} else {
			head = ""
		}
		line = strings.TrimSuffix(line, "\r")
		switch {
		case first:
			first = false
		case line == "": // the blank line: the head's end
			return names
		case line[0] == ' ' || line[0] == '\t': // a folded continuation
		default:
			if i := strings.IndexByte(line, ':'); i > 0 {
				names = append(names, line[:i])
			}
		}
	}
	return names
}

// HeadEnd returns the length of the HTTP/1.x head at the start of b, its
// blank line included (CRLF or a bare LF, as net/http reads them), or -1
// when b holds no whole head.
func HeadEnd(b []byte) int {
	end := -1
	if i := bytes.Index(b, []byte("\n\r\n")); i >= 0 {
		end = i + 3
	}
	if i := bytes.Index(b, []byte("\n\n")); i >= 0 && (end < 0 || i+2 < end) {
		end = i + 2
	}
	return end
}

// ResponseNames returns the header names of resp's head as the origin sent
// them, in order and case: one per line of an HTTP/1.x head (HeadNames),
// one per field of an HTTP/2 one (lower case, its pseudo-headers left
// out). It knows them for a response whose Body is still the one RoundTrip
// returned; otherwise nil.
func ResponseNames(resp *http.Response) []string {
	if n, ok := resp.Body.(interface{ headNames() []string }); ok {
		return n.headNames()
	}
	return nil
}

// Interim is told of the interim responses an origin sends before its
// final one, so that they reach the client that is owed them: every 1xx
// but 100 Continue (the answer to the client's own Expect comes from the
// server it talks to) and 101 (final: the connection changes hands).
// names are the response's header names as the origin wrote them
// (ResponseNames). RoundTrip calls it in its own goroutine, before it
// reads on, with the Interim the request's context holds under
// InterimKey; none: interim responses are dropped.
type Interim interface {
	Interim(resp *http.Response, names []string)
}

// InterimKey is the context key of a request's Interim.
type InterimKey struct{}

// passInterim gives resp, an interim response to req, to req's Interim;
// 100 Continue and 101 never. It reports whether resp was handed on.
func passInterim(req *http.Request, resp *http.Response, names []string) (passed bool) {
	if resp.StatusCode == http.StatusContinue || resp.StatusCode == http.StatusSwitchingProtocols {
		return false
	}
	if i, ok := req.Context().Value(InterimKey{}).(Interim); ok {
		i.Interim(resp, names)
		return true
	}
	return false
}

// peekNames returns the header names of the response head at the start of
// br without consuming it, waiting for the head to arrive whole. A head
// that does not fit in br's buffer gives no names but a copy of its start
// (the caller reads the rest of it as it parses); a failure to read gives
// neither (the caller's parse meets it itself).
func peekNames(br *bufio.Reader) (names []string, start []byte) {
	n := max(br.Buffered(), 1)
	for {
		b, err := br.Peek(n)
		if end := HeadEnd(b); end >= 0 {
			return HeadNames(string(b[:end])), nil
		}
		if len(b) >= br.Size() {
			return nil, append([]byte(nil), b...)
		}
		if err != nil {
			return nil, nil
		}
		n = max(len(b)+1, br.Buffered())
	}
}
