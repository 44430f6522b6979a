package sessionpool

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/url"
	"strings"
	"time"
)

// docSession is one session of the persisted document as decoded; pointer
// fields are required.
type docSession struct {
	ID                  *string         `json:"id"`
	Cookies             []Cookie        `json:"cookies"`
	UserData            json.RawMessage `json:"userData"`
	ProxyURL            string          `json:"proxyUrl"`
	MaxErrorScore       *float64        `json:"maxErrorScore"`
	ErrorScoreDecrement *float64        `json:"errorScoreDecrement"`
	CreatedAt           *time.Time      `json:"createdAt"`
	ExpiresAt           *time.Time      `json:"expiresAt"`
	UsageCount          *int            `json:"usageCount"`
	MaxUsageCount       *int            `json:"maxUsageCount"`
	ErrorScore          *float64        `json:"errorScore"`
	Retired             bool            `json:"retired"`
}

// stateDecoder reads a document with encoding/json's streaming decoder,
// session by session, so that every error can name its position.
type stateDecoder struct {
	data []byte
	dec  *json.Decoder
}

// position returns "line:column" (1-based, column in bytes) of offset.
func (d *stateDecoder) position(off int64) string {
	off = min(max(off, 0), int64(len(d.data)))
	line := 1 + bytes.Count(d.data[:off], []byte{'\n'})
	col := off - int64(bytes.LastIndexByte(d.data[:off], '\n'))
	return fmt.Sprintf("%d:%d", line, col)
}

// errAt returns an ErrInvalidState error at offset off.
func (d *stateDecoder) errAt(off int64, format string, args ...any) error {
	return fmt.Errorf("%w: %s: %s", ErrInvalidState, d.position(off), fmt.Sprintf(format, args...))
}

// valueStart returns the offset of the next value after the decoder's input
// offset (skipping white space, ',' and ':').
func (d *stateDecoder) valueStart() int64 {
	off := d.dec.InputOffset()
	for off < int64(len(d.data)) {
		switch d.data[off] {
		case ' ', '\t', '\r', '\n', ',', ':':
			off++
			continue
		}
		break
	}
	return off
}

// jsonErr converts an encoding/json error for the value starting at start.
func (d *stateDecoder) jsonErr(err error, start int64) error {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return d.errAt(se.Offset, "%v", err)
	case errors.As(err, &te):
		return d.errAt(start+te.Offset, "%v", err)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return d.errAt(int64(len(d.data)), "unexpected end of document")
	}
	return d.errAt(start, "%v", err)
}

// decodeInt decodes the next value as a non-negative int.
func (d *stateDecoder) decodeCount(name string) (int, error) {
	start := d.valueStart()
	var n int
	if err := d.dec.Decode(&n); err != nil {
		return 0, d.jsonErr(err, start)
	}
	if n < 0 {
		return 0, d.errAt(start, "%s %d is negative", name, n)
	}
	return n, nil
}

// decodeState parses and validates a persisted document and rebuilds its
// sessions for p (all of them, usable or not; none is added). Unknown fields
// are ignored. Every error wraps ErrInvalidState and names the position.
func decodeState(data []byte, p *Pool, now time.Time) ([]*Session, error) {
	d := &stateDecoder{data: data, dec: json.NewDecoder(bytes.NewReader(data))}
	if tok, err := d.dec.Token(); err != nil {
		return nil, d.jsonErr(err, 0)
	} else if tok != json.Delim('{') {
		return nil, d.errAt(0, "the document is not a JSON object")
	}
	var (
		sessions []*Session
		version  = -1
		seenKeys = map[string]bool{}
	)
	for d.dec.More() {
		keyStart := d.valueStart()
		tok, err := d.dec.Token()
		if err != nil {
			return nil, d.jsonErr(err, keyStart)
		}
		key := tok.(string) // object keys are strings
		if seenKeys[key] {
			return nil, d.errAt(keyStart, "duplicate key %q", key)
		}
		seenKeys[key] = true
		switch key {
		case "version":
			if version, err = d.decodeCount("version"); err != nil {
				return nil, err
			}
			if version < 1 {
				return nil, d.errAt(keyStart, "version %d is not supported", version)
			}
		case "usableSessionsCount", "retiredSessionsCount":
			// Informational: recomputed from the sessions.
			if _, err := d.decodeCount(key); err != nil {
				return nil, err
			}
		case "sessions":
			if sessions, err = d.decodeSessions(p, now); err != nil {
				return nil, err
			}
		default:
			start := d.valueStart()
			var skip json.RawMessage
			if err := d.dec.Decode(&skip); err != nil {
				return nil, d.jsonErr(err, start)
			}
		}
	}
	end := d.valueStart()
	if _, err := d.dec.Token(); err != nil { // the closing '}'
		return nil, d.jsonErr(err, end)
	}
	if version < 0 {
		return nil, d.errAt(0, "missing version")
	}
	end = d.valueStart()
	if _, err := d.dec.Token(); err != io.EOF {
		return nil, d.errAt(end, "data after the document")
	}
	return sessions, nil
}

