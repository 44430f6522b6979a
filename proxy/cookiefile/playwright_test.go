package cookiefile

import "testing"

func TestPlaywrightParse(t *testing.T) {
	runParseCases(t, parsePlaywright, []parseCase{
		{name: "storageState", in: `{
  "cookies": [
    {"name": "a", "value": "1", "domain": ".example.com", "path": "/", "expires": 1893553445.25,
     "httpOnly": true, "secure": true, "sameSite": "Strict"},
    {"name": "b", "value": "2", "domain": "www.example.com", "path": "/p", "expires": -1,
     "httpOnly": false, "secure": false, "sameSite": "lax", "partitionKey": "ignored"}
  ],
  "origins": [{"origin": "https://example.com", "localStorage": []}]
}`, want: "3:a=1 dom=example.com path=/ host=false sec=true http=true ss=Strict exp=2030-01-02T03:04:05.25Z\n" +
			"5:b=2 dom=www.example.com path=/p host=true sec=false http=false ss=Lax exp=session\n"},
		{name: "microseconds exact, longer fractions cut, exponent", in: `{"cookies": [
{"name": "a", "domain": "x.com", "expires": 1893553445.123456789},
{"name": "b", "domain": "x.com", "expires": 1.8935534451e9},
{"name": "c", "domain": "x.com", "expires": 0},
{"name": "d", "domain": "x.com"}]}`,
			want: "2:a= dom=x.com path=/ host=true sec=false http=false ss= exp=2030-01-02T03:04:05.123456Z\n" +
				"3:b= dom=x.com path=/ host=true sec=false http=false ss= exp=2030-01-02T03:04:05.1Z\n" +
				"4:c= dom=x.com path=/ host=true sec=false http=false ss= exp=session\n" +
				"5:d= dom=x.com path=/ host=true sec=false http=false ss= exp=session\n"},
		{name: "no cookies key", in: `{"origins": []}`, wantErr: []string{`"cookies" list`}},
		{name: "a list", in: `[]`, wantErr: []string{"line 1:", "want a storageState object, got a list"}},
		{name: "cookies not a list", in: "{\n\"cookies\": {}}", wantErr: []string{"line 2:", "cookies must be a list"}},
		{name: "syntax error", in: "{\"cookies\": [\n{\"name\": \"a\",,}]}", wantErr: []string{"line 2:", "invalid character"}},
		{name: "truncated", in: "{\"cookies\": [\n{\"name\": \"a\"", wantErr: []string{"line 2:", "ends too early"}},
		{name: "wrong type", in: "{\"cookies\": [\n{\"name\": \"a\",\n \"domain\": 5}]}", wantErr: []string{"line 3:", `"domain" must be a string, got number`}},
		{name: "no name", in: "{\"cookies\": [\n{\"domain\": \"x.com\"}]}", wantErr: []string{"line 2:", "without a name"}},
		{name: "not an object", in: "{\"cookies\": [\n1]}", wantErr: []string{"line 2:", "want a cookie object, got a number"}},
		{name: "bad sameSite", in: "{\"cookies\": [\n{\"name\": \"a\", \"domain\": \"x.com\", \"sameSite\": \"Sometimes\"}]}",
			wantErr: []string{"line 2:", "sameSite must be Lax, Strict or None"}},
		{name: "expiry too late", in: "{\"cookies\": [\n{\"name\": \"a\", \"domain\": \"x.com\", \"expires\": 1e12}]}",
			wantErr: []string{"line 2:", "after year 9999"}},
		{name: "trailing data", in: "{\"cookies\": []}\n{}", wantErr: []string{"line 2:", "unexpected data"}},
	})
}

func FuzzParsePlaywright(f *testing.F) {
	fuzzCookieFormat(f, Playwright,
		`{"cookies":[{"name":"a","value":"1","domain":".example.com","path":"/","expires":-1,"httpOnly":false,"secure":false,"sameSite":"Lax"}],"origins":[]}`,
		`{"cookies":[{"name":"a","domain":"x.com","expires":1.5e9},{"name":"b","domain":".x.com","expires":1893553445.1234567}]}`,
		`{"cookies":null}`, `{"cookies":[1,"x",{}]}`)
}
