package cookiefile

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"slices"
	"strings"
)

// JSONReader walks a JSON document token by token so that each problem can
// be given the line it is on: the JSON cookie documents are read with it,
// and so can be a request body that holds one (POST /sessions). An object
// is read with ExpectDelim('{'), then Key and Value or Skip while More,
// then CloseObject; End checks that nothing follows the document. Its
// errors are *Error values of the kind it was made with, with one problem.
// A JSONReader is not safe for concurrent use.
type JSONReader struct {
	data  []byte
	dec   *json.Decoder
	lines *lineCounter
	base  int64 // offset of data in the document lines counts over
	kind  error // the Err of the errors about the document
	// fields, when set, are the keys an element may have: an element
	// with another one has an unknown field.
	fields []string
}

// NewJSONReader returns a reader of the JSON document data whose errors
// are of the kind given (wrap it): ErrBadCookies for a cookie document, an
// error of the caller's for another.
func NewJSONReader(data []byte, kind error) *JSONReader {
	return &JSONReader{data: data, dec: json.NewDecoder(bytes.NewReader(data)), lines: newLineCounter(data), kind: kind}
}

// More reports whether the current list or object has another element.
func (d *JSONReader) More() bool { return d.dec.More() }

// Line returns the line (1-based) of byte off of the document, an offset
// as ValueOffset returns it.
func (d *JSONReader) Line(off int64) int { return d.lines.at(d.base + off) }

// fail turns a decoder error into a line-numbered one.
func (d *JSONReader) fail(err error) error {
	se, isSyntax := errors.AsType[*json.SyntaxError](err)
	switch {
	case isSyntax:
		// A SyntaxError's message is the bare description ("invalid
		// character ..."), with no package prefix.
		return lineError(d.kind, d.Line(se.Offset), "%s", se.Error())
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return lineError(d.kind, d.Line(int64(len(d.data))), "the JSON ends too early")
	}
	return lineError(d.kind, d.Line(d.dec.InputOffset()), "%v", err)
}

// ExpectDelim reads the next token, which must be delim.
func (d *JSONReader) ExpectDelim(delim json.Delim, what string) error {
	start := d.ValueOffset()
	tok, err := d.dec.Token()
	if err != nil {
		return d.fail(err)
	}
	if tok != delim {
		return lineError(d.kind, d.Line(start), "want %s, got %s", what, describeToken(tok))
	}
	return nil
}

// Key reads an object key.
func (d *JSONReader) Key() (string, error) {
	tok, err := d.dec.Token()
	if err != nil {
		return "", d.fail(err)
	}
	k, _ := tok.(string)
	return k, nil
}

// Value decodes the next value into v; a value of the wrong type is an
// error "name must be want".
func (d *JSONReader) Value(v any, name, want string) error {
	start := d.ValueOffset()
	if err := d.dec.Decode(v); err != nil {
		if _, ok := errors.AsType[*json.UnmarshalTypeError](err); ok {
			return lineError(d.kind, d.Line(start), "%s must be %s", name, want)
		}
		return d.fail(err)
	}
	return nil
}

// Skip reads and drops one value.
func (d *JSONReader) Skip() error {
	var v json.RawMessage
	if err := d.dec.Decode(&v); err != nil {
		return d.fail(err)
	}
	return nil
}

// array reads a list (or null), calling fn with the line of each element's
// start; fn decodes the element with d.element.
func (d *JSONReader) array(what string, fn func(line int) error) error {
	start := d.ValueOffset()
	tok, err := d.dec.Token()
	if err != nil {
		return d.fail(err)
	}
	if tok == nil {
		return nil
	}
	if tok != json.Delim('[') {
		return lineError(d.kind, d.Line(start), "%s must be a list, got %s", what, describeToken(tok))
	}
	for d.dec.More() {
		if err := fn(d.Line(d.ValueOffset())); err != nil {
			return err
		}
	}
	if _, err := d.dec.Token(); err != nil {
		return d.fail(err)
	}
	return nil
}

