package rules

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/textproto"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// ErrBadResponse is matched (with errors.Is) by every error of
// ParseRawResponse.
var ErrBadResponse = errors.New("rules: not a saved HTTP response")

// ResponseError is the error of ParseRawResponse: what makes the data not a
// saved HTTP response, and where. errors.Is(err, ErrBadResponse) holds for it.
type ResponseError struct {
	Problem string // "the file is empty", or the problem and its line: "line 3: no 3-digit status code in ..."
}

// Error returns ErrBadResponse's message followed by the problem.
func (e *ResponseError) Error() string { return ErrBadResponse.Error() + ": " + e.Problem }

// Is reports whether target is ErrBadResponse.
func (e *ResponseError) Is(target error) bool { return target == ErrBadResponse }

// ParseRawResponse parses a saved HTTP response as `curl -si` writes it: one
// or more header blocks, each a status line and header lines ended by an
// empty line, then the body. Interim blocks are skipped: 1xx responses
// (100 Continue, 103 Early Hints) and a proxy's answer to CONNECT
// ("HTTP/1.1 200 Connection established") before the real response; the
// last block that is followed by something other than a status line is the
// response.
//
// Status lines may be HTTP/1.x ("HTTP/1.1 403 Forbidden") or HTTP/2 and 3
// ("HTTP/2 403", no reason phrase); lines may end in CRLF or a bare LF
// (files edited by hand). Header names are canonicalized as net/http does,
// and Transfer-Encoding moves from Header to TransferEncoding, as in a
// response from http.Transport.
//
// The body is everything after the response's header block. With
// Transfer-Encoding: chunked it is de-chunked when it is in chunked form
// (saved with `curl --raw`); a body that does not start with a chunk-size
// line is taken as already de-chunked (curl without --raw removes the
// framing but keeps the header), and a chunked body cut short gives the
// chunks found so far. Content-Encoding is NOT undone: the body is returned
// as saved (see Explain). The response's Body reads the same bytes.
//
// Errors are *ResponseError, naming the problem and its line;
// ParseRawResponse never panics, whatever the input.
func ParseRawResponse(data []byte) (*http.Response, []byte, error) {
	rest := bytes.TrimPrefix(data, []byte("\xef\xbb\xbf")) // a BOM from an editor
	line := 1
	for len(rest) > 0 && (rest[0] == '\n' || (rest[0] == '\r' && len(rest) > 1 && rest[1] == '\n')) {
		rest = rest[bytes.IndexByte(rest, '\n')+1:] // blank lines before the first status line
		line++
	}
	if len(bytes.TrimSpace(rest)) == 0 {
		return nil, nil, &ResponseError{Problem: "the file is empty"}
	}
	for {
		first, _ := nextLine(rest)
		st, err := parseStatusLine(first)
		if err != nil {
			return nil, nil, &ResponseError{Problem: fmt.Sprintf("line %d: %v", line, err)}
		}
		head, body, n := splitHead(rest)
		if len(body) > 0 && looksLikeStatusLine(body) {
			rest, line = body, line+n // an interim block: the response follows
			continue
		}
		hdr, err := readHeader(head)
		if err != nil {
			return nil, nil, &ResponseError{Problem: fmt.Sprintf("headers of the response at line %d: %v", line, err)}
		}
		resp := &http.Response{
			Status:        st.status,
			StatusCode:    st.code,
			Proto:         st.proto,
			ProtoMajor:    st.major,
			ProtoMinor:    st.minor,
			Header:        hdr,
			ContentLength: -1,
		}
		if te := hdr.Values("Transfer-Encoding"); len(te) > 0 {
			for _, v := range te {
				for _, t := range strings.Split(v, ",") {
					if t = strings.ToLower(strings.TrimSpace(t)); t != "" {
						resp.TransferEncoding = append(resp.TransferEncoding, t)
					}
				}
			}
			hdr.Del("Transfer-Encoding")
		}
		if n := len(resp.TransferEncoding); n > 0 && resp.TransferEncoding[n-1] == "chunked" {
			body = dechunk(body)
		} else if cl, err := strconv.ParseInt(strings.TrimSpace(hdr.Get("Content-Length")), 10, 64); err == nil && cl >= 0 {
			resp.ContentLength = cl
		}
		resp.Body = io.NopCloser(bytes.NewReader(body))
		return resp, body, nil
	}
}

