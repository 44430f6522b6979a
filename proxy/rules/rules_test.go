package rules

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/sessionproxy/sessionproxy/proxy/upstream"
	"github.com/sessionproxy/sessionproxy/sessionpool"
)

func mustRules(t testing.TB, def Action, specs ...Spec) *Set {
	t.Helper()
	rs, err := Compile(specs, def)
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

func hdr(kv ...string) http.Header {
	h := http.Header{}
	for i := 0; i+1 < len(kv); i += 2 {
		h.Add(kv[i], kv[i+1])
	}
	return h
}

// TestRuleConditions: each condition kind alone and combined, matching and
// not matching.
func TestRuleConditions(t *testing.T) {
	tests := []struct {
		name  string
		spec  Spec
		o     Outcome
		match bool
	}{
		{"status code", Spec{Status: []string{"403"}}, Outcome{Status: 403}, true},
		{"status code other", Spec{Status: []string{"403"}}, Outcome{Status: 404}, false},
		{"status list", Spec{Status: []string{"401", "429"}}, Outcome{Status: 429}, true},
		{"status class low", Spec{Status: []string{"5xx"}}, Outcome{Status: 500}, true},
		{"status class high", Spec{Status: []string{"5XX"}}, Outcome{Status: 599}, true},
		{"status class outside", Spec{Status: []string{"5xx"}}, Outcome{Status: 499}, false},
		{"status class 1xx", Spec{Status: []string{"1xx"}}, Outcome{Status: 101}, true},
		{"status odd code", Spec{Status: []string{"4xx"}}, Outcome{Status: 999}, false},
		{"status negative", Spec{Status: []string{"4xx"}}, Outcome{Status: -1}, false},
		{"host literal", Spec{Host: "a.example"}, Outcome{Host: "a.example", Status: 200}, true},
		{"host literal other", Spec{Host: "a.example"}, Outcome{Host: "b.example", Status: 200}, false},
		{"host case", Spec{Host: "A.Example"}, Outcome{Host: "a.EXAMPLE", Status: 200}, true},
		{"host port ignored", Spec{Host: "a.example"}, Outcome{Host: "a.example:8443", Status: 200}, true},
		{"host ipv6 port", Spec{Host: "::1"}, Outcome{Host: "[::1]:443", Status: 200}, true},
		{"host wildcard sub", Spec{Host: "*.example.com"}, Outcome{Host: "sub.example.com", Status: 200}, true},
		{"host wildcard deep", Spec{Host: "*.example.com"}, Outcome{Host: "a.b.example.com", Status: 200}, true},
		{"host wildcard apex", Spec{Host: "*.example.com"}, Outcome{Host: "example.com", Status: 200}, false},
		{"host wildcard lookalike", Spec{Host: "*.example.com"}, Outcome{Host: "badexample.com", Status: 200}, false},
		{"host glob class", Spec{Host: "shop[0-9].example"}, Outcome{Host: "shop7.example", Status: 200}, true},
		{"host glob class upper", Spec{Host: "shop[0-9].example"}, Outcome{Host: "SHOP7.example", Status: 200}, true},
		{"host glob class miss", Spec{Host: "shop[0-9].example"}, Outcome{Host: "shopx.example", Status: 200}, false},
		{"host glob ?", Spec{Host: "a?.example"}, Outcome{Host: "ab.example", Status: 200}, true},
		{"header", Spec{Header: map[string]string{"Server": "(?i)cloudflare"}}, Outcome{Status: 403, Header: hdr("Server", "CloudFlare")}, true},
		{"header lower-case name", Spec{Header: map[string]string{"cf-mitigated": "^challenge$"}}, Outcome{Status: 403, Header: hdr("Cf-Mitigated", "challenge")}, true},
		{"header value miss", Spec{Header: map[string]string{"Server": "cloudflare"}}, Outcome{Status: 403, Header: hdr("Server", "nginx")}, false},
		{"header missing", Spec{Header: map[string]string{"Server": ".*"}}, Outcome{Status: 403, Header: hdr("X", "y")}, false},
		{"header missing nil", Spec{Header: map[string]string{"Server": ""}}, Outcome{Status: 403}, false},
		{"header empty regex = present", Spec{Header: map[string]string{"Server": ""}}, Outcome{Status: 403, Header: hdr("Server", "")}, true},
		{"header second value", Spec{Header: map[string]string{"Via": "squid"}}, Outcome{Status: 200, Header: hdr("Via", "a", "Via", "1.1 squid")}, true},
		{"headers all needed", Spec{Header: map[string]string{"A": "1", "B": "2"}}, Outcome{Status: 200, Header: hdr("A", "1", "B", "3")}, false},
		{"headers all hold", Spec{Header: map[string]string{"A": "1", "B": "2"}}, Outcome{Status: 200, Header: hdr("A", "1", "B", "2")}, true},
		{"body", Spec{Body: "(?i)captcha"}, Outcome{Status: 200, Body: []byte("<h1>CAPTCHA</h1>")}, true},
		{"body miss", Spec{Body: "(?i)captcha"}, Outcome{Status: 200, Body: []byte("<h1>hello</h1>")}, false},
		{"body not inspected", Spec{Body: "^"}, Outcome{Status: 200}, false},
		{"body inspected empty", Spec{Body: "^$"}, Outcome{Status: 200, Body: []byte{}}, true},
		{"error any connect", Spec{Error: "any"}, Outcome{ErrKind: "connect"}, true},
		{"error any unknown kind", Spec{Error: "any"}, Outcome{ErrKind: "reset"}, true},
		{"error any no response", Spec{Error: "any"}, Outcome{}, true},
		{"error kind", Spec{Error: "tls"}, Outcome{ErrKind: "tls"}, true},
		{"error other kind", Spec{Error: "tls"}, Outcome{ErrKind: "timeout"}, false},
		{"error kind vs response", Spec{Error: "any"}, Outcome{Status: 502}, false},
		{"error with host", Spec{Error: "timeout", Host: "*.slow"}, Outcome{Host: "a.slow", ErrKind: "timeout"}, true},
		{"error with host miss", Spec{Error: "timeout", Host: "*.slow"}, Outcome{Host: "a.fast", ErrKind: "timeout"}, false},
		{"response rule vs failure", Spec{Host: "*"}, Outcome{Host: "a", ErrKind: "connect"}, false},
		{"response rule vs failure status", Spec{Status: []string{"5xx"}}, Outcome{Status: 502, ErrKind: "connect"}, false},
		{"combined all hold", Spec{Status: []string{"4xx"}, Host: "*.example", Header: map[string]string{"Server": "cf"}, Body: "robot"},
			Outcome{Host: "www.example", Status: 403, Header: hdr("Server", "cf"), Body: []byte("are you a robot")}, true},
		{"combined status fails", Spec{Status: []string{"4xx"}, Host: "*.example", Header: map[string]string{"Server": "cf"}, Body: "robot"},
			Outcome{Host: "www.example", Status: 200, Header: hdr("Server", "cf"), Body: []byte("are you a robot")}, false},
		{"combined host fails", Spec{Status: []string{"4xx"}, Host: "*.example", Header: map[string]string{"Server": "cf"}, Body: "robot"},
			Outcome{Host: "www.other", Status: 403, Header: hdr("Server", "cf"), Body: []byte("are you a robot")}, false},
		{"combined header fails", Spec{Status: []string{"4xx"}, Host: "*.example", Header: map[string]string{"Server": "cf"}, Body: "robot"},
			Outcome{Host: "www.example", Status: 403, Header: hdr("Server", "nginx"), Body: []byte("are you a robot")}, false},
		{"combined body fails", Spec{Status: []string{"4xx"}, Host: "*.example", Header: map[string]string{"Server": "cf"}, Body: "robot"},
			Outcome{Host: "www.example", Status: 403, Header: hdr("Server", "cf"), Body: []byte("welcome")}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spec := tt.spec
			spec.Name, spec.Action, spec.Retry = "r", ActionRetire, true
			rs := mustRules(t, "", spec)
			v := rs.Decide(&tt.o)
			if got := v.Rule != nil; got != tt.match {
				t.Fatalf("matched = %v, want %v (verdict %+v)", got, tt.match, v)
			}
			if tt.match && (v.Rule.Name != "r" || v.Action != ActionRetire || !v.Retry) {
				t.Errorf("verdict %+v does not carry the rule's action", v)
			}
			if !tt.match && v.Retry {
				t.Errorf("default verdict retries: %+v", v)
			}
		})
	}
}