// element decodes one list element into v. A syntax error ends the
// document (err); an element that is not an object, has a field of the
// wrong type or (when d.fields is set) an unknown field is a problem
// recorded in errs, and ok is false. Of several, the first in the element
// is recorded, as a decoder with DisallowUnknownFields would report it;
// but that decoder's error about an unknown field is a bare message, so
// unknown fields are found by unknownField instead.
func (d *JSONReader) element(v any, line int, errs *problems) (ok bool, err error) {
	start := d.ValueOffset()
	var raw json.RawMessage
	if err := d.dec.Decode(&raw); err != nil {
		return false, d.fail(err)
	}
	if len(raw) == 0 || raw[0] != '{' {
		errs.add(line, "want a cookie object, got %s", describeRaw(raw))
		return false, nil
	}
	key, keyOff, unknown := unknownField(raw, d.fields)
	decErr := json.NewDecoder(bytes.NewReader(raw)).Decode(v)
	te, isType := errors.AsType[*json.UnmarshalTypeError](decErr)
	switch {
	case unknown && (!isType || keyOff < te.Offset):
		errs.add(line, "unknown field %q", key)
	case isType:
		errs.add(d.Line(start+te.Offset), "field %q must be %s, got %s", te.Field, jsonKind(te.Type.String()), te.Value)
	case decErr != nil:
		errs.add(line, "%v", decErr)
	default:
		return true, nil
	}
	return false, nil
}

// unknownField returns the first key of the JSON object obj that matches
// none of fields the way encoding/json matches keys to struct fields
// (exactly or case-insensitively), with the offset in obj of the end of
// the key; ok is false when every key matches, or when fields is nil.
func unknownField(obj []byte, fields []string) (key string, off int64, ok bool) {
	if fields == nil {
		return "", 0, false
	}
	dec := json.NewDecoder(bytes.NewReader(obj))
	if _, err := dec.Token(); err != nil { // '{'
		return "", 0, false
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return "", 0, false
		}
		key, _ = tok.(string)
		if !slices.ContainsFunc(fields, func(f string) bool { return strings.EqualFold(f, key) }) {
			return key, dec.InputOffset(), true
		}
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return "", 0, false
		}
	}
	return "", 0, false
}

// jsonFields lists the keys encoding/json decodes into the struct type t,
// which has no embedded fields: each exported field's name in its json
// tag, or its Go name.
func jsonFields(t reflect.Type) []string {
	var names []string
	for f := range t.Fields() {
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		switch {
		case !f.IsExported() || name == "-":
		case name == "":
			names = append(names, f.Name)
		default:
			names = append(names, name)
		}
	}
	return names
}

// CloseObject reads the '}' that ends an object whose members are read.
func (d *JSONReader) CloseObject() error {
	if _, err := d.dec.Token(); err != nil {
		return d.fail(err)
	}
	return nil
}

// End checks that nothing but white space follows the document.
func (d *JSONReader) End() error {
	if _, err := d.dec.Token(); err != io.EOF {
		if err != nil {
			return d.fail(err)
		}
		return lineError(d.kind, d.Line(d.dec.InputOffset()), "unexpected data after the JSON document")
	}
	return nil
}

// ValueOffset is the offset of the next value (or key): the decoder's offset past
// white space, ',' and ':'.
func (d *JSONReader) ValueOffset() int64 {
	return skipJSONSeparators(d.data, d.dec.InputOffset())
}

// skipJSONSeparators returns the offset of the first byte at or after off
// that is not white space, ',' or ':'.
func skipJSONSeparators(data []byte, off int64) int64 {
	for off < int64(len(data)) {
		switch data[off] {
		case ' ', '\t', '\r', '\n', ',', ':':
			off++
		default:
			return off
		}
	}
	return off
}

func describeToken(tok json.Token) string {
	switch t := tok.(type) {
	case json.Delim:
		if t == '{' {
			return "an object"
		}
		if t == '[' {
			return "a list"
		}
		return string(t)
	case string:
		return "a string"
	case float64, json.Number:
		return "a number"
	case bool:
		return "a boolean"
	case nil:
		return "null"
	}
	return fmt.Sprintf("%v", tok)
}

func describeRaw(raw []byte) string {
	if len(raw) == 0 {
		return "nothing"
	}
	switch raw[0] {
	case '[':
		return "a list"
	case '"':
		return "a string"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	}
	return "a number"
}

// jsonKind names a Go type of a decoded field the way a JSON author thinks.
func jsonKind(goType string) string {
	switch {
	case strings.Contains(goType, "string"):
		return "a string"
	case strings.Contains(goType, "bool"):
		return "a boolean"
	case strings.Contains(goType, "float"), strings.Contains(goType, "int"):
		return "a number"
	case strings.HasPrefix(goType, "map"):
		return "an object"
	}
	return goType
}

// lineCounter maps byte offsets of a document to 1-based line numbers,
// cheaply for increasing offsets.
type lineCounter struct {
	data []byte
	off  int64
	line int
}

func newLineCounter(data []byte) *lineCounter { return &lineCounter{data: data, line: 1} }

func (l *lineCounter) at(off int64) int {
	off = min(max(off, 0), int64(len(l.data)))
	if off < l.off {
		l.off, l.line = 0, 1
	}
	l.line += bytes.Count(l.data[l.off:off], []byte{'\n'})
	l.off = off
	return l.line
}