// statusLine is a parsed status line.
type statusLine struct {
	proto        string // "HTTP/1.1", "HTTP/2.0"
	major, minor int
	code         int
	status       string // "403 Forbidden"
}

// parseStatusLine parses "HTTP/1.1 200 OK", "HTTP/2 403", "HTTP/2.0 200".
func parseStatusLine(l []byte) (statusLine, error) {
	var st statusLine
	s := string(l)
	show := s
	if len(show) > 60 {
		show = show[:60] + "..."
	}
	bad := func(what string) (statusLine, error) {
		return st, fmt.Errorf("%s in status line %q (want e.g. \"HTTP/1.1 200 OK\" or \"HTTP/2 403\")", what, show)
	}
	if !strings.HasPrefix(s, "HTTP/") {
		return bad("no HTTP version")
	}
	ver, after, _ := strings.Cut(s[len("HTTP/"):], " ")
	majS, minS, dotted := strings.Cut(ver, ".")
	if len(majS) != 1 || majS[0] < '1' || majS[0] > '3' || (dotted && (len(minS) != 1 || minS[0] < '0' || minS[0] > '9')) {
		return bad("unknown HTTP version")
	}
	st.major = int(majS[0] - '0')
	if dotted {
		st.minor = int(minS[0] - '0')
	}
	if st.major == 1 && !dotted {
		return bad("unknown HTTP version")
	}
	st.proto = fmt.Sprintf("HTTP/%d.%d", st.major, st.minor)
	codeS, reason, _ := strings.Cut(strings.TrimLeft(after, " "), " ")
	if len(codeS) != 3 || codeS[0] < '1' || codeS[0] > '9' || codeS[1] < '0' || codeS[1] > '9' || codeS[2] < '0' || codeS[2] > '9' {
		return bad("no 3-digit status code")
	}
	st.code, _ = strconv.Atoi(codeS)
	reason = strings.TrimSpace(reason)
	if reason == "" {
		reason = http.StatusText(st.code)
	}
	st.status = strings.TrimSpace(codeS + " " + reason)
	return st, nil
}

// looksLikeStatusLine reports whether b starts with what can only be another
// header block: "HTTP/<digit>" and a space or a dot.
func looksLikeStatusLine(b []byte) bool {
	return len(b) > 6 && bytes.HasPrefix(b, []byte("HTTP/")) && b[5] >= '1' && b[5] <= '3' && (b[6] == ' ' || b[6] == '.')
}

// nextLine returns the first line of b without its line ending, and the
// rest after it.
func nextLine(b []byte) (line, rest []byte) {
	i := bytes.IndexByte(b, '\n')
	if i < 0 {
		return bytes.TrimSuffix(b, []byte("\r")), nil
	}
	return bytes.TrimSuffix(b[:i], []byte("\r")), b[i+1:]
}

// splitHead splits b at the first empty line: the header block (status line
// included, without the empty line), the rest, and how many lines the block
// and the empty line take. Without an empty line all of b is the block.
func splitHead(b []byte) (head, rest []byte, lines int) {
	off := 0
	for off < len(b) {
		l, _ := nextLine(b[off:])
		end := len(b)
		if i := bytes.IndexByte(b[off:], '\n'); i >= 0 {
			end = off + i + 1
		}
		lines++
		if len(l) == 0 {
			return b[:off], b[end:], lines
		}
		off = end
	}
	return b, nil, lines
}

// readHeader parses the header lines of head (its first line is the status
// line), in CRLF or LF form.
func readHeader(head []byte) (http.Header, error) {
	_, fields := nextLine(head)
	// textproto accepts both line endings; it needs the closing empty line.
	buf := make([]byte, 0, len(fields)+4)
	buf = append(buf, fields...)
	if len(buf) > 0 && buf[len(buf)-1] != '\n' {
		buf = append(buf, "\r\n"...)
	}
	buf = append(buf, "\r\n"...)
	// It rejects control characters in values, not every bad name.
	mh, err := textproto.NewReader(bufio.NewReader(bytes.NewReader(buf))).ReadMIMEHeader()
	if err != nil {
		return nil, err
	}
	for _, k := range slices.Sorted(maps.Keys(mh)) {
		if !ValidHeaderName(k) {
			return nil, fmt.Errorf("header name %q is not a valid token", ClipText(k, 60))
		}
	}
	return http.Header(mh), nil
}