// decodeSessions decodes the "sessions" array (null is an empty one).
func (d *stateDecoder) decodeSessions(p *Pool, now time.Time) ([]*Session, error) {
	start := d.valueStart()
	tok, err := d.dec.Token()
	if err != nil {
		return nil, d.jsonErr(err, start)
	}
	if tok == nil {
		return nil, nil
	}
	if tok != json.Delim('[') {
		return nil, d.errAt(start, "sessions is not an array")
	}
	var out []*Session
	ids := map[string]bool{}
	for i := 0; d.dec.More(); i++ {
		start := d.valueStart()
		var ds docSession
		if err := d.dec.Decode(&ds); err != nil {
			return nil, d.jsonErr(err, start)
		}
		s, err := ds.session(p, now)
		if err != nil {
			return nil, d.errAt(start, "session %d: %v", i, err)
		}
		if ids[s.id] {
			return nil, d.errAt(start, "session %d: duplicate id %q", i, s.id)
		}
		ids[s.id] = true
		out = append(out, s)
	}
	end := d.valueStart()
	if _, err := d.dec.Token(); err != nil { // the closing ']'
		return nil, d.jsonErr(err, end)
	}
	return out, nil
}

// Limits of the times a session can hold (unix nanoseconds in an int64).
var (
	minSessionTime = time.Unix(0, math.MinInt64)
	maxSessionTime = time.Unix(0, math.MaxInt64)
)

// session validates ds and rebuilds the session it describes.
func (ds *docSession) session(p *Pool, now time.Time) (*Session, error) {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	required := func(name string, missing bool) bool {
		if missing {
			bad("missing %s", name)
		}
		return !missing
	}
	if required("id", ds.ID == nil) && *ds.ID == "" {
		bad("empty id")
	}
	if required("usageCount", ds.UsageCount == nil) && *ds.UsageCount < 0 {
		bad("usageCount %d is negative", *ds.UsageCount)
	}
	if required("maxUsageCount", ds.MaxUsageCount == nil) && *ds.MaxUsageCount < 1 {
		bad("maxUsageCount %d is not positive", *ds.MaxUsageCount)
	}
	if required("errorScore", ds.ErrorScore == nil) && !(*ds.ErrorScore >= 0) {
		bad("errorScore %v is negative", *ds.ErrorScore)
	}
	if required("maxErrorScore", ds.MaxErrorScore == nil) && !(*ds.MaxErrorScore > 0) {
		bad("maxErrorScore %v is not positive", *ds.MaxErrorScore)
	}
	if required("errorScoreDecrement", ds.ErrorScoreDecrement == nil) && !(*ds.ErrorScoreDecrement >= 0) {
		bad("errorScoreDecrement %v is negative", *ds.ErrorScoreDecrement)
	}
	timesOK := true
	for _, f := range []struct {
		name string
		t    *time.Time
	}{{"createdAt", ds.CreatedAt}, {"expiresAt", ds.ExpiresAt}} {
		if !required(f.name, f.t == nil) {
			timesOK = false
		} else if f.t.Before(minSessionTime) || f.t.After(maxSessionTime) {
			bad("%s %v is out of range", f.name, *f.t)
			timesOK = false
		}
	}
	if timesOK && ds.ExpiresAt.Before(*ds.CreatedAt) {
		bad("expiresAt is before createdAt")
	}
	var userData []byte
	switch raw := bytes.TrimSpace(ds.UserData); {
	case len(raw) == 0, string(raw) == "null", string(raw) == "{}":
	case raw[0] != '{':
		bad("userData is not an object")
	default:
		var buf bytes.Buffer
		if err := json.Compact(&buf, raw); err != nil {
			bad("userData: %v", err)
		}
		userData = buf.Bytes()
	}
	if ds.ProxyURL != "" {
		u, err := url.Parse(ds.ProxyURL)
		switch {
		case err != nil:
			bad("proxyUrl does not parse") // it may hold credentials: not repeated
		case u.Scheme == "" || u.Host == "":
			bad("proxyUrl %q has no scheme or host", u.Redacted())
		}
	}
	if len(errs) > 0 {
		msgs := make([]string, len(errs))
		for i, err := range errs {
			msgs[i] = err.Error()
		}
		return nil, errors.New(strings.Join(msgs, "; "))
	}
	s := &Session{
		pool:     p,
		expires:  ds.ExpiresAt.UnixNano(),
		limits:   p.limitsFor(limits{maxUsage: *ds.MaxUsageCount, maxErr: *ds.MaxErrorScore, errDecr: *ds.ErrorScoreDecrement}),
		usage:    *ds.UsageCount,
		errScore: *ds.ErrorScore,
		retired:  ds.Retired,
		sessionCold: &sessionCold{
			id:       *ds.ID,
			proxyURL: ds.ProxyURL,
			created:  ds.CreatedAt.UnixNano(),
			userData: userData,
			idx:      -1,
			hidx:     -1,
		},
	}
	s.publishLocked() // s is not shared yet
	if err := s.jar.load(ds.Cookies, now); err != nil {
		return nil, err
	}
	return s, nil
}
