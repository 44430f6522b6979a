package sites

import (
	"net/http"
	"strings"
	"time"
)

// MaxRetryAfter is the longest wait RetryAfter gives: a longer one is cut
// to it.
const MaxRetryAfter = time.Hour

// RetryAfter reads the Retry-After header of a response (RFC 9110 10.2.3):
// a number of seconds or an HTTP date, the wait measured from now. The
// wait is at most MaxRetryAfter; a negative number of seconds or a date in
// the past gives 0. ok is false, with 0, when the header is absent or
// neither form. RetryAfter is safe for concurrent use.
func RetryAfter(h http.Header, now time.Time) (wait time.Duration, ok bool) {
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0, false
	}
	if d, ok := seconds(v); ok {
		return d, true
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0, false
	}
	return min(max(t.Sub(now), 0), MaxRetryAfter), true
}

// seconds reads a whole number of seconds, optionally negative (giving 0),
// capped at MaxRetryAfter however many digits it has.
func seconds(v string) (time.Duration, bool) {
	neg := strings.HasPrefix(v, "-")
	if neg {
		v = v[1:]
	}
	if v == "" {
		return 0, false
	}
	const limit = int64(MaxRetryAfter / time.Second)
	var n int64
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		if n <= limit {
			n = n*10 + int64(c-'0')
		}
	}
	if neg {
		return 0, true
	}
	return time.Duration(min(n, limit)) * time.Second, true
}
