package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"strings"

	"github.com/sessionproxy/sessionproxy/proxy"
)

const rulesUsage = `usage: sessionproxy rules [-config FILE] [-host HOST] [-json] RESPONSE-FILE...

Explains, for each saved HTTP response (as "curl -si URL > FILE" writes it),
which rule of the config matches and what it would do, with one line per rule
saying which of its conditions hold. Nothing is sent anywhere.

`

// runRules is the "rules" subcommand: it returns 0 when every file was
// explained, 1 when some file could not be read or parsed (the others are
// explained anyway; problems go to stderr as "FILE: problem"), 2 for a bad
// command line or a config that does not load.
func runRules(args []string, stdout, stderr io.Writer) int {
	fset := flag.NewFlagSet("sessionproxy rules", flag.ContinueOnError)
	fset.SetOutput(stderr)
	fset.Usage = func() {
		fmt.Fprint(stderr, rulesUsage)
		fset.PrintDefaults()
	}
	configPath := fset.String("config", "", "YAML config `file` whose rules, default_action and body_limit apply (default: built-in defaults)")
	hostFlag := fset.String("host", "", "request `host` that host conditions are evaluated against, or a URL to take it from (default \"\")")
	asJSON := fset.Bool("json", false, "print a JSON array, one object per file, instead of text")
	if err := fset.Parse(args); err != nil {
		return 2
	}
	if fset.NArg() == 0 {
		fmt.Fprintln(stderr, "sessionproxy rules: no response files given")
		fset.Usage()
		return 2
	}
	host, err := requestHost(*hostFlag)
	if err != nil {
		fmt.Fprintf(stderr, "sessionproxy rules: -host: %v\n", err)
		return 2
	}
	cfg := proxy.Default()
	if *configPath != "" {
		if cfg, err = proxy.Load(*configPath); err != nil {
			fmt.Fprintln(stderr, err)
			return 2
		}
	}

	code := 0
	var results []fileExplanation
	for _, name := range fset.Args() {
		e, err := explainFile(cfg, host, name)
		if err != nil {
			fmt.Fprintf(stderr, "%s: %v\n", name, err)
			code = 1
			continue
		}
		if *asJSON {
			results = append(results, fileExplanation{File: name, Explanation: e})
			continue
		}
		printExplanation(stdout, name, &e)
	}
	if *asJSON {
		if results == nil {
			results = []fileExplanation{}
		}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(results); err != nil {
			fmt.Fprintf(stderr, "sessionproxy rules: %v\n", err)
			return 1
		}
	}
	return code
}

// fileExplanation is one element of the -json output.
type fileExplanation struct {
	File string `json:"file"`
	proxy.Explanation
}

// requestHost returns the host named by -host: a host (a port is ignored
// by the rules) or a URL whose host is taken.
func requestHost(s string) (string, error) {
	if !strings.Contains(s, "://") {
		if strings.ContainsAny(s, " /\t") {
			return "", fmt.Errorf("want a host like www.example.com or a URL (got %q)", s)
		}
		return s, nil
	}
	u, err := url.Parse(s)
	if err != nil {
		return "", errors.Unwrap(err)
	}
	if u.Hostname() == "" {
		return "", fmt.Errorf("URL without a host (got %q)", u.Redacted())
	}
	return u.Hostname(), nil
}

// explainFile reads and explains one saved response.
func explainFile(cfg *proxy.Config, host, name string) (proxy.Explanation, error) {
	data, err := os.ReadFile(name)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err // the file name is printed already
		}
		return proxy.Explanation{}, err
	}
	resp, body, err := proxy.ParseRawResponse(data)
	if err != nil {
		return proxy.Explanation{}, errors.New(strings.TrimPrefix(err.Error(), "proxy: "))
	}
	return proxy.Explain(cfg.Rules, host, resp, body, cfg.BodyLimit), nil
}

// printExplanation writes e as text: a summary line, the body, the
// verdict, then one line per rule.
func printExplanation(w io.Writer, name string, e *proxy.Explanation) {
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
