// Command gen writes the sample responses under testdata/rules as
// `curl -si` saves them (compressed bodies as raw bytes). Run from the
// module root: go run ./testdata/rules/gen testdata/rules
// The golden files then need: go test . -run TestRulesCommand -update
package main

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/zstd"
)

func crlf(s string) string { return strings.ReplaceAll(s, "\n", "\r\n") }

func gz(b string) []byte {
	var buf bytes.Buffer
	w, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	w.Write([]byte(b))
	w.Close()
	return buf.Bytes()
}

func br(b string) []byte {
	var buf bytes.Buffer
	w := brotli.NewWriterLevel(&buf, 9)
	w.Write([]byte(b))
	w.Close()
	return buf.Bytes()
}

func zs(b string) []byte {
	e, _ := zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1))
	return e.EncodeAll([]byte(b), nil)
}

const captchaHTML = `<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>Just one more step</title>
<link rel="stylesheet" href="/static/challenge.css"></head>
<body>
<main class="challenge">
<h1>Are you a robot?</h1>
<p>We have detected unusual traffic from your network. Please solve the
CAPTCHA below to continue to the site.</p>
<form method="post" action="/challenge/verify"><div class="g-recaptcha" data-sitekey="6Lc_example"></div>
<button type="submit">Continue</button></form>
</main>
</body>
</html>
`

const normalHTML = `<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>Blue kettle, 1.7 l - Example Shop</title></head>
<body>
<h1>Blue kettle, 1.7 l</h1>
<p class="price">EUR 34.90</p>
<p>In stock. Ships in 1-2 days.</p>
</body>
</html>
`

// main writes the samples one after another: a list of fixtures, as long
// as the samples are.
func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: go run ./testdata/rules/gen DIR")
		os.Exit(2)
	}
	dir := os.Args[1]
	write := func(name string, head string, body []byte) {
		data := append([]byte(crlf(head)+"\r\n"), body...)
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
	// 1. Cloudflare-like 403 challenge.
	cf := crlf(`<!DOCTYPE html><html><head><title>Just a moment...</title></head><body><noscript>Enable JavaScript and cookies to continue</noscript></body></html>
`)
	write("cloudflare-403.http", fmt.Sprintf(`HTTP/1.1 403 Forbidden
Date: Thu, 27 Nov 2025 10:00:00 GMT
Content-Type: text/html; charset=UTF-8
Content-Length: %d
Connection: close
cf-mitigated: challenge
Server: cloudflare
CF-RAY: 8e7f6a5b4c3d2e1f-FRA
`, len(cf)), []byte(cf))

	// 2. 200 captcha page, gzip, raw bytes.
	cz := gz(captchaHTML)
	write("captcha-gzip.http", fmt.Sprintf(`HTTP/1.1 200 OK
Date: Thu, 27 Nov 2025 10:00:01 GMT
Content-Type: text/html; charset=utf-8
Content-Encoding: gzip
Content-Length: %d
Vary: Accept-Encoding
`, len(cz)), cz)

	// 3. normal 200 page, bare LF (edited by hand).
	if err := os.WriteFile(filepath.Join(dir, "normal-200.http"), []byte(fmt.Sprintf(`HTTP/1.1 200 OK
Content-Type: text/html; charset=utf-8
Content-Length: %d
Set-Cookie: sid=abc123; Path=/; HttpOnly

%s`, len(normalHTML), normalHTML)), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}

	// 4. 429 with Retry-After.
	j429 := `{"error":"rate_limited","message":"Too many requests, slow down."}` + "\n"
	write("ratelimit-429.http", fmt.Sprintf(`HTTP/1.1 429 Too Many Requests
Content-Type: application/json
Retry-After: 30
Content-Length: %d
`, len(j429)), []byte(j429))

	// 5. 503.
	b503 := "<html><body><h1>503 Service Temporarily Unavailable</h1></body></html>\n"
	write("unavailable-503.http", fmt.Sprintf(`HTTP/1.1 503 Service Temporarily Unavailable
Server: nginx
Content-Type: text/html
Content-Length: %d
Connection: keep-alive
`, len(b503)), []byte(b503))

	// 6. HTTP/2 status line, lower-case header names (curl over h2), brotli.
	den := `<html><head><title>Access Denied</title></head><body><h1>Access Denied</h1>You don't have permission to access this page. Reference #18.2f3e4d5c</body></html>` + "\n"
	bz := br(den)
	write("http2-403-br.http", fmt.Sprintf(`HTTP/2 403
server: AkamaiGHost
content-type: text/html
content-encoding: br
content-length: %d
date: Thu, 27 Nov 2025 10:00:02 GMT
`, len(bz)), bz)

	// 7. chunked, raw (curl --raw): the captcha phrase is split across chunks.
	text := "<html><body><p>Please confirm you are not a robot: are you a ro"
	text2 := "bot? Solve the puzzle.</p></body></html>\n"
	chunked := fmt.Sprintf("%x\r\n%s\r\n%x;ext=1\r\n%s\r\n0\r\n\r\n", len(text), text, len(text2), text2)
	write("chunked-raw.http", `HTTP/1.1 200 OK
Content-Type: text/html; charset=utf-8
Transfer-Encoding: chunked
`, []byte(chunked))

	// 8. 100 Continue before the response.
	j201 := `{"id":42,"status":"created"}` + "\n"
	write("continue-100.http", fmt.Sprintf(`HTTP/1.1 100 Continue

HTTP/1.1 201 Created
Content-Type: application/json
Content-Length: %d
Location: /items/42
`, len(j201)), []byte(j201))

	// 9. Through a proxy: CONNECT answer, then HTTP/2 with zstd.
	jz := `{"items":[{"id":1,"name":"kettle"},{"id":2,"name":"toaster"}],"next":null}` + "\n"
	zz := zs(jz)
	write("proxy-connect-zstd.http", fmt.Sprintf(`HTTP/1.1 200 Connection established

HTTP/2 200
content-type: application/json
content-encoding: zstd
content-length: %d
`, len(zz)), zz)

	// 10. An image: not text-like.
	png := []byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89")
	write("image-png.http", fmt.Sprintf(`HTTP/1.1 200 OK
Content-Type: image/png
Content-Length: %d
`, len(png)), png)

	// 12. An encoding the proxy cannot undo.
	write("legacy-compress.http", `HTTP/1.0 200 OK
Content-Type: text/plain
Content-Encoding: compress
`, []byte("\x1f\x9d\x90captcha"))

	// 11. Saved with curl --compressed: header says gzip, body is decoded.
	write("compressed-saved-decoded.http", fmt.Sprintf(`HTTP/1.1 200 OK
Content-Type: text/html; charset=utf-8
Content-Encoding: gzip
Content-Length: %d
`, len(cz)), []byte(captchaHTML))
}