func TestRuleFirstMatchWins(t *testing.T) {
	rs := mustRules(t, "",
		Spec{Name: "specific", Status: []string{"403"}, Host: "shop.example", Action: ActionNone},
		Spec{Name: "captcha", Body: "captcha", Action: ActionRetire, Retry: true},
		Spec{Name: "blocked", Status: []string{"403"}, Action: ActionRetire, Retry: true},
		Spec{Name: "client", Status: []string{"4xx"}, Action: ActionBad},
		Spec{Name: "catch-all", Host: "*", Action: ActionGood},
	)
	tests := []struct {
		o    Outcome
		want string
	}{
		{Outcome{Host: "shop.example", Status: 403}, "specific"},
		{Outcome{Host: "other.example", Status: 403}, "blocked"},
		{Outcome{Host: "other.example", Status: 403, Body: []byte("captcha")}, "captcha"},
		{Outcome{Host: "shop.example", Status: 403, Body: []byte("captcha")}, "specific"},
		{Outcome{Host: "other.example", Status: 404}, "client"},
		{Outcome{Host: "other.example", Status: 200}, "catch-all"},
		{Outcome{Host: "other.example", ErrKind: "connect"}, ""},
	}
	for _, tt := range tests {
		v := rs.Decide(&tt.o)
		got := ""
		if v.Rule != nil {
			got = v.Rule.Name
		}
		if got != tt.want {
			t.Errorf("%+v: rule %q, want %q", tt.o, got, tt.want)
		}
	}
}

