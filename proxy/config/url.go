package config

import (
	"net/url"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"
)

// parseStore parses a redis:// or rediss:// store URL; msg is "" when it is
// valid. (Upstream proxy URLs have their own parser, upstream.Parse.)
func parseStore(s string) (msg string) {
	u, err := url.Parse(s)
	if err != nil || u.Opaque != "" || (u.Scheme != "redis" && u.Scheme != "rediss") {
		return `must be "file" or a redis:// or rediss:// URL`
	}
	if u.Hostname() == "" {
		return "needs a host"
	}
	if port := u.Port(); port == "" {
		return "needs a port (host:port)"
	} else if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return "port must be a number from 1 to 65535"
	}
	if db := strings.TrimPrefix(u.Path, "/"); db != "" {
		if n, err := strconv.Atoi(db); err != nil || n < 0 {
			return "database must be a number, like redis://host:6379/0"
		}
	}
	// go-redis's own reading of it: its URL options (pool_size=...) and
	// their values. Its messages quote options, never the password.
	if _, err := redis.ParseURL(s); err != nil {
		return err.Error()
	}
	return ""
}