// dechunk removes chunked framing (size lines ending in CRLF or LF, chunk
// extensions, trailers) from b. A body that does not start with a whole
// first chunk (a size line, its data and a line end) is returned as is:
// curl already removed the framing. A body cut short later gives the chunks
// found so far, and so does a malformed size line after the first chunk.
func dechunk(b []byte) []byte {
	var out []byte
	for first := true; ; first = false {
		l, rest := nextLine(b)
		size, ok := parseChunkSize(l)
		if !ok || (rest == nil && !bytes.HasSuffix(b, []byte("\n"))) {
			if first {
				return b
			}
			return out // a malformed size line, or one cut short
		}
		if size == 0 {
			return out // trailers, if any, are not part of the body
		}
		if size > uint64(len(rest)) {
			if first {
				return b
			}
			return append(out, rest...) // cut short inside a chunk
		}
		data, after := rest[:size], rest[size:]
		switch {
		case bytes.HasPrefix(after, []byte("\r\n")):
			after = after[2:]
		case bytes.HasPrefix(after, []byte("\n")):
			after = after[1:]
		case len(after) == 0:
		default:
			if first {
				return b // the data does not end where the size says
			}
			return out
		}
		out = append(out, data...)
		if len(after) == 0 {
			return out
		}
		b = after
	}
}

// parseChunkSize parses a chunk-size line: hex digits, then optional
// whitespace and ";extensions".
func parseChunkSize(l []byte) (uint64, bool) {
	s := string(l)
	if i := strings.IndexByte(s, ';'); i >= 0 {
		s = s[:i]
	}
	s = strings.TrimRight(s, " \t")
	if s == "" || len(s) > 15 {
		return 0, false
	}
	n, err := strconv.ParseUint(s, 16, 64)
	return n, err == nil
}

// Explanation says what a Set makes of one response, and why: the
// verdict and, for every rule in order, which of its conditions hold. Its
// zero value is an empty explanation.
type Explanation struct {
	Host             string       `json:"host"` // as given to Explain (conditions see it lower-cased, without port)
	Status           int          `json:"status"`
	StatusText       string       `json:"statusText"` // "403 Forbidden"
	Proto            string       `json:"proto"`
	ContentType      string       `json:"contentType,omitempty"`
	ContentEncoding  string       `json:"contentEncoding,omitempty"`
	TransferEncoding string       `json:"transferEncoding,omitempty"` // as received, e.g. "chunked" (the body is de-chunked)
	Body             BodyReport   `json:"body"`
	Rule             string       `json:"rule,omitempty"` // the rule that decided; "" when none did
	Action           Action       `json:"action"`
	Retry            bool         `json:"retry"`
	Default          string       `json:"default,omitempty"` // when no rule decided, why this action
	Rules            []RuleReport `json:"rules"`
}

// BodyReport says whether body conditions could see the body, and what
// they saw.
type BodyReport struct {
	Inspected   bool   `json:"inspected"`
	Why         string `json:"why,omitempty"` // why not inspected: "no body rules", "not text-like (image/png)", "unsupported encoding (compress)"
	Size        int    `json:"size"`          // body bytes in the file (after de-chunking)
	Examined    int    `json:"examined"`      // of those, the ones decoded (at most the body limit)
	Decoded     int    `json:"decoded"`       // decoded bytes the body conditions saw (at most the body limit)
	DecodeError string `json:"decodeError,omitempty"`
	Note        string `json:"note,omitempty"` // e.g. the body was taken as already decoded
}

// RuleReport is one rule's part in an Explanation.
type RuleReport struct {
	Name       string       `json:"name"`
	Matched    bool         `json:"matched"` // all its conditions hold
	Decided    bool         `json:"decided"` // it is the rule that decided (the first that matched)
	Reached    bool         `json:"reached"` // no earlier rule matched
	Conditions []CondReport `json:"conditions"`
}

