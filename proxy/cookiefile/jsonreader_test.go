package cookiefile

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
)

// FuzzElementLikeDecoder: for a JSON object, element records the problem a
// decoder with DisallowUnknownFields reports (the first in the object),
// although it finds unknown fields by a scan of its own.
func FuzzElementLikeDecoder(f *testing.F) {
	for _, obj := range []string{
		`{"name": "a", "domain": "x.com"}`,
		`{"name": "a", "colour": 1}`,
		`{"NAME": "a", "Domain": "x", "HOSTONLY": true, "SameSite": "lax"}`,
		`{"colour": 1, "secure": "yes"}`,
		`{"secure": "yes", "colour": 1}`,
		`{"\u017fecure": true, "\u212a": 1}`,
		`{"name": "a", "name": 1}`,
		`{"creation": {"a": 1}, "x": 2}`,
		`{"x": 2, "expires": [1]}`,
		`{"na\u006de": "a", "bad\ud800": 1}`,
		"{\"\xff\": 1}",
	} {
		f.Add(obj)
	}
	fields := jsonFields(reflect.TypeFor[jsonCookie]())
	f.Fuzz(func(t *testing.T, obj string) {
		var raw json.RawMessage
		if json.Unmarshal([]byte(obj), &raw) != nil || !strings.HasPrefix(strings.TrimLeft(obj, " \t\r\n"), "{") {
			return
		}
		var want jsonCookie
		dec := json.NewDecoder(strings.NewReader(obj))
		dec.DisallowUnknownFields()
		wantErr := dec.Decode(&want)

		var (
			got  jsonCookie
			errs problems
		)
		d := NewJSONReader([]byte(obj), ErrBadCookies)
		d.fields = fields
		ok, err := d.element(&got, 1, &errs)
		if err != nil {
			t.Fatalf("element: %v", err)
		}
		if te, isType := errors.AsType[*json.UnmarshalTypeError](wantErr); isType {
			if ok || len(errs.list) != 1 || !strings.HasPrefix(errs.list[0].Text, `field "`+te.Field+`" must be `) {
				t.Fatalf("decoder: %v; element: %t %v", wantErr, ok, errs.list)
			}
			return
		}
		switch {
		case wantErr == nil && !ok:
			t.Fatalf("decoder accepts it, element records %v", errs.list)
		case wantErr == nil && !reflect.DeepEqual(got, want):
			t.Fatalf("element decodes %+v, decoder %+v", got, want)
		case wantErr != nil && (ok || len(errs.list) != 1 || "json: "+errs.list[0].Text != wantErr.Error()):
			t.Fatalf("decoder: %v; element: %t %v", wantErr, ok, errs.list)
		}
	})
}
