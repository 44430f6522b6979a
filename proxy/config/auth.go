package config

import "strings"

// SplitProxyUser splits a proxy username into the account name and the
// session name it carries: "session-<id>" is ("", id), "<user>-session-<id>"
// is (user, id), and anything else is (username, "").
func SplitProxyUser(username string) (user, session string) {
	if rest, ok := strings.CutPrefix(username, "session-"); ok {
		return "", rest
	}
	if i := strings.Index(username, "-session-"); i >= 0 {
		return username[:i], username[i+len("-session-"):]
	}
	return username, ""
}

// usableUserName reports whether an auth.users name comes back whole from
// SplitProxyUser, alone and with a session name after it: not "session",
// nor one that starts with "session-", ends with "-session" or holds
// "-session-".
func usableUserName(name string) bool {
	if u, s := SplitProxyUser(name); u != name || s != "" {
		return false
	}
	u, s := SplitProxyUser(name + "-session-x")
	return u == name && s == "x"
}
