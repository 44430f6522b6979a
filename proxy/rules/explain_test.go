package rules_test

import (
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/sessionproxy/sessionproxy/proxy/config"
	"github.com/sessionproxy/sessionproxy/proxy/rules"
)

// TestParseRawResponse: saved responses in the shapes curl -si and hand
// editing produce parse to the final response and its body.
func TestParseRawResponse(t *testing.T) {
	tests := []struct {
		name       string
		in         string
		code       int
		status     string
		proto      string
		header     map[string]string // canonical name -> value; "" = must be absent
		te         []string
		contentLen int64
		body       string
	}{
		{
			name: "crlf", in: "HTTP/1.1 403 Forbidden\r\nServer: cloudflare\r\nContent-Length: 5\r\n\r\nhello",
			code: 403, status: "403 Forbidden", proto: "HTTP/1.1",
			header: map[string]string{"Server": "cloudflare"}, contentLen: 5, body: "hello",
		},
		{
			name: "bare lf", in: "HTTP/1.1 200 OK\nContent-Type: text/html\n\n<p>hi</p>\n",
			code: 200, status: "200 OK", proto: "HTTP/1.1",
			header: map[string]string{"Content-Type": "text/html"}, contentLen: -1, body: "<p>hi</p>\n",
		},
		{
			name: "http2 without reason", in: "HTTP/2 403\r\ncontent-type: text/html\r\ncf-mitigated: challenge\r\n\r\nno",
			code: 403, status: "403 Forbidden", proto: "HTTP/2.0",
			header: map[string]string{"Content-Type": "text/html", "Cf-Mitigated": "challenge"}, contentLen: -1, body: "no",
		},
		{
			name: "http2 with curl's trailing space", in: "HTTP/2 200 \r\ndate: x\r\n\r\n{}",
			code: 200, status: "200 OK", proto: "HTTP/2.0", header: map[string]string{"Date": "x"}, contentLen: -1, body: "{}",
		},
		{
			name: "http3", in: "HTTP/3 429\r\nretry-after: 5\r\n\r\n",
			code: 429, status: "429 Too Many Requests", proto: "HTTP/3.0", header: map[string]string{"Retry-After": "5"}, contentLen: -1,
		},
		{
			name: "unknown code keeps its reason", in: "HTTP/1.1 599 Odd One\r\n\r\n",
			code: 599, status: "599 Odd One", proto: "HTTP/1.1", contentLen: -1,
		},
		{
			name: "100 continue first", in: "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nLocation: /x\r\n\r\nmade",
			code: 201, status: "201 Created", proto: "HTTP/1.1", header: map[string]string{"Location": "/x"}, contentLen: -1, body: "made",
		},
		{
			name: "103 early hints with headers", in: "HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\nHTTP/1.1 200 OK\r\n\r\nok",
			code: 200, status: "200 OK", proto: "HTTP/1.1", header: map[string]string{"Link": ""}, contentLen: -1, body: "ok",
		},
		{
			name: "proxy connect then http2", in: "HTTP/1.1 200 Connection established\r\nProxy-Agent: squid\r\n\r\nHTTP/2 503\r\nserver: nginx\r\n\r\ndown",
			code: 503, status: "503 Service Unavailable", proto: "HTTP/2.0",
			header: map[string]string{"Server": "nginx", "Proxy-Agent": ""}, contentLen: -1, body: "down",
		},
		{
			name: "redirects followed with -L", in: "HTTP/1.1 301 Moved Permanently\nLocation: /b\nContent-Length: 0\n\nHTTP/1.1 302 Found\nLocation: /c\n\nHTTP/1.1 200 OK\n\nfinal",
			code: 200, status: "200 OK", proto: "HTTP/1.1", header: map[string]string{"Location": ""}, contentLen: -1, body: "final",
		},
		{
			name: "chunked raw", in: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n7;name=v\r\n, world\r\n0\r\nX-Trailer: 1\r\n\r\n",
			code: 200, status: "200 OK", proto: "HTTP/1.1", header: map[string]string{"Transfer-Encoding": ""},
			te: []string{"chunked"}, contentLen: -1, body: "hello, world",
		},
		{
			name: "chunked with bare lf", in: "HTTP/1.1 200 OK\nTransfer-Encoding: chunked\n\n3\nabc\n2\nde\n0\n\n",
			code: 200, status: "200 OK", proto: "HTTP/1.1", te: []string{"chunked"}, contentLen: -1, body: "abcde",
		},
		{
			name: "chunked header but body de-chunked by curl", in: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n<html>are you a robot?</html>",
			code: 200, status: "200 OK", proto: "HTTP/1.1", te: []string{"chunked"}, contentLen: -1, body: "<html>are you a robot?</html>",
		},
		{
			name: "chunked hex-looking plain body", in: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\ncafe\r\nmenu",
			code: 200, status: "200 OK", proto: "HTTP/1.1", te: []string{"chunked"}, contentLen: -1, body: "cafe\r\nmenu",
		},
		{
			name: "chunked cut short in a later chunk", in: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n10\r\ndefg",
			code: 200, status: "200 OK", proto: "HTTP/1.1", te: []string{"chunked"}, contentLen: -1, body: "abcdefg",
		},
		{
			name: "gzip, chunked", in: "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n2\r\nab\r\n0\r\n\r\n",
			code: 200, status: "200 OK", proto: "HTTP/1.1", te: []string{"gzip", "chunked"}, contentLen: -1, body: "ab",
		},
		{
			name: "headers only without the empty line", in: "HTTP/1.1 204 No Content\r\nX-A: 1",
			code: 204, status: "204 No Content", proto: "HTTP/1.1", header: map[string]string{"X-A": "1"}, contentLen: -1,
		},
		{
			name: "bom and blank lines first", in: "\xef\xbb\xbf\r\n\nHTTP/1.0 200 OK\r\n\r\nx",
			code: 200, status: "200 OK", proto: "HTTP/1.0", contentLen: -1, body: "x",
		},
		{
			name: "body holding blank lines and a status line", in: "HTTP/1.1 200 OK\r\n\r\nline\r\n\r\nHTTP/1.1 500 x\r\n\r\n",
			code: 200, status: "200 OK", proto: "HTTP/1.1", contentLen: -1, body: "line\r\n\r\nHTTP/1.1 500 x\r\n\r\n",
		},
		{
			name: "binary body kept byte for byte", in: "HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\n\r\n\x1f\x8b\x08\x00\r\n\r\n\x00\xff",
			code: 200, status: "200 OK", proto: "HTTP/1.1", header: map[string]string{"Content-Encoding": "gzip"}, contentLen: -1,
			body: "\x1f\x8b\x08\x00\r\n\r\n\x00\xff",
		},
		{
			name: "folded header line", in: "HTTP/1.1 200 OK\r\nX-Long: a\r\n b\r\n\r\n",
			code: 200, status: "200 OK", proto: "HTTP/1.1", header: map[string]string{"X-Long": "a b"}, contentLen: -1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body, err := rules.ParseRawResponse([]byte(tt.in))
			if err != nil {
				t.Fatalf("ParseRawResponse: %v", err)
			}
			if resp.StatusCode != tt.code || resp.Status != tt.status || resp.Proto != tt.proto {
				t.Errorf("got %d %q %q, want %d %q %q", resp.StatusCode, resp.Status, resp.Proto, tt.code, tt.status, tt.proto)
			}
			for k, v := range tt.header {
				if got, ok := resp.Header[k]; v == "" && ok {
					t.Errorf("header %s = %q, want it absent", k, got)
				} else if v != "" && resp.Header.Get(k) != v {
					t.Errorf("header %s = %q, want %q", k, resp.Header.Get(k), v)
				}
			}
			if !slices.Equal(resp.TransferEncoding, tt.te) {
				t.Errorf("TransferEncoding = %q, want %q", resp.TransferEncoding, tt.te)
			}
			if resp.ContentLength != tt.contentLen {
				t.Errorf("ContentLength = %d, want %d", resp.ContentLength, tt.contentLen)
			}
			if string(body) != tt.body {
				t.Errorf("body = %q, want %q", body, tt.body)
			}
			fromResp, err := io.ReadAll(resp.Body)
			if err != nil || !bytes.Equal(fromResp, body) {
				t.Errorf("resp.Body reads %q (%v), want the returned body %q", fromResp, err, body)
			}
		})
	}
}