// CondReport is one condition of a rule and whether it holds on the
// response.
type CondReport struct {
	Cond   string `json:"cond"` // "status", "host", "header Server", "body", "error"
	OK     bool   `json:"ok"`
	Detail string `json:"detail"` // human-readable: what was compared with what
}

// DefaultBodyLimit is how many bytes of a body's start body conditions see
// by default (the body_limit key's default).
const DefaultBodyLimit = 65536

// Explain reports what rs decides on resp (a response to a request for
// host; "" is a valid host, it matches only host globs that match "") and
// why. body is the body as received (Content-Encoding not undone, as from
// ParseRawResponse); its start is decoded (see DecodePrefix) to at most
// bodyLimit bytes for body conditions, as the proxy does (see HoldPrefix); bodyLimit <= 0 means
// the default, 65536. A body that fails to decode but looks like text is
// taken as already decoded (curl --compressed keeps Content-Encoding but
// saves the decoded body), and BodyReport.Note says so.
//
// The verdict is rs.Decide's on the same Outcome; the per-rule reports
// evaluate every condition of every rule, also after the deciding one.
// Explain is safe for concurrent use; it does not read resp.Body.
func Explain(rs *Set, host string, resp *http.Response, body []byte, bodyLimit int64) Explanation {
	if bodyLimit <= 0 {
		bodyLimit = DefaultBodyLimit
	}
	h := resp.Header
	if h == nil {
		h = http.Header{}
	}
	e := Explanation{
		Host:             host,
		Status:           resp.StatusCode,
		StatusText:       resp.Status,
		Proto:            resp.Proto,
		ContentType:      h.Get("Content-Type"),
		ContentEncoding:  strings.Join(h["Content-Encoding"], ", "),
		TransferEncoding: strings.Join(resp.TransferEncoding, ", "),
		Body:             BodyReport{Size: len(body)},
	}
	if e.StatusText == "" {
		e.StatusText = strings.TrimSpace(strconv.Itoa(resp.StatusCode) + " " + http.StatusText(resp.StatusCode))
	}
	decoded := e.inspect(rs, h, body, bodyLimit)

	o := &Outcome{Host: host, Status: resp.StatusCode, Header: h, Body: decoded}
	if o.Status == 0 {
		o.Status = -1 // a response, whatever it says: Decide reads 0 as "no response"
	}
	v := rs.Decide(o)
	e.Action, e.Retry = v.Action, v.Retry
	switch {
	case v.Rule != nil:
		e.Rule = v.Rule.Name
	case rs.DefaultAction() != "":
		e.Default = "no rule matched: default_action"
	case resp.StatusCode < 400:
		e.Default = "no rule matched: status below 400"
	default:
		e.Default = "no rule matched: status 400 or above"
	}

	nh := NormHost(host)
	reached := true
	for _, r := range rs.Rules() {
		rr := RuleReport{Name: r.Name, Reached: reached, Conditions: r.explain(nh, resp.StatusCode, h, decoded, e.Body.Why)}
		rr.Matched = true
		for _, c := range rr.Conditions {
			rr.Matched = rr.Matched && c.OK
		}
		if rr.Matched && reached {
			rr.Decided = r == v.Rule
			reached = false
		}
		e.Rules = append(e.Rules, rr)
	}
	return e
}

