package cookiefile

import (
	"strings"
	"testing"
)

func TestCookieJSONParse(t *testing.T) {
	runParseCases(t, parseCookieJSON, []parseCase{
		{name: "exported list", in: `[
  {"name": "a", "value": "1", "domain": "example.com", "path": "/", "hostOnly": false, "secure": true,
   "httpOnly": true, "sameSite": "None", "expires": "2030-01-02T04:04:05.5+01:00", "creation": "2026-01-01T00:00:00Z"},
  {"name": "b", "domain": ".Example.com", "hostOnly": true, "expires": "0001-01-01T00:00:00Z"},
  {"name": "c", "domain": "example.com", "expires": null}
]`, want: "2:a=1 dom=example.com path=/ host=false sec=true http=true ss=None exp=2030-01-02T03:04:05.5Z\n" +
			"4:b= dom=Example.com path=/ host=true sec=false http=false ss= exp=session\n" +
			"5:c= dom=example.com path=/ host=false sec=false http=false ss= exp=session\n"},
		{name: "null", in: "null", want: ""},
		{name: "unknown field named", in: "[\n{\"name\": \"a\", \"domain\": \"x.com\", \"colour\": 1}]", wantErr: []string{"line 2:", `unknown field "colour"`}},
		{name: "bad time", in: "[\n{\"name\": \"a\", \"domain\": \"x.com\", \"expires\": \"tomorrow\"}]", wantErr: []string{"line 2:", "RFC 3339", `"tomorrow"`}},
		{name: "an object", in: `{"cookies": []}`, wantErr: []string{"line 1:", "the document must be a list, got an object"}},
		{name: "missing domain", in: "[\n\n{\"name\": \"a\"}]", wantErr: []string{"line 3:", "domain is empty"}},
		{name: "wrong type", in: "[{\"name\": \"a\", \"domain\": \"x.com\",\n\"secure\": \"yes\"}]", wantErr: []string{"line 2:", `"secure" must be a boolean`}},
		{name: "empty", in: "", wantErr: []string{"line 1:", "ends too early"}},
	})
}

// TestCookieJSONParseAt: the cookies of a POST /sessions body are reported
// with the lines of the whole body.
func TestCookieJSONParseAt(t *testing.T) {
	body := []byte("{\n\"id\": \"x\",\n\"cookies\": [\n{\"name\": \"a\", \"domain\": \"x.com\"},\n{\"name\": \"\", \"domain\": \"x.com\"}\n]}")
	off := int64(strings.Index(string(body), "["))
	_, err := ParseJSONAt(body, off)
	if err == nil || !strings.Contains(err.Error(), "line 5: the name is empty") {
		t.Errorf("error = %v, want one at line 5", err)
	}
}

func FuzzParseCookieJSON(f *testing.F) {
	fuzzCookieFormat(f, JSON,
		`[{"name":"a","value":"1","domain":"example.com","path":"/","hostOnly":true,"secure":false,"httpOnly":false,"expires":"2030-01-02T03:04:05Z","creation":"2026-01-01T00:00:00Z"}]`,
		`[{"name":"a","domain":".x.com","sameSite":"strict","expires":"2030-01-02T03:04:05.999999999-07:00"}]`,
		`[{"name":"a","domain":"x.com","x":1}]`, `null`, `[]`)
}
