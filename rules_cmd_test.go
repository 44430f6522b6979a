package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files of TestRulesCommand")

// sampleResponses returns the saved responses under testdata/rules, sorted.
func sampleResponses(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", "rules", "*.http"))
	if err != nil || len(files) < 10 {
		t.Fatalf("sample responses: %v, %d found", err, len(files))
	}
	return files
}

// TestRulesCommand: `sessionproxy rules` on the sample responses prints
// the golden explanation and exits 0.
func TestRulesCommand(t *testing.T) {
	all := sampleResponses(t)
	cfg := filepath.Join("testdata", "rules", "rules.yaml")
	sample := func(names ...string) []string {
		var out []string
		for _, n := range names {
			out = append(out, filepath.Join("testdata", "rules", n))
		}
		return out
	}
	tests := []struct {
		golden string
		args   []string
	}{
		{"rules.golden", append([]string{"-config", cfg}, all...)},
		{"defaults.golden", all},
		{"host.golden", append([]string{"-config", cfg, "-host", "https://shop.example.com:8443/cart?id=1"},
			sample("unavailable-503.http", "normal-200.http")...)},
		{"json.golden", append([]string{"-config", cfg, "-json", "-host", "www.example.com"},
			sample("cloudflare-403.http", "captcha-gzip.http", "image-png.http")...)},
	}
	for _, tt := range tests {
		t.Run(tt.golden, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if code := runRules(tt.args, &stdout, &stderr); code != 0 {
				t.Fatalf("exit status %d, want 0; stderr:\n%s", code, stderr.String())
			}
			if stderr.Len() > 0 {
				t.Errorf("stderr is not empty:\n%s", stderr.String())
			}
			path := filepath.Join("testdata", "rules", tt.golden)
			if *update {
				if err := os.WriteFile(path, stdout.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if got := stdout.String(); got != string(want) {
				t.Errorf("output differs from %s (run with -update after checking):\n--- got\n%s\n--- want\n%s", path, got, want)
			}
		})
	}
}

// TestRulesCommandVerdicts: the verdicts that the sample config is there to
// show, looked up in the -json output rather than the golden text.
func TestRulesCommandVerdicts(t *testing.T) {
	for _, tt := range []struct {
		host string
		want map[string]string // file -> "rule action"
	}{
		{"", map[string]string{
			"cloudflare-403.http":           "cloudflare-challenge retire",
			"captcha-gzip.http":             "captcha-page retire",
			"chunked-raw.http":              "captcha-page retire",
			"compressed-saved-decoded.http": "captcha-page retire",
			"http2-403-br.http":             "blocked-status retire",
			"ratelimit-429.http":            "rate-limited bad",
			"unavailable-503.http":          " none",
			"normal-200.http":               " good",
			"image-png.http":                " good",
			"continue-100.http":             " good",
			"proxy-connect-zstd.http":       " good",
		}},
		{"api.example.com", map[string]string{"unavailable-503.http": "shop-errors bad"}},
	} {
		args := []string{"-json", "-config", filepath.Join("testdata", "rules", "rules.yaml"), "-host", tt.host}
		args = append(args, sampleResponses(t)...)
		var stdout, stderr bytes.Buffer
		if code := runRules(args, &stdout, &stderr); code != 0 {
			t.Fatalf("exit status %d; stderr:\n%s", code, stderr.String())
		}
		var got []struct {
			File   string `json:"file"`
			Host   string `json:"host"`
			Rule   string `json:"rule"`
			Action string `json:"action"`
		}
		if err := json.Unmarshal(stdout.Bytes(), &got); err != nil {
			t.Fatalf("-json output is not JSON: %v\n%s", err, stdout.String())
		}
		seen := map[string]bool{}
		for _, g := range got {
			name := filepath.Base(g.File)
			seen[name] = true
			if g.Host != tt.host {
				t.Errorf("%s: host %q, want %q", name, g.Host, tt.host)
			}
			if want, ok := tt.want[name]; ok && g.Rule+" "+g.Action != want {
				t.Errorf("host %q, %s: verdict %q, want %q", tt.host, name, g.Rule+" "+g.Action, want)
			}
		}
		for name := range tt.want {
			if !seen[name] {
				t.Errorf("no result for %s", name)
			}
		}
	}
}

// TestRulesCommandBadFiles: a file that cannot be read or parsed is
// reported on stderr as FILE: problem, the others are still explained, and
// the exit status is 1.
func TestRulesCommandBadFiles(t *testing.T) {
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage.http")
	if err := os.WriteFile(garbage, []byte("<html>saved without -i</html>\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing.http")
	good := filepath.Join("testdata", "rules", "cloudflare-403.http")
	for _, asJSON := range []bool{false, true} {
		args := []string{garbage, missing, dir, good}
		if asJSON {
			args = append([]string{"-json"}, args...)
		}
		var stdout, stderr bytes.Buffer
		if code := runRules(args, &stdout, &stderr); code != 1 {
			t.Fatalf("exit status %d, want 1; stderr:\n%s", code, stderr.String())
		}
		wantErr := garbage + `: not a saved HTTP response: line 1: no HTTP version in status line "<html>saved without -i</html>"` +
			` (want e.g. "HTTP/1.1 200 OK" or "HTTP/2 403")` + "\n" +
			missing + ": no such file or directory\n" +
			dir + ": is a directory\n"
		if stderr.String() != wantErr {
			t.Errorf("stderr:\n%s\nwant:\n%s", stderr.String(), wantErr)
		}
		out := stdout.String()
		if !strings.Contains(out, good) || !strings.Contains(out, "blocked-status") || strings.Contains(out, "garbage.http") {
			t.Errorf("stdout does not explain just the good file:\n%s", out)
		}
		if asJSON && !json.Valid(stdout.Bytes()) {
			t.Errorf("-json output is not JSON:\n%s", out)
		}
	}
}

// TestRulesCommandBadUsage: a bad command line or a config that does not
// load is exit status 2, with the problem on stderr and nothing explained.
func TestRulesCommandBadUsage(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("rules:\n  - name: x\n    status: [999]\n    action: retire\n  - body: '(unclosed'\n    action: ban\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	good := filepath.Join("testdata", "rules", "normal-200.http")
	tests := []struct {
		name string
		args []string
		want []string
	}{
		{"no files", nil, []string{"no response files given", "usage: sessionproxy rules"}},
		{"unknown flag", []string{"-nope", good}, []string{"-nope"}},
		{"bad host", []string{"-host", "a b", good}, []string{`-host: want a host like www.example.com or a URL (got "a b")`}},
		{"url without host", []string{"-host", "https:///x", good}, []string{"-host: URL without a host"}},
		{"missing config", []string{"-config", filepath.Join(dir, "none.yaml"), good}, []string{"none.yaml", "no such file"}},
		{"invalid config", []string{"-config", bad, good}, []string{
			bad + `:3: rules[0].status: must be a status code 100-599 or a class like "4xx" (got 999)`,
			bad + ":5: rules[1].body: invalid regex",
			bad + `:6: rules[1].action: must be one of good, bad, retire, none (got "ban")`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if code := runRules(tt.args, &stdout, &stderr); code != 2 {
				t.Fatalf("exit status %d, want 2; stderr:\n%s", code, stderr.String())
			}
			if stdout.Len() > 0 {
				t.Errorf("something was explained:\n%s", stdout.String())
			}
			for _, w := range tt.want {
				if !strings.Contains(stderr.String(), w) {
					t.Errorf("stderr lacks %q:\n%s", w, stderr.String())
				}
			}
		})
	}
}
