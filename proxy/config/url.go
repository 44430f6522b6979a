package config

import (
	"net/url"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"
)

// parseUpstream parses an upstream proxy URL; msg is "" when it is valid.
func parseUpstream(s string) (u *url.URL, msg string) {
	u, err := url.Parse(s)
	if err != nil || u.Scheme == "" || u.Opaque != "" {
		return nil, "must be a URL like http://host:port"
	}
	switch strings.ToLower(u.Scheme) {
	case "http", "https", "socks5", "socks5h":
	default:
		return u, "scheme must be one of http, https, socks5, socks5h"
	}
	u.Scheme = strings.ToLower(u.Scheme)
	if msg := checkHostPort(u); msg != "" {
		return u, msg
	}
	if (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || u.ForceQuery {
		return u, "must not have a path, query or fragment"
	}
	u.Path = ""
	return u, ""
}

// parseStore parses a redis:// or rediss:// store URL.
func parseStore(s string) (u *url.URL, msg string) {
	u, err := url.Parse(s)
	if err != nil || u.Opaque != "" || (u.Scheme != "redis" && u.Scheme != "rediss") {
		if err == nil {
			return u, `must be "file" or a redis:// or rediss:// URL`
		}
		return nil, `must be "file" or a redis:// or rediss:// URL`
	}
	if msg := checkHostPort(u); msg != "" {
		return u, msg
	}
	if db := strings.TrimPrefix(u.Path, "/"); db != "" {
		if n, err := strconv.Atoi(db); err != nil || n < 0 {
			return u, "database must be a number, like redis://host:6379/0"
		}
	}
	// go-redis's own reading of it: its URL options (pool_size=...) and
	// their values. Its messages quote options, never the password.
	if _, err := redis.ParseURL(s); err != nil {
		return u, strings.TrimPrefix(err.Error(), "redis: ")
	}
	return u, ""
}

func checkHostPort(u *url.URL) string {
	if u.Hostname() == "" {
		return "needs a host"
	}
	port := u.Port()
	if port == "" {
		return "needs a port (host:port)"
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return "port must be a number from 1 to 65535"
	}
	return ""
}

// redactRaw shows a URL without its credentials: u.Redacted() when it
// parsed, else the text with everything before the last @ of its authority
// replaced.
func redactRaw(s string, u *url.URL) string {
	if u != nil {
		return u.Redacted()
	}
	at := strings.LastIndexByte(s, '@')
	if at < 0 {
		return s
	}
	start := 0
	if j := strings.Index(s, "://"); j >= 0 && j < at {
		start = j + 3
	}
	return s[:start] + "xxxxx" + s[at:]
}