func TestRuleDefaultAction(t *testing.T) {
	only := Spec{Name: "teapot", Status: []string{"418"}, Action: ActionBad}
	tests := []struct {
		def  Action
		o    Outcome
		want Action
	}{
		{"", Outcome{Status: 200}, ActionGood},
		{"", Outcome{Status: 304}, ActionGood},
		{"", Outcome{Status: 399}, ActionGood},
		{"", Outcome{Status: 400}, ActionNone},
		{"", Outcome{Status: 401}, ActionNone},
		{"", Outcome{Status: 403}, ActionNone},
		{"", Outcome{Status: 429}, ActionNone},
		{"", Outcome{Status: 503}, ActionNone},
		{"", Outcome{ErrKind: "connect"}, ActionBad},
		{"", Outcome{}, ActionBad},
		{"", Outcome{Status: 418}, ActionBad},
		{ActionRetire, Outcome{Status: 200}, ActionRetire},
		{ActionGood, Outcome{Status: 500}, ActionGood},
		{ActionBad, Outcome{ErrKind: "tls"}, ActionBad},
		{ActionGood, Outcome{ErrKind: "connect"}, ActionBad},
		{ActionNone, Outcome{ErrKind: "timeout"}, ActionBad},
		{ActionRetire, Outcome{}, ActionBad},
		{ActionNone, Outcome{Status: 200}, ActionNone},
		{ActionGood, Outcome{Status: 418}, ActionBad},
	}
	for _, tt := range tests {
		rs := mustRules(t, tt.def, only)
		v := rs.Decide(&tt.o)
		if v.Action != tt.want || v.Retry {
			t.Errorf("default %q, %+v: verdict %+v, want %s", tt.def, tt.o, v, tt.want)
		}
	}
	var nilSet *Set
	if v := nilSet.Decide(&Outcome{Status: 200}); v.Action != ActionGood || v.Rule != nil {
		t.Errorf("nil Set: %+v", v)
	}
	if v := nilSet.Decide(&Outcome{Status: 500}); v.Action != ActionNone {
		t.Errorf("nil Set: %+v", v)
	}
}