// inspect fills e.Body and returns the decoded body the conditions see (nil
// when not inspected), as the proxy would: the body's start decoded, up to
// bodyLimit bytes (see HoldPrefix).
func (e *Explanation) inspect(rs *Set, h http.Header, body []byte, limit int64) []byte {
	switch {
	case !rs.HasBodyRules():
		e.Body.Why = "no body rules"
	case !IsTextLike(h.Get("Content-Type")):
		e.Body.Why = fmt.Sprintf("not text-like (%s)", ClipText(h.Get("Content-Type"), 60))
	case !inspectable(h):
		e.Body.Why = fmt.Sprintf("unsupported encoding (%s)", ClipText(e.ContentEncoding, 60))
	}
	if e.Body.Why != "" {
		return nil
	}
	// As HoldPrefix reads it: limit bytes, and more only if they decode
	// to fewer than limit.
	raw := body[:min(int64(len(body)), limit)]
	decoded, err := DecodePrefix(e.ContentEncoding, raw, int(limit))
	if max := rawLimit(h, limit); int64(len(decoded)) < limit && int64(len(body)) > limit && max > limit {
		raw = body[:min(int64(len(body)), max)]
		decoded, err = DecodePrefix(e.ContentEncoding, raw, int(limit))
	}
	if err != nil && looksLikeText(raw) {
		decoded = raw[:min(int64(len(raw)), limit)]
		e.Body.Note = fmt.Sprintf("the body is not %s but looks like text: taken as already decoded (saved with curl --compressed?)", ClipText(e.ContentEncoding, 60))
	} else if err != nil {
		e.Body.DecodeError = err.Error()
	}
	if decoded == nil {
		decoded = []byte{}
	}
	e.Body.Inspected = true
	e.Body.Examined = len(raw)
	e.Body.Decoded = len(decoded)
	return decoded
}

// looksLikeText reports whether b has no control bytes but tab, CR, LF and
// FF, and is UTF-8 (a rune cut at the end allowed).
func looksLikeText(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if (c < 0x20 && c != '\t' && c != '\n' && c != '\r' && c != '\f') || c == 0x7f {
			return false
		}
	}
	for cut := 0; cut < utf8.UTFMax && cut < len(b); cut++ {
		if utf8.Valid(b[:len(b)-cut]) {
			return true
		}
	}
	return false
}

// explain evaluates each of the rule's conditions on a response separately,
// in the order status, host, headers (by name), body, error. host is lower
// case without port; body is nil when not inspected, and why says why not.
func (r *Rule) explain(host string, status int, h http.Header, body []byte, why string) []CondReport {
	var out []CondReport
	if r.hasStatus {
		ok := status >= 0 && status < 640 && r.status[status/64]&(1<<(status%64)) != 0
		out = append(out, CondReport{Cond: "status", OK: ok,
			Detail: fmt.Sprintf("%d %s %s", status, pick(ok, "in", "not in"), strings.Join(r.spec.Status, ", "))})
	}
	if r.host.pattern != "" {
		ok := r.host.match(host)
		out = append(out, CondReport{Cond: "host", OK: ok,
			Detail: fmt.Sprintf("%q %s %q", host, pick(ok, "matches", "does not match"), r.host.pattern)})
	}
	for _, c := range r.headers {
		vals := h[c.name]
		cr := CondReport{Cond: "header " + c.name}
		switch {
		case len(vals) == 0:
			cr.Detail = "missing"
		default:
			cr.Detail = fmt.Sprintf("%q does not match %q", ClipText(vals[0], 60), c.re.String())
			if len(vals) > 1 {
				cr.Detail = fmt.Sprintf("none of %d values matches %q", len(vals), c.re.String())
			}
			for _, v := range vals {
				if c.re.MatchString(v) {
					cr.OK, cr.Detail = true, fmt.Sprintf("%q matches %q", ClipText(v, 60), c.re.String())
					break
				}
			}
		}
		out = append(out, cr)
	}
	if r.body != nil {
		cr := CondReport{Cond: "body"}
		switch loc := r.body.re.FindIndex(body); {
		case body == nil:
			cr.Detail = "not inspected: " + why
		case loc == nil:
			cr.Detail = fmt.Sprintf("%q: no match in %d decoded bytes", r.body.re.String(), len(body))
		default:
			cr.OK = true
			cr.Detail = fmt.Sprintf("%q matches %q at byte %d", r.body.re.String(), ClipText(string(body[loc[0]:loc[1]]), 60), loc[0])
		}
		out = append(out, cr)
	}
	if r.errKind != "" {
		out = append(out, CondReport{Cond: "error", Detail: fmt.Sprintf("%s: matches upstream failures only, not responses", r.errKind)})
	}
	return out
}

func pick(ok bool, yes, no string) string {
	if ok {
		return yes
	}
	return no
}

// ClipText shortens s to at most n bytes (and valid UTF-8), marking the
// cut: for values quoted in messages and problems.
func ClipText(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[:n]
	for len(s) > 0 && !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s + "..."
}
