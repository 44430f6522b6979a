// Package rules decides a session's fate from what one request came to: an
// ordered list of rules (conditions on the status, host, headers and decoded
// start of the body of a response, or on an upstream failure) compiled into a
// Set, whose Decide gives a Verdict (an Action and whether to retry). It also
// holds what the rules need around them: decoding a body's start
// (DecodePrefix), inspecting a body while it streams (HoldPrefix,
// InspectBody), and explaining a saved response (ParseRawResponse, Explain,
// Report) for the `sessionproxy rules` command.
package rules

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"path"
	"regexp"
	"regexp/syntax"
	"sort"
	"strconv"
	"strings"

	"github.com/sessionproxy/sessionproxy/proxy/sites"
	"github.com/sessionproxy/sessionproxy/proxy/upstream"
)

// Spec is the source form of a rule, as written under `rules` in the
// configuration. Its zero value is not a valid rule: Action is required, and
// so is at least one condition.
type Spec struct {
	Name   string             // shown in X-Session-Rule and stats; default "rules[i]"
	Status []string           // codes ("403") or classes ("4xx"); any may match
	Body   string             // RE2 regex on the decoded start of the body
	Header map[string]string  // header name -> RE2 regex on any of its values; a missing header never matches; "" = present
	Host   string             // path.Match glob on the request host (no port, case-insensitive); "*.example.com" matches a.example.com and a.b.example.com, not example.com
	Error  upstream.ErrorKind // connect | tls | timeout | any: matches upstream failures only
	Action Action             // good | bad | retire | none (required)
	Retry  bool               // send the request again on another session
}

// Rule is one compiled rule. Its conditions are unexported; Spec returns
// them in source form. A Rule is immutable and safe for concurrent use.
type Rule struct {
	Name   string
	Action Action
	Retry  bool

	spec      Spec
	hasStatus bool
	status    [10]uint64 // bit per code 0..639
	host      hostGlob
	headers   []headerCond
	body      *bodyMatcher
	errKind   upstream.ErrorKind // "" = matches responses only
}

type headerCond struct {
	name string // canonical
	re   *regexp.Regexp
}

// HostGlobProblem says what is wrong with a host glob as rules, sites and
// mitm.skip_hosts take it, "" when nothing: a pattern path.Match refuses
// (in the form sites.HostGlob gives it, the form it is compiled in), no
// host at all ("."), or a scheme, path or port, which the host it is
// matched with never has (it would never match).
func HostGlobProblem(glob string) string {
	g := sites.HostGlob(glob)
	if g == "" {
		return "must name a host"
	}
	if _, err := path.Match(g, ""); err != nil {
		return "invalid glob"
	}
	if strings.Contains(glob, "/") {
		return "must be a host or a glob of hosts, without a scheme or path"
	}
	if _, port, err := net.SplitHostPort(glob); err == nil && port != "" {
		return "must be a host or a glob of hosts, without a port (hosts are matched without theirs)"
	}
	return ""
}

// hostGlob matches a host (as NormHost gives it) against a glob (path.Match
// syntax) in the form sites.HostGlob gives it, with fast paths for literal
// hosts and "*.suffix" globs.
type hostGlob struct {
	pattern string // "" = no condition
	literal bool   // pattern has no glob characters
	suffix  string // pattern is "*" + suffix, suffix without glob characters
}

func newHostGlob(p string) hostGlob {
	p = sites.HostGlob(p)
	g := hostGlob{pattern: p}
	switch {
	case !hasGlobMeta(p):
		g.literal = true
	case strings.HasPrefix(p, "*") && !hasGlobMeta(p[1:]):
		g.suffix = p[1:]
	}
	return g
}

// match reports whether the lower-case host matches.
func (g *hostGlob) match(host string) bool {
	switch {
	case g.literal:
		return host == g.pattern
	case g.suffix != "":
		return strings.HasSuffix(host, g.suffix)
	}
	ok, _ := path.Match(g.pattern, host)
	return ok
}