func TestDefaultRules(t *testing.T) {
	rs := Defaults()
	tests := []struct {
		o      Outcome
		rule   string
		action Action
		retry  bool
	}{
		{Outcome{Status: 200}, "", ActionGood, false},
		{Outcome{Status: 301}, "", ActionGood, false},
		{Outcome{Status: 401}, "blocked-status", ActionRetire, true},
		{Outcome{Status: 403}, "blocked-status", ActionRetire, true},
		{Outcome{Status: 429}, "blocked-status", ActionRetire, true},
		{Outcome{Status: 404}, "", ActionNone, false},
		{Outcome{Status: 500}, "server-error", ActionBad, false},
		{Outcome{Status: 503}, "server-error", ActionBad, false},
		{Outcome{Status: 429, Header: http.Header{"Retry-After": {"2"}}}, "retry-after", ActionNone, true},
		{Outcome{Status: 503, Header: http.Header{"Retry-After": {"Fri, 04 Dec 2026 16:00:00 GMT"}}}, "retry-after", ActionNone, true},
		{Outcome{Status: 429, Header: http.Header{"Retry-After": {"soon"}}}, "blocked-status", ActionRetire, true},
		{Outcome{Status: 403, Header: http.Header{"Retry-After": {"2"}}}, "blocked-status", ActionRetire, true},
		{Outcome{ErrKind: "connect"}, "upstream-error", ActionBad, true},
		{Outcome{ErrKind: "tls"}, "upstream-error", ActionBad, true},
		{Outcome{ErrKind: "timeout"}, "upstream-error", ActionBad, true},
	}
	for _, tt := range tests {
		v := rs.Decide(&tt.o)
		name := ""
		if v.Rule != nil {
			name = v.Rule.Name
		}
		if name != tt.rule || v.Action != tt.action || v.Retry != tt.retry {
			t.Errorf("%+v: got %q %s %v, want %q %s %v", tt.o, name, v.Action, v.Retry, tt.rule, tt.action, tt.retry)
		}
	}
	if rs.HasBodyRules() || !rs.HasRetryRules() {
		t.Errorf("defaults: body %v retry %v", rs.HasBodyRules(), rs.HasRetryRules())
	}
	// Each call compiles a fresh set; changing one does not change another.
	a, b := Defaults(), Defaults()
	a.defaultAction = ActionBad
	if b.DefaultAction() != "" {
		t.Error("Defaults shares state")
	}
}

