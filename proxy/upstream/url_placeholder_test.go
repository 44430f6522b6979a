package upstream

import (
	"errors"
	"testing"
)

func TestParseSessionPlaceholder(t *testing.T) {
	tests := []struct {
		in, id, want string // want "" = a ParseError
		has          bool   // HasPlaceholder of the parsed URL
	}{
		{"http://user-session-{session}:pw@127.0.0.1:3128", "session_Ab3", "http://user-session-sessionAb3:pw@127.0.0.1:3128", true},
		{"http://cust:sess-{session}@127.0.0.1:3128", "shop.1", "http://cust:sess-shop1@127.0.0.1:3128", true},
		{"socks5h://{session}@127.0.0.1:1080", "alice", "socks5h://alice@127.0.0.1:1080", true},
		{"http://a-{session}-b-{session}:x@127.0.0.1:1", "z_9", "http://a-z9-b-z9:x@127.0.0.1:1", true},
		{"http://user:pw@127.0.0.1:3128", "alice", "http://user:pw@127.0.0.1:3128", false},
		{"http://{session}.example:3128", "alice", "", false},
		{"http://user@127.0.0.1:3128/{session}", "alice", "", false},
	}
	for _, tc := range tests {
		u, err := Parse(tc.in)
		if tc.want == "" {
			if !errors.Is(err, ErrInvalidURL) {
				t.Errorf("Parse(%q) = %v, %v; want ErrInvalidURL", tc.in, u, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("Parse(%q): %v", tc.in, err)
			continue
		}
		before := u.String()
		if got := ForSession(u, tc.id).String(); got != tc.want {
			t.Errorf("ForSession(%q, %q) = %q, want %q", tc.in, tc.id, got, tc.want)
		}
		if u.String() != before {
			t.Errorf("ForSession modified its URL: %q, was %q", u, before)
		}
		if HasPlaceholder(u) != tc.has {
			t.Errorf("HasPlaceholder(%q) = %v", tc.in, HasPlaceholder(u))
		}
	}
}
