package record

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"time"
	"unicode/utf8"
)

// HAR is an HTTP Archive 1.2 document (http://www.softwareishard.com/blog/har-12-spec/)
// of the request log, without bodies. Fields of sessionproxy's own start
// with an underscore, as the format asks.
type HAR struct {
	Log HARLog `json:"log"`
}

// HARLog is a HAR's log object.
type HARLog struct {
	Version string     `json:"version"`
	Creator HARCreator `json:"creator"`
	Entries []HAREntry `json:"entries"`
}

// HARCreator names the program that wrote the HAR.
type HARCreator struct {
	Name    string `json:"name"`
	Version string `json:"version"`
}

// HAREntry is one request of a HAR.
type HAREntry struct {
	StartedDateTime string      `json:"startedDateTime"`
	Time            float64     `json:"time"` // milliseconds
	Request         HARRequest  `json:"request"`
	Response        HARResponse `json:"response"`
	Cache           struct{}    `json:"cache"`
	Timings         HARTimings  `json:"timings"`
	Session         string      `json:"_session,omitempty"`
	Outcome         Outcome     `json:"_outcome"`
	Rule            string      `json:"_rule,omitempty"`
	Retries         int         `json:"_retries"`
	Attempts        []Attempt   `json:"_attempts"`
}

// HARRequest is a HAR entry's request, without its body.
type HARRequest struct {
	Method      string       `json:"method"`
	URL         string       `json:"url"`
	HTTPVersion string       `json:"httpVersion"`
	Cookies     []HARPair    `json:"cookies"`
	Headers     []HARPair    `json:"headers"`
	QueryString []HARPair    `json:"queryString"`
	HeadersSize int          `json:"headersSize"`
	BodySize    int          `json:"bodySize"`
	PostData    *HARPostData `json:"postData,omitempty"`
}

// HARPostData is a request's body, or its start.
type HARPostData struct {
	MimeType string `json:"mimeType"`
	Text     string `json:"text"`
	Encoding string `json:"_encoding,omitempty"` // base64 when the body is not UTF-8 text
	Comment  string `json:"comment,omitempty"`
}

// HARResponse is a HAR entry's response, without its body.
type HARResponse struct {
	Status      int        `json:"status"`
	StatusText  string     `json:"statusText"`
	HTTPVersion string     `json:"httpVersion"`
	Cookies     []HARPair  `json:"cookies"`
	Headers     []HARPair  `json:"headers"`
	Content     HARContent `json:"content"`
	RedirectURL string     `json:"redirectURL"`
	HeadersSize int        `json:"headersSize"`
	BodySize    int        `json:"bodySize"`
}

// HARContent describes a response body, with its start as Text when the
// log keeps bodies.
type HARContent struct {
	Size     int    `json:"size"`
	MimeType string `json:"mimeType"`
	Text     string `json:"text,omitempty"`
	Encoding string `json:"encoding,omitempty"` // base64 when the body is not UTF-8 text
	Comment  string `json:"comment,omitempty"`
}

// HARPair is a header, query parameter or cookie.
type HARPair struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// HARTimings splits an entry's time; the proxy measures only the whole,
// which it reports as wait.
type HARTimings struct {
	Send    float64 `json:"send"`
	Wait    float64 `json:"wait"`
	Receive float64 `json:"receive"`
}

// NewHAR returns the HAR of reqs, in the order given; version is the
// creator's version.
func NewHAR(reqs []Request, version string) HAR {
	entries := make([]HAREntry, 0, len(reqs))
	for i := range reqs {
		entries = append(entries, harEntry(&reqs[i]))
	}
	return HAR{Log: HARLog{Version: "1.2", Creator: HARCreator{Name: "sessionproxy", Version: version}, Entries: entries}}
}

func harEntry(r *Request) HAREntry {
	ms := float64(r.Duration) / float64(time.Millisecond)
	var query []HARPair
	if u, err := url.Parse(r.URL); err == nil {
		query = harPairs(u.Query())
	}
	mime := r.ResponseHeader.Get("Content-Type")
	if mime == "" {
		mime = "x-unknown"
	}
	entry := HAREntry{
		StartedDateTime: r.Time.UTC().Format(time.RFC3339Nano),
		Time:            ms,
		Request: HARRequest{
			Method: r.Method, URL: r.URL, HTTPVersion: r.Proto,
			Cookies: []HARPair{}, Headers: harPairs(r.RequestHeader), QueryString: query,
			HeadersSize: -1, BodySize: -1,
		},
		Response: HARResponse{
			Status: r.Status, StatusText: http.StatusText(r.Status), HTTPVersion: r.Proto,
			Cookies: []HARPair{}, Headers: harPairs(r.ResponseHeader),
			Content:     HARContent{Size: 0, MimeType: mime},
			RedirectURL: r.ResponseHeader.Get("Location"),
			HeadersSize: -1, BodySize: -1,
		},
		Timings:  HARTimings{Send: 0, Wait: ms, Receive: 0},
		Session:  r.Session,
		Outcome:  r.Outcome,
		Rule:     r.Rule,
		Retries:  r.Retries,
		Attempts: r.Attempts,
	}
	if r.RequestBody != nil {
		text, enc := harText(r.RequestBody)
		entry.Request.BodySize = int(r.RequestBodySize)
		entry.Request.PostData = &HARPostData{MimeType: r.RequestHeader.Get("Content-Type"), Text: text, Encoding: enc,
			Comment: harCut(len(r.RequestBody), r.RequestBodySize)}
	}
	if r.ResponseBody != nil {
		text, enc := harText(r.ResponseBody)
		entry.Response.BodySize = int(r.ResponseBodySize)
		entry.Response.Content.Size = int(r.ResponseBodySize)
		entry.Response.Content.Text, entry.Response.Content.Encoding = text, enc
		entry.Response.Content.Comment = harCut(len(r.ResponseBody), r.ResponseBodySize)
	}
	return entry
}

// harText is a body as HAR text: itself when it is UTF-8, else base64.
func harText(b []byte) (text, encoding string) {
	if utf8.Valid(b) {
		return string(b), ""
	}
	return base64.StdEncoding.EncodeToString(b), "base64"
}

// harCut says when only the start of a body was kept.
func harCut(kept int, size int64) string {
	if int64(kept) < size {
		return fmt.Sprintf("the first %d of %d bytes", kept, size)
	}
	return ""
}

// harPairs lists a header or query's values by name, names sorted, never
// nil.
func harPairs[M ~map[string][]string](m M) []HARPair {
	names := make([]string, 0, len(m))
	for k := range m {
		names = append(names, k)
	}
	slices.Sort(names)
	out := []HARPair{}
	for _, k := range names {
		for _, v := range m[k] {
			out = append(out, HARPair{Name: k, Value: v})
		}
	}
	return out
}
