package rules

import (
	"regexp"
	"strings"
	"testing"
)

// TestBodyMatcher: the prefilter never changes what matches, and it is in
// place for the patterns users write.
func TestBodyMatcher(t *testing.T) {
	tests := []struct {
		pattern    string
		prefilter  bool
		match, not []string
	}{
		{`(?i)captcha|are you a robot`, true, []string{"x CAPTCHA x", "Are You A Robot?", "reCaptcha"}, []string{"capt cha", "a robot"}},
		{`access denied`, true, []string{"<h1>access denied</h1>"}, []string{"Access Denied"}},
		{`(?i)access denied`, true, []string{"ACCESS DENIED", "acce\u017fs denied"}, []string{"access  denied"}},
		{`(?i)kitten`, true, []string{"\u212Aitten", "KITTEN"}, []string{"kit ten"}},
		{`(?i)ks`, false, []string{"\u212A\u017F"}, []string{"k s"}},
		{`blocked (by|from) [a-z]+`, true, []string{"blocked by waf"}, []string{"blocked to x"}},
		{`x*`, false, []string{"", "abc"}, nil},
		{`(?i)verify|\d+`, false, []string{"42"}, nil},
		{`(?i)stra\x{df}e`, true, []string{"STRA\u00dfE", "stra\u1e9ee"}, []string{"strasse"}},
		{`caf\x{e9}`, true, []string{"café"}, []string{"cafe"}},
	}
	for _, tt := range tests {
		re := regexp.MustCompile(tt.pattern)
		m := newBodyMatcher(re)
		if (m.lits != nil) != tt.prefilter {
			t.Errorf("%s: prefilter %v, want %v (%d literals)", tt.pattern, m.lits != nil, tt.prefilter, len(m.lits))
		}
		for _, s := range append(append([]string{}, tt.match...), tt.not...) {
			if got, want := m.Match([]byte(s)), re.Match([]byte(s)); got != want {
				t.Errorf("%s on %q: %v, the regex says %v", tt.pattern, s, got, want)
			}
		}
		for _, s := range tt.match {
			if !m.Match([]byte(s)) {
				t.Errorf("%s does not match %q", tt.pattern, s)
			}
		}
	}
}

// TestIndexFoldASCII checks the scan against a plain lower-case search.
func TestIndexFoldASCII(t *testing.T) {
	for _, tt := range []struct{ s, lit string }{
		{"hello World", "world"}, {"aaaaAAAAab", "ab"}, {"", "a"}, {"abc", "abcd"},
		{"xYz", "xyz"}, {"zzzzzzzz", "zy"}, {"A-1 a-2", "a-2"}, {strings.Repeat("a", 100) + "B", "ab"},
	} {
		want := strings.Index(strings.ToLower(tt.s), tt.lit)
		if got := indexFoldASCII([]byte(tt.s), []byte(tt.lit)); got != want {
			t.Errorf("indexFoldASCII(%q, %q) = %d, want %d", tt.s, tt.lit, got, want)
		}
	}
}

// FuzzBodyMatcher: with or without the prefilter, a body condition matches
// exactly what its regex matches.
func FuzzBodyMatcher(f *testing.F) {
	for _, seed := range [][2]string{
		{`(?i)captcha|are you a robot`, "Please solve the CAPTCHA"},
		{`(?i)kelvin`, "\u212Aelvin"},
		{`(?i)(access|entry) denied`, "ENTRY DENIED"},
		{`a+bc{2,}`, "xaabccc"},
		{`\xff`, "\xff"},
		{`\x{fffd}x`, "\xffx"},
	} {
		f.Add(seed[0], seed[1])
	}
	f.Fuzz(func(t *testing.T, pattern, body string) {
		re, err := regexp.Compile(pattern)
		if err != nil {
			return
		}
		if got, want := newBodyMatcher(re).Match([]byte(body)), re.Match([]byte(body)); got != want {
			t.Errorf("%q on %q: matcher %v, regex %v", pattern, body, got, want)
		}
	})
}

// BenchmarkBodyMatcher compares the body condition with and without the
// prefilter on a 64 KiB page that does not match.
//
//	go test -run '^$' -bench BodyMatcher ./proxy/
func BenchmarkBodyMatcher(b *testing.B) {
	re := regexp.MustCompile(`(?i)captcha|are you a robot|access denied`)
	page := []byte(strings.Repeat("<p>Some ordinary page text, with Words and links.</p>\n", 65536/55))
	for _, tt := range []struct {
		name string
		m    func([]byte) bool
	}{{"regexp", re.Match}, {"prefiltered", newBodyMatcher(re).Match}} {
		b.Run(tt.name, func(b *testing.B) {
			b.SetBytes(int64(len(page)))
			for b.Loop() {
				if tt.m(page) {
					b.Fatal("matched")
				}
			}
		})
	}
}
