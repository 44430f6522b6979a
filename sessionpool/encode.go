package sessionpool

import (
	"math"
	"strconv"
	"time"
	"unicode/utf8"
)

// The persisted document is written by hand with appenders: encoding/json's
// reflection is several times too slow for 100,000 sessions with their
// cookies. The output is plain JSON that encoding/json reads back (see
// decode.go): one session per line, fields in the documented order.

// chunkSize is the size of the buffers the document is written into: large
// enough to make few write calls, small enough that no single copy or
// allocation of a huge document holds up the garbage collector (and so other
// goroutines) for long.
const chunkSize = 1 << 20

// encodeState streams the document for snaps, reading their cookies from
// each session's jar at now. It fills buf and hands it to emit whenever it
// holds about chunkSize bytes, and once more at the end: the concatenation of
// the emitted chunks is the document. emit returns the buffer to go on
// with: the same one emptied (the consumer copied or wrote it) or a new one
// (the consumer keeps it).
func encodeState(buf []byte, usable, retired int, snaps []sessionSnap, now time.Time, emit func([]byte) ([]byte, error)) error {
	b := append(buf, `{"version":`...)
	b = strconv.AppendInt(b, stateVersion, 10)
	b = append(b, `,"usableSessionsCount":`...)
	b = strconv.AppendInt(b, int64(usable), 10)
	b = append(b, `,"retiredSessionsCount":`...)
	b = strconv.AppendInt(b, int64(retired), 10)
	b = append(b, `,"sessions":[`...)
	for i := range snaps {
		if len(b) >= chunkSize {
			var err error
			if b, err = emit(b); err != nil {
				return err
			}
		}
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '\n')
		sn := &snaps[i]
		b = appendSession(b, sn, sn.s.jar.export(now))
	}
	if len(snaps) > 0 {
		b = append(b, '\n')
	}
	_, err := emit(append(b, "]}\n"...))
	return err
}

// newChunk returns an empty buffer for encodeState.
func newChunk() []byte { return make([]byte, 0, chunkSize+chunkSize/4) }

// concat appends chunks to b, allocating once. (make, unlike slices.Grow,
// clears a large allocation in preemptible steps, which keeps the garbage
// collector's stop-the-world pauses, and so GetSession, short.)
func concat(b []byte, chunks [][]byte) []byte {
	n := len(b)
	for _, c := range chunks {
		n += len(c)
	}
	if n > cap(b) {
		b = append(make([]byte, 0, n), b...)
	}
	for _, c := range chunks {
		b = append(b, c...)
	}
	return b
}

func appendSession(b []byte, sn *sessionSnap, cookies []Cookie) []byte {
	s := sn.s
	b = append(b, `{"id":`...)
	b = appendString(b, s.id)
	b = append(b, `,"cookies":[`...)
	for i := range cookies {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendCookie(b, &cookies[i])
	}
	b = append(b, `],"userData":`...)
	if len(sn.userData) == 0 {
		b = append(b, "{}"...)
	} else {
		b = append(b, sn.userData...)
	}
	b = append(b, `,"proxyUrl":`...)
	b = appendString(b, s.proxyURL)
	if s.fprint != "" {
		b = append(b, `,"fingerprint":`...)
		b = appendString(b, s.fprint)
	}
	if sn.paused != 0 {
		b = append(b, `,"pausedUntil":`...)
		b = appendTime(b, time.Unix(0, sn.paused))
	}
	b = append(b, `,"maxErrorScore":`...)
	b = appendFloat(b, s.maxErr)
	b = append(b, `,"errorScoreDecrement":`...)
	b = appendFloat(b, s.errDecr)
	b = append(b, `,"createdAt":`...)
	b = appendTime(b, time.Unix(0, s.created))
	b = append(b, `,"expiresAt":`...)
	b = appendTime(b, time.Unix(0, s.expires))
	b = append(b, `,"usageCount":`...)
	b = strconv.AppendInt(b, int64(sn.usage), 10)
	b = append(b, `,"maxUsageCount":`...)
	b = strconv.AppendInt(b, int64(s.maxUsage), 10)
	b = append(b, `,"errorScore":`...)
	b = appendFloat(b, sn.errScore)
	b = append(b, `,"retired":`...)
	b = strconv.AppendBool(b, sn.retired)
	return append(b, '}')
}

func appendCookie(b []byte, c *Cookie) []byte {
	b = append(b, `{"name":`...)
	b = appendString(b, c.Name)
	b = append(b, `,"value":`...)
	b = appendString(b, c.Value)
	b = append(b, `,"domain":`...)
	b = appendString(b, c.Domain)
	b = append(b, `,"path":`...)
	b = appendString(b, c.Path)
	b = append(b, `,"hostOnly":`...)
	b = strconv.AppendBool(b, c.HostOnly)
	b = append(b, `,"secure":`...)
	b = strconv.AppendBool(b, c.Secure)
	b = append(b, `,"httpOnly":`...)
	b = strconv.AppendBool(b, c.HTTPOnly)
	if c.SameSite != "" {
		b = append(b, `,"sameSite":`...)
		b = appendString(b, c.SameSite)
	}
	if !c.Expires.IsZero() {
		b = append(b, `,"expires":`...)
		b = appendTime(b, c.Expires)
	}
	b = append(b, `,"creation":`...)
	b = appendTime(b, c.Creation)
	return append(b, '}')
}

// maxJSONTime is the latest time RFC 3339 (and encoding/json) can express.
var maxJSONTime = time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC)

// appendTime appends t in UTC as a quoted RFC 3339 timestamp with
// nanoseconds, clamped to the years 0000-9999 that RFC 3339 can express.
func appendTime(b []byte, t time.Time) []byte {
	t = t.UTC()
	if t.After(maxJSONTime) {
		t = maxJSONTime
	} else if t.Year() < 0 {
		t = time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC)
	}
	b = append(b, '"')
	b = t.AppendFormat(b, time.RFC3339Nano)
	return append(b, '"')
}

// appendFloat appends f as encoding/json does. Non-finite values, which
// JSON cannot express and the session mutators never produce, are written
// as 0 so that the document stays valid.
func appendFloat(b []byte, f float64) []byte {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return append(b, '0')
	}
	abs := math.Abs(f)
	format := byte('f')
	if abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, f, format, -1, 64)
	if format == 'e' {
		// Clean up e-09 to e-9, as encoding/json does.
		if n := len(b); n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b
}

const hexDigits = "0123456789abcdef"

// appendString appends s as a JSON string: quotes, backslashes and control
// characters escaped, invalid UTF-8 replaced by U+FFFD, and U+2028/U+2029
// escaped (as encoding/json does, for JavaScript readers).
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
