package sessionpool

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"net/url"
	"reflect"
	"slices"
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
	Fingerprint         string          `json:"fingerprint"`
	MaxErrorScore       *float64        `json:"maxErrorScore"`
	ErrorScoreDecrement *float64        `json:"errorScoreDecrement"`
	CreatedAt           *time.Time      `json:"createdAt"`
	ExpiresAt           *time.Time      `json:"expiresAt"`
	UsageCount          *int            `json:"usageCount"`
	MaxUsageCount       *int            `json:"maxUsageCount"`
	ErrorScore          *float64        `json:"errorScore"`
	Retired             bool            `json:"retired"`
	PausedUntil         *time.Time      `json:"pausedUntil"`
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

// jsonErr converts an encoding/json error for the value starting at start,
// whose JSON path is path ("version", "sessions[3]"; "" for the document).
// A value of the wrong type is named by its JSON path, never by the Go
// struct field it was decoded into.
func (d *stateDecoder) jsonErr(err error, start int64, path string) error {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return d.errAt(se.Offset, "%v", err)
	case errors.As(err, &te):
		return d.errAt(start+te.Offset, "%s: %s", joinPath(path, te.Field), typeProblem(te))
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return d.errAt(int64(len(d.data)), "unexpected end of document")
	}
	return d.errAt(start, "%v", err)
}

// joinPath returns the JSON path of field (dotted, as encoding/json gives
// it) below the value at path.
func joinPath(path, field string) string {
	switch {
	case field == "":
		return path
	case path == "":
		return field
	}
	return path + "." + field
}

// typeProblem words a value of the wrong JSON type: "want a string, got
// number", "want an integer, got number 0.5", "number 1e999 is out of range".
func typeProblem(te *json.UnmarshalTypeError) string {
	want := jsonKind(te.Type)
	if want == "a number" && strings.HasPrefix(te.Value, "number ") {
		return te.Value + " is out of range"
	}
	return fmt.Sprintf("want %s, got %s", want, te.Value)
}

// jsonKind names the JSON values that decode into t.
func jsonKind(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Pointer:
		return jsonKind(t.Elem())
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "an integer"
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a non-negative integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Map, reflect.Struct:
		return "an object"
	}
	return "a " + t.Kind().String()
}

// decodeCount decodes the next value, named name, as a non-negative int.
func (d *stateDecoder) decodeCount(name string) (int, error) {
	start := d.valueStart()
	var n int
	if err := d.dec.Decode(&n); err != nil {
		return 0, d.jsonErr(err, start, name)
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
		return nil, d.jsonErr(err, 0, "")
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
			return nil, d.jsonErr(err, keyStart, "")
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
				return nil, d.jsonErr(err, start, key)
			}
		}
	}
	end := d.valueStart()
	if _, err := d.dec.Token(); err != nil { // the closing '}'
		return nil, d.jsonErr(err, end, "")
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
		return nil, d.jsonErr(err, start, "sessions")
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
		path := fmt.Sprintf("sessions[%d]", i)
		var ds docSession
		if err := d.dec.Decode(&ds); err != nil {
			return nil, d.sessionErr(err, start, path)
		}
		s, err := ds.session(p, now)
		if err != nil {
			return nil, d.errAt(start, "%s: %v", path, err)
		}
		if ids[s.id] {
			return nil, d.errAt(start, "%s: duplicate id %q", path, s.id)
		}
		ids[s.id] = true
		out = append(out, s)
	}
	end := d.valueStart()
	if _, err := d.dec.Token(); err != nil { // the closing ']'
		return nil, d.jsonErr(err, end, "sessions")
	}
	return out, nil
}