func TestRuleNeedsBodyAndMayRetry(t *testing.T) {
	html := hdr("Content-Type", "text/html; charset=utf-8")
	rs := mustRules(t, "",
		Spec{Name: "ok-fast", Status: []string{"2xx"}, Host: "static.example", Action: ActionGood},
		Spec{Name: "captcha", Status: []string{"101", "2xx", "403"}, Body: "captcha", Action: ActionRetire, Retry: true},
		Spec{Name: "soft", Status: []string{"404"}, Body: "gone", Action: ActionBad},
		Spec{Name: "blocked", Status: []string{"403"}, Action: ActionRetire, Retry: true},
		Spec{Name: "cf", Header: map[string]string{"Server": "cloudflare"}, Status: []string{"503"}, Action: ActionRetire},
		Spec{Name: "soft-retry", Status: []string{"404"}, Body: "again", Action: ActionRetire, Retry: true},
		Spec{Name: "fail", Error: "any", Action: ActionBad, Retry: true},
	)
	tests := []struct {
		name      string
		host      string
		status    int
		h         http.Header
		needsBody bool
		mayRetry  bool
	}{
		{"body rule first", "www.example", 200, html, true, true},
		{"earlier rule decides without body", "static.example", 200, html, false, false},
		{"binary content", "www.example", 200, hdr("Content-Type", "image/png"), false, false},
		{"unknown encoding", "www.example", 200, hdr("Content-Type", "text/html", "Content-Encoding", "compress"), false, false},
		{"known encoding", "www.example", 200, hdr("Content-Type", "text/html", "Content-Encoding", "br"), true, true},
		{"no content type", "www.example", 200, http.Header{}, true, true},
		{"switching protocols", "www.example", 101, http.Header{}, false, true},
		{"nil header", "www.example", 200, nil, true, true},
		{"403 body rule then retry rule", "www.example", 403, html, true, true},
		{"403 binary: blocked decides, retry", "www.example", 403, hdr("Content-Type", "image/png"), false, true},
		{"404 body without retry, later retry body rule", "www.example", 404, html, true, true},
		{"404 binary", "www.example", 404, hdr("Content-Type", "image/png"), false, false},
		{"no rule", "www.example", 302, html, false, false},
		{"header rule without retry", "www.example", 503, hdr("Server", "cloudflare"), false, false},
	}
	for _, tt := range tests {
		if got := rs.NeedsBody(tt.host, tt.status, tt.h); got != tt.needsBody {
			t.Errorf("%s: NeedsBody = %v, want %v", tt.name, got, tt.needsBody)
		}
		if got := rs.MayRetry(tt.host, tt.status, tt.h); got != tt.mayRetry {
			t.Errorf("%s: MayRetry = %v, want %v", tt.name, got, tt.mayRetry)
		}
	}
	plain := mustRules(t, "", Spec{Status: []string{"403"}, Action: ActionBad})
	if plain.NeedsBody("a", 403, html) || plain.MayRetry("a", 403, html) || plain.HasBodyRules() || plain.HasRetryRules() {
		t.Error("rule set without body or retry rules claims them")
	}
}

func TestCompileRulesErrors(t *testing.T) {
	tests := []struct {
		specs []Spec
		def   Action
		want  []string
	}{
		{[]Spec{{Action: ActionBad}}, "", []string{"rules[0]: a rule needs at least one condition"}},
		{[]Spec{{Status: []string{"403"}}}, "", []string{"rules[0].action: is required"}},
		{[]Spec{{Status: []string{"403"}, Action: "kill"}}, "", []string{`rules[0].action: must be one of good, bad, retire, none (got "kill")`}},
		{[]Spec{{Status: []string{"600", "4xy", "40", "4030", "x"}, Action: ActionBad}}, "", []string{
			`(got "600")`, `(got "4xy")`, `(got "40")`, `(got "4030")`, `(got "x")`}},
		{[]Spec{{Body: "a(", Action: ActionBad}}, "", []string{`rules[0].body: invalid regex: missing closing ) (got "a(")`}},
		{[]Spec{{Body: `\8`, Action: ActionBad}}, "", []string{`rules[0].body: invalid regex: invalid escape sequence`}},
		{[]Spec{{Header: map[string]string{"X": "(?<x"}, Action: ActionBad}}, "", []string{"rules[0].header.X: invalid regex"}},
		{[]Spec{{Header: map[string]string{"a b": "x"}, Action: ActionBad}}, "", []string{"rules[0].header.a b: not a valid header name"}},
		{[]Spec{{Header: map[string]string{"server": "x", "Server": "y"}, Action: ActionBad}}, "", []string{"duplicate header"}},
		{[]Spec{{Host: "[x", Action: ActionBad}}, "", []string{`rules[0].host: invalid glob (got "[x")`}},
		{[]Spec{{Error: "dns", Action: ActionBad}}, "", []string{`rules[0].error: must be one of connect, tls, timeout, any`}},
		{[]Spec{{Error: "any", Body: "x", Action: ActionBad}}, "", []string{`rules[0].error: cannot be combined`}},
		{[]Spec{{Name: "a", Host: "x", Action: ActionBad}, {Name: "a", Host: "y", Action: ActionBad}}, "", []string{`rules[1].name: duplicate rule name (also rules[0])`}},
		{[]Spec{{Name: " a", Host: "x", Action: ActionBad}}, "", []string{`rules[0].name: must not start or end with a space`}},
		{[]Spec{{Name: "a\nb", Host: "x", Action: ActionBad}}, "", []string{`rules[0].name: must be printable ASCII`}},
		{nil, "maybe", []string{`default_action: must be one of good, bad, retire, none (got "maybe")`}},
	}
	for _, tt := range tests {
		rs, err := Compile(tt.specs, tt.def)
		if err == nil || rs != nil || !errors.Is(err, ErrInvalid) {
			t.Errorf("%+v: got %v, %v", tt.specs, rs, err)
			continue
		}
		var ce *Error
		if !errors.As(err, &ce) {
			t.Errorf("not an *Error: %T", err)
			continue
		}
		for _, w := range tt.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%+v: error %q lacks %q", tt.specs, err, w)
			}
		}
		if len(ce.Problems) != len(tt.want) {
			t.Errorf("%+v: %d problems, want %d: %v", tt.specs, len(ce.Problems), len(tt.want), err)
		}
	}
}

