package proxy

import (
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sessionproxy/sessionproxy/proxy/config"
)

// readmeBlocks returns the fenced code blocks of README.md in the language
// lang, without their fences.
func readmeBlocks(t *testing.T, lang string) []string {
	t.Helper()
	readme, err := os.ReadFile(filepath.Join("..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	rest := string(readme)
	for {
		var ok bool
		_, rest, ok = strings.Cut(rest, "```"+lang+"\n")
		if !ok {
			return out
		}
		var block string
		block, rest, _ = strings.Cut(rest, "```")
		out = append(out, block)
	}
}

// TestReadmeYAMLIsValid: every YAML block of the README is a configuration
// the proxy accepts as it is.
func TestReadmeYAMLIsValid(t *testing.T) {
	blocks := readmeBlocks(t, "yaml")
	if len(blocks) < 3 {
		t.Fatalf("the README has %d YAML blocks, want the rules, sites and Redis examples", len(blocks))
	}
	for i, b := range blocks {
		if _, err := config.Parse("README block "+strings.Fields(b)[0], []byte(b)); err != nil {
			t.Errorf("README YAML block %d does not load:\n%v\n%s", i, err, b)
		}
	}
}

// TestReadmeQuickStartCurl runs the README's first curl line as written
// but for the target: through the proxy, trusting data/ca.pem, as session
// alice, to a local HTTPS origin instead of example.com.
func TestReadmeQuickStartCurl(t *testing.T) {
	curl := requireProgram(t, "curl", "curl")
	blocks := readmeBlocks(t, "sh")
	line := ""
	for _, b := range blocks {
		if l, _, _ := strings.Cut(b, "\n"); strings.HasPrefix(l, "curl -x http://127.0.0.1:8080 --cacert data/ca.pem") {
			line = l
			break
		}
	}
	if line == "" {
		t.Fatal("no quick-start curl line in the README")
	}
	origin := httptest.NewTLSServer(originMux())
	defer origin.Close()
	cfg := testConfig(t)
	trustOrigin(t, cfg, origin)
	h := startProxy(t, cfg)
	args := strings.Fields(strings.NewReplacer(
		"http://127.0.0.1:8080", "http://"+h.proxyURL.Host,
		"data/ca.pem", filepath.Join(cfg.DataDir, "ca.pem"),
		"https://example.com/", origin.URL+"/echo",
		"'X-Session-Id: alice'", "X-Session-Id:alice",
	).Replace(line))
	cmd := exec.CommandContext(waitCtx(t, 30*time.Second), curl, append(args[1:], "-sS", "--fail")...)
	cmd.Env = clientEnv()
	runChild(t, cmd)
	if st := stateOf(t, h, "alice"); st.UsageCount != 1 {
		t.Errorf("session alice used %d times, want once", st.UsageCount)
	}
}

// TestReadmeOwnHostCurl runs the README's line that retires a session
// through http://sessionproxy/, with a real session id.
func TestReadmeOwnHostCurl(t *testing.T) {
	curl := requireProgram(t, "curl", "curl")
	line := ""
	for _, b := range readmeBlocks(t, "sh") {
		if l, _, _ := strings.Cut(b, "\n"); strings.Contains(l, "http://sessionproxy/sessions/SESSION_ID/retire") {
			line, _, _ = strings.Cut(l, "#")
			break
		}
	}
	if line == "" {
		t.Fatal("no own-host curl line in the README")
	}
	origin := httptest.NewServer(originMux())
	defer origin.Close()
	h := startProxy(t, testConfig(t))
	get(t, h.client("", ""), origin.URL+"/echo", "bob")
	args := strings.Fields(strings.NewReplacer("127.0.0.1:8080", h.proxyURL.Host, "SESSION_ID", "bob").Replace(line))
	cmd := exec.CommandContext(waitCtx(t, 30*time.Second), curl, append(args[1:], "-sS", "--fail")...)
	cmd.Env = clientEnv()
	runChild(t, cmd)
	if st := stateOf(t, h, "bob"); !st.Retired {
		t.Error("the README's line did not retire the session")
	}
}

// TestReadmeCurlSection runs every line of the README's "curl" section
// against a local TLS origin (its address for https://example.com/, the
// test proxy's for 127.0.0.1:8080, its CA file for data/ca.pem): the
// session header, the grep for the X-Session-* headers, and the session
// by proxy username.
func TestReadmeCurlSection(t *testing.T) {
	requireProgram(t, "curl", "curl")
	blocks := fencedBlocks(readmeSection(t, "### curl"))
	if len(blocks) != 1 || len(blocks[0].lines) != 3 {
		t.Fatalf("the curl section has %d blocks, want one of three lines", len(blocks))
	}
	origin := httptest.NewTLSServer(originMux())
	defer origin.Close()
	cfg := testConfig(t)
	trustOrigin(t, cfg, origin)
	h := startProxy(t, cfg)
	replace := strings.NewReplacer(
		"127.0.0.1:8080", h.proxyURL.Host,
		"data/ca.pem", filepath.Join(cfg.DataDir, "ca.pem"),
		"https://example.com/", origin.URL+"/echo",
	)
	var out []string
	for _, line := range blocks[0].lines {
		cmd := exec.CommandContext(waitCtx(t, 30*time.Second), "sh", "-c", replace.Replace(stripComment(line)))
		cmd.Env = clientEnv()
		out = append(out, runChild(t, cmd))
	}
	i := strings.IndexByte(out[0], '{') // after curl's progress meter, on stderr
	if i < 0 {
		t.Fatalf("the first line printed no answer of the origin: %q", out[0])
	}
	if seen := decodeSeen(t, out[0][i:]); seen.Header.Get("X-Session-Id") != "" {
		t.Errorf("the origin got the session header: %v", seen.Header)
	}
	if !strings.Contains(strings.ToLower(out[1]), "x-session-id: ") {
		t.Errorf("the grep line printed %q, want the X-Session-Id header", out[1])
	}
	for id, uses := range map[string]int{"alice": 1, "bob": 1} {
		if st := stateOf(t, h, id); st.UsageCount != uses {
			t.Errorf("session %s used %d times, want %d", id, st.UsageCount, uses)
		}
	}
}