// sessionErr converts the error of decoding the session at start (whose
// JSON path is path) as jsonErr does, naming the field at fault where
// encoding/json does not: the index of a cookie, and a time that does not
// parse (time.Time's errors name no field).
func (d *stateDecoder) sessionErr(err error, start int64, path string) error {
	var se *json.SyntaxError
	if errors.As(err, &se) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return d.jsonErr(err, start, path)
	}
	// The session is well-formed JSON (the decoder read it whole before
	// decoding it): read it again field by field.
	var raw struct {
		CreatedAt, ExpiresAt, PausedUntil json.RawMessage
		Cookies                           []json.RawMessage
	}
	if json.NewDecoder(bytes.NewReader(d.data[start:])).Decode(&raw) != nil {
		return d.jsonErr(err, start, path)
	}
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		if strings.HasPrefix(te.Field, "cookies.") {
			// encoding/json reports the first one: the first cookie that
			// does not decode on its own.
			for i, c := range raw.Cookies {
				var ce *json.UnmarshalTypeError
				if errors.As(json.Unmarshal(c, new(Cookie)), &ce) {
					return d.errAt(start+te.Offset, "%s.cookies[%d].%s: %s", path, i, ce.Field, typeProblem(te))
				}
			}
		}
		return d.jsonErr(err, start, path)
	}
	times := map[string]json.RawMessage{"createdAt": raw.CreatedAt, "expiresAt": raw.ExpiresAt, "pausedUntil": raw.PausedUntil}
	for i, c := range raw.Cookies {
		var rc struct{ Expires, Creation json.RawMessage }
		if json.Unmarshal(c, &rc) == nil {
			times[fmt.Sprintf("cookies[%d].expires", i)] = rc.Expires
			times[fmt.Sprintf("cookies[%d].creation", i)] = rc.Creation
		}
	}
	for _, name := range slices.Sorted(maps.Keys(times)) {
		if v := times[name]; v != nil && json.Unmarshal(v, new(time.Time)) != nil {
			return d.errAt(start, "%s.%s: want an RFC 3339 time, got %s", path, name, clip(string(v)))
		}
	}
	return d.jsonErr(err, start, path)
}

// Limits of the times a session can hold (unix nanoseconds in an int64).
var (
	minSessionTime = time.Unix(0, math.MinInt64)
	maxSessionTime = time.Unix(0, math.MaxInt64)
)

// session validates ds and rebuilds the session it describes.
func (ds *docSession) session(p *Pool, now time.Time) (*Session, error) {
	userData, err := ds.check()
	if err != nil {
		return nil, err
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
			fprint:   ds.Fingerprint,
			created:  ds.CreatedAt.UnixNano(),
			userData: userData,
			idx:      -1,
			hidx:     -1,
		},
	}
	if ds.PausedUntil != nil {
		s.paused = ds.PausedUntil.UnixNano()
	}
	s.publishLocked() // s is not shared yet
	if err := s.jar.load(ds.Cookies, now); err != nil {
		return nil, err
	}
	return s, nil
}

// check reports every problem of ds at once (joined with "; "), and
// returns its user data, compacted (nil for none).
func (ds *docSession) check() ([]byte, error) {
	var problems []string
	bad := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	ds.checkCounts(bad)
	ds.checkTimes(bad)
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
	if msg := checkFingerprint(ds.Fingerprint); msg != "" {
		bad("fingerprint %s", msg)
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
	if len(problems) > 0 {
		return nil, errors.New(strings.Join(problems, "; "))
	}
	return userData, nil
}

// checkCounts reports, through bad, the missing or out of range ID,
// counters and limits.
func (ds *docSession) checkCounts(bad func(format string, args ...any)) {
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
}

// checkTimes reports, through bad, missing or out of range times.
func (ds *docSession) checkTimes(bad func(format string, args ...any)) {
	timesOK := true
	for _, f := range []struct {
		name string
		t    *time.Time
	}{{"createdAt", ds.CreatedAt}, {"expiresAt", ds.ExpiresAt}} {
		switch {
		case f.t == nil:
			bad("missing %s", f.name)
			timesOK = false
		case f.t.Before(minSessionTime) || f.t.After(maxSessionTime):
			bad("%s %v is out of range", f.name, *f.t)
			timesOK = false
		}
	}
	if timesOK && ds.ExpiresAt.Before(*ds.CreatedAt) {
		bad("expiresAt is before createdAt")
	}
	if p := ds.PausedUntil; p != nil && (!p.After(time.Unix(0, 0)) || p.After(maxSessionTime)) {
		bad("pausedUntil %v is out of range", *p)
	}
}