// bench50 returns 50 rules without body conditions that a typical 200
// response passes through without a match: a worst case for Decide.
func bench50(b testing.TB) *Set {
	var specs []Spec
	for i := 0; i < 50; i++ {
		s := Spec{Name: fmt.Sprintf("r%d", i), Action: ActionBad}
		switch i % 5 {
		case 0:
			s.Status = []string{"403", "429", "5xx"}
		case 1:
			s.Host = fmt.Sprintf("*.site%d.example", i)
			s.Status = []string{"2xx"}
		case 2:
			s.Header = map[string]string{"Server": fmt.Sprintf("(?i)cloudflare-%d", i)}
		case 3:
			s.Host = fmt.Sprintf("shop%d.example", i)
		case 4:
			s.Status = []string{"2xx"}
			s.Header = map[string]string{"Cf-Mitigated": "challenge", "X-Cache": fmt.Sprintf("blocked-%d", i)}
		}
		specs = append(specs, s)
	}
	specs[49].Retry = true // so MayRetry has to walk the rules
	rs, err := Compile(specs, "")
	if err != nil {
		b.Fatal(err)
	}
	return rs
}

func BenchmarkDecide50(b *testing.B) {
	rs := bench50(b)
	o := &Outcome{Host: "www.shop.example", Status: 200,
		Header: hdr("Server", "nginx/1.25", "Content-Type", "text/html", "Cf-Mitigated", "none", "X-Cache", "HIT")}
	if v := rs.Decide(o); v.Rule != nil || v.Action != ActionGood {
		b.Fatalf("benchmark outcome matched %+v", v)
	}
	b.ReportAllocs()
	for b.Loop() {
		rs.Decide(o)
	}
}

func BenchmarkMayRetry50(b *testing.B) {
	rs := bench50(b)
	h := hdr("Server", "nginx/1.25", "Content-Type", "text/html", "Cf-Mitigated", "none", "X-Cache", "HIT")
	if rs.MayRetry("www.shop.example", 200, h) {
		b.Fatal("benchmark response may retry")
	}
	b.ReportAllocs()
	for b.Loop() {
		rs.MayRetry("www.shop.example", 200, h)
	}
}

