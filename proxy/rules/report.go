package rules

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
)

// ReportOptions says what Report explains saved responses against. Its zero
// value: no rules (only the built-in default action), the default body
// limit, host "", text output.
type ReportOptions struct {
	Rules     *Set   // the rules that decide; nil has none (pass Defaults() for the built-in rules)
	BodyLimit int64  // bytes of a body that body conditions see; <= 0 means DefaultBodyLimit
	Host      string // request host that host conditions are evaluated against (a port is ignored)
	JSON      bool   // write a JSON array, one object per file, instead of text
}

// Report explains each saved HTTP response file (as "curl -si URL > FILE"
// writes it; see ParseRawResponse and Explain) and writes the explanations
// to w: as text, a summary, the body, the verdict and one line per rule
// saying which of its conditions hold; or as JSON. A file that cannot be
// read or parsed is reported on errw as "FILE: problem" and left out; the
// others are explained anyway.
//
// Report returns how many files it left out and, for JSON output only, the
// error of writing to w as the writer returned it (text output ignores
// write errors). Nothing is sent anywhere. Report is safe for concurrent use
// when its writers are.
func Report(w, errw io.Writer, files []string, opts ReportOptions) (failed int, err error) {
	var results []fileExplanation
	for _, name := range files {
		e, problem := explainFile(opts, name)
		if problem != "" {
			fmt.Fprintf(errw, "%s: %s\n", name, problem)
			failed++
			continue
		}
		if opts.JSON {
			results = append(results, fileExplanation{File: name, Explanation: e})
			continue
		}
		printText(w, name, &e)
	}
	if !opts.JSON {
		return failed, nil
	}
	if results == nil {
		results = []fileExplanation{}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return failed, enc.Encode(results)
}

// fileExplanation is one element of the JSON output.
type fileExplanation struct {
	File string `json:"file"`
	Explanation
}

// explainFile reads and explains one saved response. When it cannot,
// problem says why, without the file name (Report prints it first).
func explainFile(opts ReportOptions, name string) (e Explanation, problem string) {
	data, err := os.ReadFile(name)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err // the file name is printed already
		}
		return Explanation{}, err.Error()
	}
	resp, body, err := ParseRawResponse(data)
	if err != nil {
		var re *ResponseError
		if errors.As(err, &re) {
			return Explanation{}, "not a saved HTTP response: " + re.Problem
		}
		return Explanation{}, err.Error()
	}
	return Explain(opts.Rules, opts.Host, resp, body, opts.BodyLimit), ""
}

// printText writes e as text: a summary line, the body, the verdict, then
// one line per rule.
func printText(w io.Writer, name string, e *Explanation) {
	ct := e.ContentType
	if ct == "" {
		ct = "no Content-Type"
	}
	fmt.Fprintf(w, "%s: %s (%s), %s", name, e.StatusText, e.Proto, ct)
	if e.ContentEncoding != "" {
		fmt.Fprintf(w, ", %s", e.ContentEncoding)
	}
	if e.TransferEncoding != "" {
		fmt.Fprintf(w, ", %s", e.TransferEncoding)
	}
	fmt.Fprintf(w, ", %d body bytes\n", e.Body.Size)

	b := e.Body
	switch {
	case !b.Inspected:
		fmt.Fprintf(w, "  body not inspected: %s\n", b.Why)
	case b.Examined < b.Size:
		fmt.Fprintf(w, "  body inspected: %d bytes decoded from the first %d (body_limit)\n", b.Decoded, b.Examined)
	default:
		fmt.Fprintf(w, "  body inspected: %d bytes decoded\n", b.Decoded)
	}
	if b.Note != "" {
		fmt.Fprintf(w, "  body note: %s\n", b.Note)
	}
	if b.DecodeError != "" {
		fmt.Fprintf(w, "  body decode error: %s\n", b.DecodeError)
	}

	verdict := string(e.Action)
	if e.Retry {
		verdict += ", retry"
	}
	if e.Rule != "" {
		fmt.Fprintf(w, "  verdict: rule %s -> %s\n", e.Rule, verdict)
	} else {
		fmt.Fprintf(w, "  verdict: no rule -> %s (%s)\n", verdict, e.Default)
	}

	for _, r := range e.Rules {
		var failed, all []string
		for _, c := range r.Conditions {
			d := c.Cond + " " + c.Detail
			all = append(all, d)
			if !c.OK {
				failed = append(failed, d)
			}
		}
		var what string
		switch {
		case r.Decided:
			what = "MATCH (" + strings.Join(all, "; ") + ")"
		case r.Reached:
			what = "no (" + strings.Join(failed, "; ") + ")"
		case r.Matched:
			what = "not reached, would match (" + strings.Join(all, "; ") + ")"
		default:
			what = "not reached, would not match (" + strings.Join(failed, "; ") + ")"
		}
		fmt.Fprintf(w, "  rule %s: %s\n", r.Name, what)
	}
}
