package config

import "testing"

// TestUserNames: a user name the config takes comes back whole from a proxy
// username, alone and with a session; one that would not is refused.
func TestUserNames(t *testing.T) {
	for name, usable := range map[string]bool{
		"alice": true, "sessions-bot": true, "bob-sessions": true, "xsession": true, "session_x": true,
		"session": false, "session-bot": false, "dave-session": false, "carol-session-1": false,
	} {
		if got := usableUserName(name); got != usable {
			t.Errorf("usableUserName(%q) = %v, want %v", name, got, usable)
		}
		if !usable {
			continue
		}
		if u, s := SplitProxyUser(name); u != name || s != "" {
			t.Errorf("SplitProxyUser(%q) = %q, %q", name, u, s)
		}
		if u, s := SplitProxyUser(name + "-session-s1"); u != name || s != "s1" {
			t.Errorf("SplitProxyUser(%q) = %q, %q", name+"-session-s1", u, s)
		}
	}
	if u, s := SplitProxyUser("session-s1"); u != "" || s != "s1" {
		t.Errorf(`SplitProxyUser("session-s1") = %q, %q`, u, s)
	}
}