func FuzzCompileRules(f *testing.F) {
	f.Add("blocked", "403,4xx", "(?i)captcha", "Server", "(?i)cloudflare", "*.example.com", "", "retire", true, "www.example.com", 403, "cloudflare", []byte("captcha"), "")
	f.Add("", "5XX", "", "", "", "", "any", "bad", false, "h", 0, "", []byte(nil), "connect")
	f.Add("x", "999", "(", "bad name", "[", "[", "dns", "kill", false, "", -1, "", []byte{0xff}, "tls")
	f.Fuzz(func(t *testing.T, name, status, body, hname, hre, host, errKind, action string, retry bool,
		oHost string, oStatus int, oServer string, oBody []byte, oErr string) {
		spec := Spec{Name: name, Body: body, Host: host, Error: upstream.ErrorKind(errKind), Action: Action(action), Retry: retry}
		if status != "" {
			spec.Status = strings.Split(status, ",")
		}
		if hname != "" {
			spec.Header = map[string]string{hname: hre}
		}
		rs, err := Compile([]Spec{spec}, "")
		if err != nil {
			var ce *Error
			if rs != nil || !errors.As(err, &ce) || len(ce.Problems) == 0 {
				t.Fatalf("bad failure: %v %v", rs, err)
			}
			return
		}
		h := hdr("Server", oServer, hname, oServer)
		o := &Outcome{Host: oHost, Status: oStatus, Header: h, Body: oBody, ErrKind: upstream.ErrorKind(oErr)}
		v := rs.Decide(o)
		if v.Rule != nil && (v.Action != spec.Action || v.Retry != retry) {
			t.Fatalf("verdict %+v does not carry the rule", v)
		}
		if !v.Action.Valid() {
			t.Fatalf("invalid action %q", v.Action)
		}
		rs.NeedsBody(oHost, oStatus, h)
		rs.MayRetry(oHost, oStatus, h)
	})
}

// TestActionMark: each action commits the mark of the same name; none, and
// anything that is not an action, counts nothing.
func TestActionMark(t *testing.T) {
	for a, want := range map[Action]sessionpool.Mark{
		ActionGood: sessionpool.Good, ActionBad: sessionpool.Bad, ActionRetire: sessionpool.Retire,
		ActionNone: sessionpool.NoMark, "": sessionpool.NoMark, "kill": sessionpool.NoMark,
	} {
		if got := a.Mark(); got != want {
			t.Errorf("Action(%q).Mark() = %v, want %v", a, got, want)
		}
	}
}

// TestRuleHeadDecides: a rule without a body condition whose status, host
// and header conditions hold means Decide names a rule whatever the body;
// body rules and error rules do not count.
func TestRuleHeadDecides(t *testing.T) {
	html := hdr("Content-Type", "text/html; charset=utf-8")
	rs := mustRules(t, "",
		Spec{Name: "captcha", Body: "captcha", Action: ActionRetire},
		Spec{Name: "blocked", Status: []string{"403"}, Action: ActionRetire, Retry: true},
		Spec{Name: "cf", Header: map[string]string{"Server": "cloudflare"}, Host: "*.shop.example", Action: ActionBad},
		Spec{Name: "fail", Error: "any", Action: ActionBad, Retry: true},
	)
	tests := []struct {
		name   string
		host   string
		status int
		h      http.Header
		want   bool
	}{
		{"status rule after a body rule", "www.example", 403, html, true},
		{"only the body rule", "www.example", 200, html, false},
		{"header and host rule", "WWW.shop.example:443", 200, hdr("Server", "cloudflare"), true},
		{"header rule, other host", "www.example", 200, hdr("Server", "cloudflare"), false},
		{"no response: error rules do not count", "www.example", 0, nil, false},
	}
	for _, tt := range tests {
		if got := rs.HeadDecides(tt.host, tt.status, tt.h); got != tt.want {
			t.Errorf("%s: HeadDecides = %v, want %v", tt.name, got, tt.want)
		}
	}
	var none *Set
	if none.HeadDecides("a", 403, html) {
		t.Error("a nil Set claims a rule")
	}
}