func hasGlobMeta(s string) bool { return strings.ContainsAny(s, `*?[\`) }

// Spec returns the rule in source form (status codes normalized to strings,
// the host glob in lower case).
func (r *Rule) Spec() Spec {
	s := r.spec
	s.Status = append([]string(nil), s.Status...)
	if s.Header != nil {
		h := make(map[string]string, len(s.Header))
		for k, v := range s.Header {
			h[k] = v
		}
		s.Header = h
	}
	return s
}

// HasBody reports whether the rule has a body condition.
func (r *Rule) HasBody() bool { return r.body != nil }

// Set is an ordered list of compiled rules plus the default action. It is
// immutable and safe for concurrent use. A nil *Set has no rules and the
// built-in default action.
type Set struct {
	rules         []*Rule
	defaultAction Action
	hasBody       bool
	hasRetry      bool
}

// Defaults returns the rules used when the configuration has no `rules`
// key: blocked codes 401, 403 and 429 retire the session and retry
// ("blocked-status"), upstream failures are bad and retry ("upstream-error"),
// 5xx are bad ("server-error"). Its default action is the built-in one.
func Defaults() *Set {
	rs, err := Compile(DefaultSpecs(), "")
	if err != nil {
		panic("rules: default rules do not compile: " + err.Error()) // a bug, caught by tests
	}
	return rs
}

// DefaultSpecs returns the source form of the rules of Defaults, a new slice
// on each call.
func DefaultSpecs() []Spec {
	return []Spec{
		// A 429 or 503 saying when to come back is a pause (the proxy
		// pauses the session on the site), not a block.
		{Name: "retry-after", Status: []string{"429", "503"}, Header: map[string]string{"Retry-After": `\d`}, Action: ActionNone, Retry: true},
		{Name: "blocked-status", Status: []string{"401", "403", "429"}, Action: ActionRetire, Retry: true},
		{Name: "upstream-error", Error: ErrKindAny, Action: ActionBad, Retry: true},
		{Name: "server-error", Status: []string{"5xx"}, Action: ActionBad},
	}
}

// Compile compiles rules in source form, with def as the default action
// ("" = the built-in one). Problems are returned all at once as an *Error:
// rule by rule in the order of specs, then the default action's.
func Compile(specs []Spec, def Action) (*Set, error) {
	var e Error
	rs := compile(specs, def, func(i int, field, msg, got string) {
		e.Problems = append(e.Problems, Problem{Rule: i, Field: field, Msg: msg, Got: got})
	})
	if len(def) > 0 && !def.Valid() {
		e.Problems = append(e.Problems, Problem{Rule: -1, Field: "default_action",
			Msg: "must be one of good, bad, retire, none", Got: strconv.Quote(string(def))})
	}
	if len(e.Problems) > 0 {
		return nil, &e
	}
	return rs, nil
}

// reportFunc receives one problem of rule i; field is the key within the rule
// ("status", "header.Server"...) or "" for the rule itself.
type reportFunc func(i int, field, msg, got string)

func compile(specs []Spec, def Action, report reportFunc) *Set {
	rs := &Set{defaultAction: def, rules: make([]*Rule, 0, len(specs))}
	names := make(map[string]int, len(specs))
	for i, s := range specs {
		r := compileRule(i, s, report)
		if first, dup := names[r.Name]; dup {
			report(i, "name", fmt.Sprintf("duplicate rule name (also rules[%d])", first), strconv.Quote(r.Name))
		} else {
			names[r.Name] = i
		}
		rs.rules = append(rs.rules, r)
		rs.hasBody = rs.hasBody || r.body != nil
		rs.hasRetry = rs.hasRetry || r.Retry
	}
	return rs
}

func compileRule(i int, s Spec, report reportFunc) *Rule {
	r := &Rule{Name: s.Name, Action: s.Action, Retry: s.Retry}
	if r.Name == "" {
		r.Name = fmt.Sprintf("rules[%d]", i)
	} else if msg := checkRuleName(s.Name); msg != "" {
		report(i, "name", msg, strconv.Quote(s.Name))
	}
	switch {
	case s.Action == "":
		report(i, "action", "is required (good, bad, retire or none)", "")
	case !s.Action.Valid():
		report(i, "action", "must be one of good, bad, retire, none", strconv.Quote(string(s.Action)))
	}
	for _, st := range s.Status {
		lo, hi, ok := ParseStatus(st)
		if !ok {
			report(i, "status", `must be a status code 100-599 or a class like "4xx"`, strconv.Quote(st))
			continue
		}
		r.hasStatus = true
		for c := lo; c <= hi; c++ {
			r.status[c/64] |= 1 << (c % 64)
		}
	}
	if s.Host != "" {
		if msg := HostGlobProblem(s.Host); msg != "" {
			report(i, "host", msg, strconv.Quote(s.Host))
		} else {
			r.host = newHostGlob(s.Host)
		}
	}
	r.headers = compileHeaders(i, s.Header, report)
	if s.Body != "" {
		re, err := compileRegex(s.Body)
		if err != "" {
			report(i, "body", err, strconv.Quote(s.Body))
		} else {
			r.body = newBodyMatcher(re)
		}
	}
	switch s.Error {
	case "":
	case upstream.KindConnect, upstream.KindTLS, upstream.KindTimeout, ErrKindAny:
		r.errKind = s.Error
		if len(s.Status) > 0 || s.Body != "" || len(s.Header) > 0 {
			report(i, "error", "cannot be combined with status, header or body: no response came", strconv.Quote(string(s.Error)))
		}
	default:
		report(i, "error", "must be one of connect, tls, timeout, any", strconv.Quote(string(s.Error)))
	}
	if len(s.Status) == 0 && s.Body == "" && len(s.Header) == 0 && s.Host == "" && s.Error == "" {
		report(i, "", "a rule needs at least one condition (status, body, header, host or error)", "")
	}
	r.spec = s
	r.spec.Name = r.Name
	r.spec.Host = strings.ToLower(s.Host)
	return r
}

// compileHeaders compiles the header conditions of rule i, in the order of
// their names.
func compileHeaders(i int, header map[string]string, report reportFunc) []headerCond {
	var out []headerCond
	seen := make(map[string]string, len(header))
	for _, name := range sortedKeys(header) {
		expr := header[name]
		field := "header." + name
		if !ValidHeaderName(name) {
			report(i, field, "not a valid header name", strconv.Quote(name))
			continue
		}
		canon := http.CanonicalHeaderKey(name)
		if other, dup := seen[canon]; dup {
			report(i, field, fmt.Sprintf("duplicate header (also %s)", other), strconv.Quote(name))
			continue
		}
		seen[canon] = name
		re, err := compileRegex(expr)
		if err != "" {
			report(i, field, err, strconv.Quote(expr))
			continue
		}
		out = append(out, headerCond{name: canon, re: re})
	}
	return out
}

// checkRuleName returns a problem with a rule name, or "". Names go into a
// response header, so they are printable ASCII without surrounding spaces.
func checkRuleName(n string) string {
	if strings.TrimSpace(n) != n {
		return "must not start or end with a space"
	}
	for i := 0; i < len(n); i++ {
		if n[i] < 0x20 || n[i] > 0x7e {
			return "must be printable ASCII"
		}
	}
	return ""
}

// compileRegex compiles an RE2 regex; it returns a short problem on failure.
func compileRegex(expr string) (*regexp.Regexp, string) {
	re, err := regexp.Compile(expr)
	if err != nil {
		msg := err.Error()
		var se *syntax.Error
		if errors.As(err, &se) {
			msg = string(se.Code)
		}
		return nil, "invalid regex: " + msg
	}
	return re, ""
}

// ParseStatus parses a status condition, a code "403" or a class "4xx",
// into an inclusive range of codes; ok is false for anything else.
func ParseStatus(s string) (lo, hi int, ok bool) {
	if len(s) == 3 && s[0] >= '1' && s[0] <= '5' && (s[1] == 'x' || s[1] == 'X') && (s[2] == 'x' || s[2] == 'X') {
		c := int(s[0]-'0') * 100
		return c, c + 99, true
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 100 || n > 599 || len(s) != 3 {
		return 0, 0, false
	}
	return n, n, true
}

// Rules returns the rules in order. The slice is a copy; the rules are shared.
func (rs *Set) Rules() []*Rule {
	if rs == nil {
		return nil
	}
	return append([]*Rule(nil), rs.rules...)
}

// DefaultAction returns the action used when no rule matches ("" = built in).
func (rs *Set) DefaultAction() Action {
	if rs == nil {
		return ""
	}
	return rs.defaultAction
}

// HasBodyRules reports whether any rule has a body condition.
func (rs *Set) HasBodyRules() bool { return rs != nil && rs.hasBody }

// HasRetryRules reports whether any rule retries.
func (rs *Set) HasRetryRules() bool { return rs != nil && rs.hasRetry }

// Outcome is what the proxy knows about one attempt of a request.
type Outcome struct {
	Host    string             // request host without port (a port is ignored)
	Status  int                // 0 when there was no response
	Header  http.Header        // response headers, canonical keys as net/http makes them (nil when no response)
	Body    []byte             // decoded start of the body; nil when not inspected (body conditions then never match)
	ErrKind upstream.ErrorKind // "" or the kind of the upstream failure (a kind no rule names matches only error: any)
}

// failed reports whether the attempt brought no response.
func (o *Outcome) failed() bool { return o.ErrKind != "" || o.Status == 0 }

// Verdict is the decision of a Set on one Outcome.
type Verdict struct {
	Rule   *Rule // the rule that matched; nil when none did
	Action Action
	Retry  bool
}

// Decide returns the verdict of the first rule whose conditions all hold.
// When none holds: for an upstream failure (ErrKind set, or Status 0), bad,
// since a failed upstream is still the session's fault; for a response, the
// default action if set, otherwise good when its status is below 400
// (blocked codes 401, 403 and 429 are all above), else none. A rule with an
// error condition matches only failures; a rule without one only
// responses. Decide does not allocate (unless o.Host has upper-case letters
// and a rule has a complex host glob).
func (rs *Set) Decide(o *Outcome) Verdict {
	failed := o.failed()
	host := ""
	if rs != nil {
		host = NormHost(o.Host)
		for _, r := range rs.rules {
			if failed {
				if r.errKind == "" || (r.errKind != ErrKindAny && r.errKind != o.ErrKind) {
					continue
				}
				if r.host.pattern != "" && !r.host.match(host) {
					continue
				}
				return Verdict{Rule: r, Action: r.Action, Retry: r.Retry}
			}
			if r.errKind != "" || !r.headMatch(host, o.Status, o.Header) {
				continue
			}
			if r.body != nil && (o.Body == nil || !r.body.Match(o.Body)) {
				continue
			}
			return Verdict{Rule: r, Action: r.Action, Retry: r.Retry}
		}
		if rs.defaultAction != "" && !failed {
			return Verdict{Action: rs.defaultAction}
		}
	}
	switch {
	case failed:
		return Verdict{Action: ActionBad}
	case o.Status < 400:
		return Verdict{Action: ActionGood}
	}
	return Verdict{Action: ActionNone}
}

// headMatch reports whether the status, host and header conditions hold
// (the body is not looked at). host is lower case without port.
func (r *Rule) headMatch(host string, status int, h http.Header) bool {
	if r.hasStatus && (status < 0 || status >= 640 || r.status[status/64]&(1<<(status%64)) == 0) {
		return false
	}
	if r.host.pattern != "" && !r.host.match(host) {
		return false
	}
	for i := range r.headers {
		c := &r.headers[i]
		vals := h[c.name]
		ok := false
		for _, v := range vals {
			if c.re.MatchString(v) {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	return true
}

// NeedsBody reports whether the decision on a response with this host,
// status and header may depend on its body: the first rule whose status,
// host and header conditions hold has a body condition. It is false when the
// body cannot be inspected (content type not text-like, see IsTextLike, or a
// Content-Encoding DecodePrefix does not know), since body conditions then
// never match, and for a 101, whose "body" is the switched connection.
func (rs *Set) NeedsBody(host string, status int, header http.Header) bool {
	if !rs.HasBodyRules() || status == http.StatusSwitchingProtocols || !inspectable(header) {
		return false
	}
	host = NormHost(host)
	for _, r := range rs.rules {
		if r.errKind != "" || !r.headMatch(host, status, header) {
			continue
		}
		return r.body != nil
	}
	return false
}

// HeadDecides reports whether a rule without a body condition holds for a
// response with this host, status and header: Decide then names a rule
// whatever the body (that one, or a body rule before it that matches), so
// the proxy holds the start of the body and names the rule in the response's
// headers. When false, only a body rule can match.
func (rs *Set) HeadDecides(host string, status int, header http.Header) bool {
	if rs == nil {
		return false
	}
	host = NormHost(host)
	for _, r := range rs.rules {
		if r.errKind == "" && r.body == nil && r.headMatch(host, status, header) {
			return true
		}
	}
	return false
}

// MayRetry reports whether a rule with retry could decide on a response with
// this host, status and header, whatever its body. When true, the proxy
// holds the start of the body (up to body_limit) until Decide has its
// verdict; when false, it may stream the body to the client at once.
func (rs *Set) MayRetry(host string, status int, header http.Header) bool {
	if !rs.HasRetryRules() {
		return false
	}
	host = NormHost(host)
	bodyOK := inspectable(header)
	for _, r := range rs.rules {
		if r.errKind != "" || !r.headMatch(host, status, header) {
			continue
		}
		if r.body == nil {
			return r.Retry // this rule decides whatever the body
		}
		if bodyOK && r.Retry {
			return true
		}
	}
	return false
}

// inspectable reports whether body conditions can see this response's body.
func inspectable(h http.Header) bool {
	if !IsTextLike(h.Get("Content-Type")) {
		return false
	}
	for _, ce := range h["Content-Encoding"] {
		if !supportedEncodings(ce) {
			return false
		}
	}
	return true
}

// NormHost returns host as host conditions see it, the form sites.Host
// gives: lower case, without a port, the brackets of an IP literal and
// trailing dots. It allocates only when host has upper-case letters.
func NormHost(h string) string { return sites.Host(h) }

// ValidHeaderName reports whether s is an HTTP token (RFC 9110), as header
// names are.
func ValidHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
