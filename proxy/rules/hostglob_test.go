package rules

import "testing"

// TestHostGlobAsWritten: a host condition written the way the host
// appears in a URL, an IPv6 literal in brackets or a fully qualified name
// with its trailing dot, matches that host, as the sites' globs do; the
// trailing dot of the request host is ignored too.
func TestHostGlobAsWritten(t *testing.T) {
	tests := []struct {
		glob, host string
		match      bool
	}{
		{"[::1]", "[::1]:443", true},
		{"[2001:DB8::1]", "[2001:db8::1]", true},
		{"a.example.", "a.example.:443", true},
		{"a.example.", "a.example", true},
		{"a.example", "A.example.", true},
		{"*.example.com.", "www.example.com.", true},
		{"*.example.com.", "example.com.", false},
		{"[ab].example", "b.example", true}, // a glob's class, not an IP literal
	}
	for _, tt := range tests {
		rs, err := Compile([]Spec{{Host: tt.glob, Action: ActionBad}}, "")
		if err != nil {
			t.Fatalf("host %q: %v", tt.glob, err)
		}
		v := rs.Decide(&Outcome{Host: tt.host, Status: 200})
		if got := v.Rule != nil; got != tt.match {
			t.Errorf("host %q against %q: matched %v, want %v", tt.glob, tt.host, got, tt.match)
		}
	}
}

func TestHostGlobProblem(t *testing.T) {
	tests := []struct{ glob, want string }{
		{"[::1]", ""},
		{"example.com.", ""},
		{"*.Example.com", ""},
		{".", "must name a host"},
		{"..", "must name a host"},
		{"[x", "invalid glob"},
		{`example\.`, "invalid glob"}, // a dangling escape once the dot is trimmed
		{"https://example.com", "must be a host or a glob of hosts, without a scheme or path"},
		{"[::1]:443", "must be a host or a glob of hosts, without a port (hosts are matched without theirs)"},
	}
	for _, tt := range tests {
		if got := HostGlobProblem(tt.glob); got != tt.want {
			t.Errorf("HostGlobProblem(%q) = %q, want %q", tt.glob, got, tt.want)
		}
	}
}