// TestParseRawResponseErrors: what is not a saved response gets an error
// naming the problem and where, matched by rules.ErrBadResponse.
func TestParseRawResponseErrors(t *testing.T) {
	tests := []struct {
		name, in string
		want     []string // substrings of the error
	}{
		{"empty", "", []string{"the file is empty"}},
		{"blank lines only", "\r\n\n  \n", []string{"the file is empty"}},
		{"prose", "hello world\n", []string{"line 1", "no HTTP version", `"hello world"`}},
		{"json", `{"status": 200}`, []string{"line 1", "no HTTP version"}},
		{"request, not response", "GET / HTTP/1.1\r\nHost: x\r\n\r\n", []string{"line 1", "no HTTP version", `"GET / HTTP/1.1"`}},
		{"no code", "HTTP/1.1 OK\r\n\r\n", []string{"no 3-digit status code"}},
		{"long code", "HTTP/1.1 2000 OK\r\n\r\n", []string{"no 3-digit status code"}},
		{"code with letters", "HTTP/1.1 2x0 OK\r\n\r\n", []string{"no 3-digit status code"}},
		{"code from 0", "HTTP/1.1 099 Low\r\n\r\n", []string{"no 3-digit status code"}},
		{"version 4", "HTTP/4 200\r\n\r\n", []string{"unknown HTTP version"}},
		{"version 1 without minor", "HTTP/1 200 OK\r\n\r\n", []string{"unknown HTTP version"}},
		{"version garbage", "HTTP/x.y 200 OK\r\n\r\n", []string{"unknown HTTP version"}},
		{"bad header line", "HTTP/1.1 200 OK\r\nthis is not a header\r\n\r\nbody", []string{"headers of the response at line 1", "malformed"}},
		{"space in header name", "HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n", []string{"headers of the response", `header name "Bad Name" is not a valid token`}},
		{"control character in a value", "HTTP/1.1 200 OK\r\nX-A: a\x00b\r\n\r\n", []string{"headers of the response", `malformed MIME header line: "X-A: a\x00b"`}},
		{"garbage after an interim block", "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 abc\r\n\r\n", []string{"line 3", "no 3-digit status code"}},
		{"long status line is cut", "HTTP/1.1 " + strings.Repeat("9", 500), []string{"no 3-digit status code", `..."`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body, err := rules.ParseRawResponse([]byte(tt.in))
			if err == nil {
				t.Fatalf("no error; got status %d body %q", resp.StatusCode, body)
			}
			if resp != nil || body != nil {
				t.Errorf("got a response along with the error %v", err)
			}
			if !errors.Is(err, rules.ErrBadResponse) {
				t.Errorf("error %v does not match rules.ErrBadResponse", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			if len(err.Error()) > 300 {
				t.Errorf("error is %d bytes long: %q", len(err.Error()), err)
			}
		})
	}
}

func exRules(t testing.TB, def rules.Action, specs ...rules.Spec) *rules.Set {
	t.Helper()
	rs, err := rules.Compile(specs, def)
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

func exGzip(t testing.TB, s string) []byte {
	t.Helper()
	var b bytes.Buffer
	w := gzip.NewWriter(&b)
	if _, err := w.Write([]byte(s)); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func exResp(code int, kv ...string) *http.Response {
	h := http.Header{}
	for i := 0; i+1 < len(kv); i += 2 {
		h.Add(kv[i], kv[i+1])
	}
	return &http.Response{StatusCode: code, Header: h}
}

// checkTrace asserts an rules.Explanation is consistent: the rule that decided is
// the first whose conditions all hold, and it is the verdict's rule.
func checkTrace(t *testing.T, e rules.Explanation) {
	t.Helper()
	decided := ""
	reached := true
	for _, r := range e.Rules {
		all := true
		for _, c := range r.Conditions {
			all = all && c.OK
		}
		if all != r.Matched {
			t.Errorf("rule %s: Matched = %v but its conditions say %v", r.Name, r.Matched, all)
		}
		if r.Reached != reached {
			t.Errorf("rule %s: Reached = %v, want %v", r.Name, r.Reached, reached)
		}
		if r.Decided {
			decided = r.Name
		}
		if r.Matched && reached {
			if !r.Decided {
				t.Errorf("rule %s is the first to match but did not decide", r.Name)
			}
			reached = false
		}
	}
	if decided != e.Rule {
		t.Errorf("trace says rule %q decided, the verdict says %q", decided, e.Rule)
	}
}

// TestExplain: the verdict, the body inspection and each rule's conditions
// are reported as the proxy would decide.
func TestExplain(t *testing.T) {
	rs := exRules(t, "",
		rules.Spec{Name: "cf", Header: map[string]string{"Server": "(?i)cloudflare", "cf-mitigated": "challenge"}, Action: rules.ActionRetire},
		rules.Spec{Name: "blocked", Status: []string{"403", "429"}, Action: rules.ActionRetire, Retry: true},
		rules.Spec{Name: "captcha", Status: []string{"2xx"}, Body: "(?i)captcha", Action: rules.ActionRetire, Retry: true},
		rules.Spec{Name: "shop-5xx", Host: "*.example.com", Status: []string{"5xx"}, Action: rules.ActionBad},
		rules.Spec{Name: "down", Error: rules.ErrKindAny, Action: rules.ActionBad, Retry: true},
	)
	captcha := "<html>" + strings.Repeat("x", 100) + "Please solve the CAPTCHA</html>"
	tests := []struct {
		name     string
		rs       *rules.Set
		host     string
		resp     *http.Response
		body     []byte
		limit    int64
		rule     string
		action   rules.Action
		retry    bool
		def      string
		body2    rules.BodyReport
		conds    map[string][]string // rule -> "cond OK|FAIL detail-substring"
		noChecks bool
	}{
		{
			name: "header rule", rs: rs, resp: exResp(403, "Server", "cloudflare", "Cf-Mitigated", "challenge", "Content-Type", "text/html"),
			body: []byte("Just a moment"), rule: "cf", action: rules.ActionRetire,
			body2: rules.BodyReport{Inspected: true, Size: 13, Examined: 13, Decoded: 13},
			conds: map[string][]string{
				"cf":      {`header Server OK "cloudflare" matches "(?i)cloudflare"`, `header Cf-Mitigated OK "challenge" matches`},
				"blocked": {"status OK 403 in 403, 429"},
			},
		},
		{
			name: "header rule fails on one header", rs: rs, resp: exResp(403, "Server", "nginx", "Content-Type", "text/html"),
			rule: "blocked", action: rules.ActionRetire, retry: true,
			body2: rules.BodyReport{Inspected: true},
			conds: map[string][]string{
				"cf": {`header Server FAIL "nginx" does not match "(?i)cloudflare"`, "header Cf-Mitigated FAIL missing"},
			},
		},
		{
			name: "several header values", rs: rs, resp: exResp(200, "Server", "a", "Server", "b", "Content-Type", "text/plain"),
			rule: "", action: rules.ActionGood, def: "no rule matched: status below 400",
			body2: rules.BodyReport{Inspected: true},
			conds: map[string][]string{"cf": {`header Server FAIL none of 2 values matches "(?i)cloudflare"`}},
		},
		{
			name: "gzip body decoded", rs: rs, resp: exResp(200, "Content-Type", "text/html; charset=utf-8", "Content-Encoding", "gzip"),
			body: exGzip(t, captcha), rule: "captcha", action: rules.ActionRetire, retry: true,
			body2: rules.BodyReport{Inspected: true, Decoded: len(captcha)},
			conds: map[string][]string{
				"captcha": {"status OK 200 in 2xx", `body OK "(?i)captcha" matches "CAPTCHA" at byte 123`},
				"cf":      {"header Server FAIL missing"},
			},
		},
		{
			name: "body beyond the limit is not seen", rs: rs, resp: exResp(200, "Content-Type", "text/html"),
			body: []byte(captcha), limit: 50, rule: "", action: rules.ActionGood, def: "no rule matched: status below 400",
			body2: rules.BodyReport{Inspected: true, Size: len(captcha), Examined: 50, Decoded: 50},
			conds: map[string][]string{"captcha": {`body FAIL "(?i)captcha": no match in 50 decoded bytes`}},
		},
		{
			name: "not text-like", rs: rs, resp: exResp(200, "Content-Type", "image/png"),
			body: []byte("captcha"), rule: "", action: rules.ActionGood, def: "no rule matched: status below 400",
			body2: rules.BodyReport{Why: "not text-like (image/png)", Size: 7},
			conds: map[string][]string{"captcha": {"body FAIL not inspected: not text-like (image/png)"}},
		},
		{
			name: "unsupported encoding", rs: rs, resp: exResp(200, "Content-Type", "text/html", "Content-Encoding", "compress"),
			body: []byte("captcha"), rule: "", action: rules.ActionGood, def: "no rule matched: status below 400",
			body2: rules.BodyReport{Why: "unsupported encoding (compress)", Size: 7},
		},
		{
			name: "no body rules", rs: exRules(t, "", rules.Spec{Name: "s", Status: []string{"4xx"}, Action: rules.ActionBad}),
			resp: exResp(404, "Content-Type", "text/html"), body: []byte("captcha"), rule: "s", action: rules.ActionBad,
			body2: rules.BodyReport{Why: "no body rules", Size: 7},
		},
		{
			name: "already decoded by curl --compressed", rs: rs, resp: exResp(200, "Content-Type", "text/html", "Content-Encoding", "gzip"),
			body: []byte(captcha), rule: "captcha", action: rules.ActionRetire, retry: true,
			body2: rules.BodyReport{Inspected: true, Size: len(captcha), Examined: len(captcha), Decoded: len(captcha), Note: "taken as already decoded"},
		},
		{
			name: "corrupt gzip", rs: rs, resp: exResp(200, "Content-Type", "text/html", "Content-Encoding", "gzip"),
			body: []byte("\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff\xff\xff\xff\xff\xff"), rule: "", action: rules.ActionGood, def: "no rule matched: status below 400",
			body2: rules.BodyReport{Inspected: true, Examined: 15, DecodeError: "decode gzip: flate: corrupt input"},
		},
		{
			name: "host glob against a host with port and upper case", rs: rs, host: "WWW.Example.com:8443",
			resp: exResp(502, "Content-Type", "text/html"), rule: "shop-5xx", action: rules.ActionBad,
			body2: rules.BodyReport{Inspected: true},
			conds: map[string][]string{"shop-5xx": {`host OK "www.example.com" matches "*.example.com"`}},
		},
		{
			name: "host glob against no host", rs: rs, host: "",
			resp: exResp(502, "Content-Type", "text/html"), rule: "", action: rules.ActionNone, def: "no rule matched: status 400 or above",
			body2: rules.BodyReport{Inspected: true},
			conds: map[string][]string{
				"shop-5xx": {`host FAIL "" does not match "*.example.com"`, "status OK 502 in 5xx"},
				"down":     {"error FAIL any: matches upstream failures only"},
			},
		},
		{
			name: "default action", rs: exRules(t, rules.ActionBad, rules.Spec{Name: "s", Status: []string{"403"}, Action: rules.ActionRetire}),
			resp: exResp(200), rule: "", action: rules.ActionBad, def: "no rule matched: default_action",
			body2: rules.BodyReport{Why: "no body rules"},
		},
		{
			name: "nil rule set", rs: nil, resp: exResp(429), rule: "", action: rules.ActionNone, def: "no rule matched: status 400 or above",
			body2: rules.BodyReport{Why: "no body rules"},
		},
		{
			name: "nil header", rs: rs, resp: &http.Response{StatusCode: 403}, rule: "blocked", action: rules.ActionRetire, retry: true,
			body2: rules.BodyReport{Inspected: true},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := rules.Explain(tt.rs, tt.host, tt.resp, tt.body, tt.limit)
			if e.Rule != tt.rule || e.Action != tt.action || e.Retry != tt.retry || e.Default != tt.def {
				t.Errorf("verdict %q -> %s retry=%v (%q), want %q -> %s retry=%v (%q)",
					e.Rule, e.Action, e.Retry, e.Default, tt.rule, tt.action, tt.retry, tt.def)
			}
			v := tt.rs.Decide(&rules.Outcome{Host: tt.host, Status: tt.resp.StatusCode, Header: tt.resp.Header, Body: decodedIfInspected(e, tt.resp, tt.body, tt.limit)})
			if name := ruleName(v.Rule); name != e.Rule || v.Action != e.Action || v.Retry != e.Retry {
				t.Errorf("Decide says %q -> %s retry=%v, rules.Explain %q -> %s retry=%v", name, v.Action, v.Retry, e.Rule, e.Action, e.Retry)
			}
			b, w := e.Body, tt.body2
			if b.Inspected != w.Inspected || b.Why != w.Why || b.Size != len(tt.body) {
				t.Errorf("body report %+v, want inspected=%v why=%q size=%d", b, w.Inspected, w.Why, len(tt.body))
			}
			if w.Examined != 0 && b.Examined != w.Examined {
				t.Errorf("examined %d bytes, want %d", b.Examined, w.Examined)
			}
			if w.Decoded != 0 && b.Decoded != w.Decoded {
				t.Errorf("decoded %d bytes, want %d", b.Decoded, w.Decoded)
			}
			if !strings.Contains(b.Note, w.Note) || (w.Note == "") != (b.Note == "") {
				t.Errorf("note %q, want one with %q", b.Note, w.Note)
			}
			if !strings.Contains(b.DecodeError, w.DecodeError) || (w.DecodeError == "") != (b.DecodeError == "") {
				t.Errorf("decode error %q, want one with %q", b.DecodeError, w.DecodeError)
			}
			if len(e.Rules) != len(tt.rs.Rules()) {
				t.Fatalf("%d rule reports for %d rules", len(e.Rules), len(tt.rs.Rules()))
			}
			checkTrace(t, e)
			for rule, wants := range tt.conds {
				var lines []string
				for _, r := range e.Rules {
					if r.Name == rule {
						for _, c := range r.Conditions {
							lines = append(lines, c.Cond+" "+map[bool]string{true: "OK", false: "FAIL"}[c.OK]+" "+c.Detail)
						}
					}
				}
				for _, w := range wants {
					found := false
					for _, l := range lines {
						found = found || strings.HasPrefix(l, w)
					}
					if !found {
						t.Errorf("rule %s: no condition %q in %q", rule, w, lines)
					}
				}
			}
		})
	}
}

// decodedIfInspected is the body the proxy's Decide would get, worked out
// independently of Explain: the first limit bytes decoded when the body is
// inspected (or taken as already decoded, when rules.Explain says so).
func decodedIfInspected(e rules.Explanation, resp *http.Response, body []byte, limit int64) []byte {
	if !e.Body.Inspected {
		return nil
	}
	if limit <= 0 {
		limit = 65536
	}
	if e.Body.Note != "" {
		return body[:min(int64(len(body)), limit)]
	}
	return rules.DecodedBody(resp.Header, body, limit)
}

func ruleName(r *rules.Rule) string {
	if r == nil {
		return ""
	}
	return r.Name
}

// TestExplainSamples: every sample response under testdata/rules parses,
// and its explanation agrees with Decide, on the sample config and on the
// built-in rules.
func TestExplainSamples(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("..", "..", "testdata", "rules", "*.http"))
	if err != nil || len(files) < 10 {
		t.Fatalf("sample responses: %v, %d found", err, len(files))
	}
	cfg, err := config.Load(filepath.Join("..", "..", "testdata", "rules", "rules.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		resp, body, err := rules.ParseRawResponse(data)
		if err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		for _, rs := range []*rules.Set{cfg.Rules, rules.Defaults()} {
			e := rules.Explain(rs, "www.example.com", resp, body, cfg.BodyLimit)
			checkTrace(t, e)
			v := rs.Decide(&rules.Outcome{Host: "www.example.com", Status: resp.StatusCode, Header: resp.Header,
				Body: decodedIfInspected(e, resp, body, cfg.BodyLimit)})
			if ruleName(v.Rule) != e.Rule || v.Action != e.Action {
				t.Errorf("%s: Decide says %q -> %s, rules.Explain %q -> %s", f, ruleName(v.Rule), v.Action, e.Rule, e.Action)
			}
			if e.Body.DecodeError != "" {
				t.Errorf("%s: sample does not decode: %s", f, e.Body.DecodeError)
			}
		}
	}
}

// FuzzParseRawResponse: no input makes rules.ParseRawResponse or rules.Explain panic;
// an error comes alone and matches rules.ErrBadResponse; a response has a valid
// status, a body no longer than the input, and a consistent explanation.
func FuzzParseRawResponse(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("..", "..", "testdata", "rules", "*.http"))
	for _, file := range files {
		if data, err := os.ReadFile(file); err == nil {
			f.Add(data)
		}
	}
	for _, s := range []string{
		"", "HTTP/1.1 200 OK\r\n\r\n", "HTTP/2 403\n\nx", "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffff\r\n", "HTTP/1.1 200 OK\r\nX: \x00\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Type: text/html\r\n\r\n\x1f\x8b\x08\x00",
		"HTTP/1.1 200 OK\r\nContent-Encoding: br, zstd, deflate\r\n\r\n\x28\xb5\x2f\xfd",
	} {
		f.Add([]byte(s))
	}
	rs := exRules(f, "",
		rules.Spec{Name: "h", Header: map[string]string{"Server": "(?i)cloudflare"}, Action: rules.ActionRetire},
		rules.Spec{Name: "s", Status: []string{"403", "5xx"}, Action: rules.ActionBad, Retry: true},
		rules.Spec{Name: "b", Body: "(?i)captcha|robot", Action: rules.ActionRetire},
		rules.Spec{Name: "host", Host: "*.example.com", Action: rules.ActionGood},
	)
	f.Fuzz(func(t *testing.T, data []byte) {
		resp, body, err := rules.ParseRawResponse(data)
		if err != nil {
			if resp != nil || body != nil || !errors.Is(err, rules.ErrBadResponse) {
				t.Fatalf("error %v with response %v, body %q", err, resp, body)
			}
			return
		}
		if resp.StatusCode < 100 || resp.StatusCode > 999 || resp.Header == nil {
			t.Fatalf("status %d, header %v", resp.StatusCode, resp.Header)
		}
		if len(body) > len(data) {
			t.Fatalf("body of %d bytes from %d bytes of input", len(body), len(data))
		}
		for _, host := range []string{"", "a.example.com"} {
			e := rules.Explain(rs, host, resp, body, 64)
			checkTrace(t, e)
			// An encoded start may take up to a zstd block (128 KiB)
			// and a frame header past the limit to decode.
			examined := int64(64)
			if resp.Header.Get("Content-Encoding") != "" {
				examined += 129 << 10
			}
			if e.Body.Decoded > 64 || int64(e.Body.Examined) > examined {
				t.Fatalf("looked at %d/%d bytes with a limit of 64", e.Body.Examined, e.Body.Decoded)
			}
		}
	})
}
