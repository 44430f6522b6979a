package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/metrics"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sessionproxy/sessionproxy/sessionpool"
	"github.com/sessionproxy/sessionproxy/sessionpool/sessionpooltest"
)

// TestBadConfigExitsTwo: a bad config is reported with FILE:LINE and exit
// status 2, and nothing starts.
func TestBadConfigExitsTwo(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(path, []byte("listen: 127.0.0.1:0\nlistne: x\npool:\n  strategy: randum\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	if code := run([]string{"-config", path}, &stderr); code != 2 {
		t.Fatalf("exit status %d, want 2; stderr:\n%s", code, stderr.String())
	}
	out := stderr.String()
	for _, want := range []string{path + ":2: listne", path + ":4: pool.strategy"} {
		if !strings.Contains(out, want) {
			t.Errorf("stderr lacks %q:\n%s", want, out)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "data")); err == nil {
		t.Errorf("a data directory was created for a config that did not load")
	}
}

// TestUnusableConfigFilesExitTwo: files the config names that cannot be
// used are a bad config too: exit status 2, every one of them reported, and
// no CA generated in their place.
func TestUnusableConfigFilesExitTwo(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "not-a-ca.txt")
	if err := os.WriteFile(notPEM, []byte("hello\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "typo")
	path := filepath.Join(dir, "files.yaml")
	cfg := fmt.Sprintf("listen: 127.0.0.1:0\nadmin_listen: \"\"\ndata_dir: %s\nmitm:\n  upstream_ca: [%s, %s]\n  ca_cert: %s\n  ca_key: %s\n",
		filepath.Join(dir, "data"), notPEM, filepath.Join(missing, "upstream.pem"), filepath.Join(missing, "ca.pem"), filepath.Join(missing, "ca-key.pem"))
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	if code := run([]string{"-config", path}, &stderr); code != 2 {
		t.Fatalf("exit status %d, want 2; stderr:\n%s", code, stderr.String())
	}
	for _, want := range []string{notPEM, filepath.Join(missing, "upstream.pem"), filepath.Join(missing, "ca.pem"), filepath.Join(missing, "ca-key.pem")} { // each of them
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("stderr does not name %s:\n%s", want, stderr.String())
		}
	}
	if _, err := os.Stat(missing); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a CA was generated at %s (%v)", missing, err)
	}
}

// TestBadPersistStateKeyExitsTwo: a pool.persist_state_key the file store
// cannot name its files after (a path separator, "..", too long to leave
// room for "@<site>") is a bad config: FILE:LINE, exit status 2, and no CA
// generated, rather than exit 1 from the pool once the CA was made.
func TestBadPersistStateKeyExitsTwo(t *testing.T) {
	for name, key := range map[string]string{
		"separator": "pools/main",
		"dotdot":    "..",
		"too long":  strings.Repeat("k", 230),
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			data := filepath.Join(dir, "data")
			path := filepath.Join(dir, "c.yaml")
			cfg := fmt.Sprintf("listen: 127.0.0.1:0\nadmin_listen: \"\"\ndata_dir: %s\npool:\n  persist_state_key: %q\n", data, key)
			if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
				t.Fatal(err)
			}
			var stderr lockedBuffer
			exit := make(chan int, 1)
			go func() { exit <- run([]string{"-config", path}, &stderr) }()
			var code int
			select {
			case code = <-exit:
			case <-time.After(20 * time.Second):
				t.Fatal("the proxy started on a persist_state_key its store cannot use")
			}
			out := stderr.String()
			if code != 2 {
				t.Errorf("exit status %d, want 2; stderr:\n%s", code, out)
			}
			if want := path + ":5: pool.persist_state_key"; !strings.Contains(out, want) {
				t.Errorf("stderr lacks %q:\n%s", want, out)
			}
			if _, err := os.Stat(filepath.Join(data, "ca.pem")); err == nil {
				t.Errorf("a CA was generated for a config that does not load")
			}
		})
	}
}

// lockedBuffer is a bytes.Buffer safe for concurrent use, for the stderr
// of a run that may still be writing when it is read.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer // guarded by mu
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestBadFlagsExitTwo: an unknown flag, a stray argument, a -pprof
// address off loopback or a -config file that cannot be read is exit
// status 2.
func TestBadFlagsExitTwo(t *testing.T) {
	dir := t.TempDir()
	for _, args := range [][]string{{"-nope"}, {"stray"}, {"-log-format", "xml"},
		{"-pprof", "0.0.0.0:0"}, {"-pprof", ":0"}, {"-pprof", "localhost"},
		{"-config", filepath.Join(dir, "none.yaml")}, {"-config", dir}} {
		var stderr bytes.Buffer
		if code := run(args, &stderr); code != 2 {
			t.Errorf("run(%q) = %d, want 2; stderr: %s", args, code, stderr.String())
		}
	}
}

// TestSignals: the program starts on a config, logs where it listens and
// the CA's SPKI hash, re-reads its config on SIGHUP, and on SIGTERM persists
// the pool and exits with status 0.
func TestSignals(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "ok.yaml")
	cfg := "listen: 127.0.0.1:0\nadmin_listen: 127.0.0.1:0\nlog_format: json\ndata_dir: " + filepath.Join(dir, "data") + "\n"
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	sc, pr, done := startRun(path)
	var logs []string
	for sc.Scan() {
		logs = append(logs, sc.Text())
		if strings.Contains(sc.Text(), "admin API listening") {
			break
		}
	}
	joined := strings.Join(logs, "\n")
	for _, want := range []string{`"ca_spki_sha256":"`, `"proxy":"127.0.0.1:`, `"ca_cert":"`} {
		if !strings.Contains(joined, want) {
			t.Errorf("start-up logs lack %s:\n%s", want, joined)
		}
	}
	// SIGHUP re-reads the file: a bad one is refused, a good one applied.
	for _, step := range []struct{ config, wantLog string }{
		{cfg + "cookies: sometimes\n", "config reload refused"},
		{cfg + "cookies: client\n", "config reloaded"},
	} {
		if err := os.WriteFile(path, []byte(step.config), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		found := false
		for sc.Scan() {
			if strings.Contains(sc.Text(), step.wantLog) {
				found = true
				break
			}
		}
		if !found {
			t.Fatalf("no %q log line after SIGHUP", step.wantLog)
		}
	}
	if err := syscall.Kill(os.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	go io.Copy(io.Discard, pr)
	if code := <-done; code != 0 {
		t.Fatalf("exit status %d after SIGTERM, want 0", code)
	}
	if _, err := os.Stat(filepath.Join(dir, "data", "SDK_SESSION_POOL_STATE.sites.json")); err != nil {
		t.Errorf("the pool was not persisted at shutdown: %v", err)
	}
	info, err := os.Stat(filepath.Join(dir, "data", "ca-key.pem"))
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Errorf("CA key: %v, mode %v; want 0600", err, info.Mode().Perm())
	}
}

// TestHUPWhileStarting: a SIGHUP that comes while the proxy is still
// reading its config does not kill it (Go's default for SIGHUP) but reloads
// the config once it runs. The config is a FIFO: the instance opens it
// after it has started listening for SIGHUP, so the signal goes exactly
// then.
func TestHUPWhileStarting(t *testing.T) {
	runAsInstance()
	dir := t.TempDir()
	path := filepath.Join(dir, "config.yaml")
	if err := syscall.Mkfifo(path, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := "listen: 127.0.0.1:0\nadmin_listen: \"\"\nlog_format: json\ndata_dir: " + filepath.Join(dir, "data") + "\n"
	cmd, logs := startInstance(t, "TestHUPWhileStarting", path)
	feed := func(hup bool) {
		f, err := os.OpenFile(path, os.O_WRONLY, 0) // returns once the instance opens the FIFO to read it
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if hup {
			if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := io.WriteString(f, cfg); err != nil {
			t.Fatal(err)
		}
	}
	feed(true)
	sc := bufio.NewScanner(logs)
	listening := false
	for !listening && sc.Scan() {
		listening = strings.Contains(sc.Text(), "sessionproxy listening")
	}
	if !listening {
		t.Fatalf("the instance did not start after a SIGHUP while it read its config: %v", cmd.Wait())
	}
	feed(false) // the reload the early SIGHUP asked for reads the config again
	reloaded := false
	for !reloaded && sc.Scan() {
		reloaded = strings.Contains(sc.Text(), "config reloaded")
	}
	if !reloaded {
		t.Errorf("no reload after the early SIGHUP")
	}
	go io.Copy(io.Discard, logs)
	cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Errorf("after SIGTERM: %v, want exit status 0", err)
	}
}

// TestKilledInstanceLosesNothing: an instance on a Redis pool that is killed
// (SIGKILL, no shutdown) while a request is in flight loses nothing it had
// acknowledged: the pool on the server has every use and cookie of the
// responses its clients received.
func TestKilledInstanceLosesNothing(t *testing.T) {
	runAsInstance() // the instance to kill
	rs := sessionpooltest.Start(t)
	entered, release := make(chan struct{}), make(chan struct{})
	mux := http.NewServeMux()
	mux.HandleFunc("/set", func(w http.ResponseWriter, r *http.Request) {
		http.SetCookie(w, &http.Cookie{Name: r.URL.Query().Get("name"), Value: "1", Path: "/"})
	})
	mux.HandleFunc("/hang", func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	origin := httptest.NewServer(mux)
	defer origin.Close()
	defer close(release)

	dir := t.TempDir()
	path := filepath.Join(dir, "redis.yaml")
	cfg := "listen: 127.0.0.1:0\nadmin_listen: \"\"\nlog_format: json\ndata_dir: " + filepath.Join(dir, "data") +
		"\npool:\n  store: " + rs.URL(0) + "\n"
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd, logs := startInstance(t, "TestKilledInstanceLosesNothing", path)
	sc := bufio.NewScanner(logs)
	var addr string
	for addr == "" && sc.Scan() {
		var line struct{ Msg, Proxy string }
		if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "sessionproxy listening" {
			addr = line.Proxy
		}
	}
	if addr == "" {
		t.Fatalf("the instance never said where it listens (%v)", sc.Err())
	}
	go io.Copy(io.Discard, logs)

	client := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(&url.URL{Scheme: "http", Host: addr})}}
	send := func(path string) (*http.Response, error) {
		req, _ := http.NewRequest(http.MethodGet, origin.URL+path, nil)
		req.Header.Set("X-Session-Id", "victim")
		resp, err := client.Do(req)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		return resp, err
	}
	for _, p := range []string{"/set?name=a", "/set?name=b"} {
		if resp, err := send(p); err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %v %v", p, resp, err)
		}
	}
	hung := make(chan error, 1)
	go func() { _, err := send("/hang"); hung <- err }()
	<-entered
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	if err := <-hung; err == nil {
		t.Errorf("the request in flight got an answer from a killed instance")
	}

	sites, err := sessionpool.OpenSites(t.Context(), sessionpool.Options{Redis: &sessionpool.RedisOptions{URL: rs.URL(0)}})
	if err != nil {
		t.Fatal(err)
	}
	defer sites.Teardown(context.Background())
	p, err := sites.Pool(t.Context(), "127.0.0.1") // the origin's site
	if err != nil {
		t.Fatal(err)
	}
	s, err := p.GetSessionByID(t.Context(), "victim")
	if err != nil {
		t.Fatalf("the session of the killed instance: %v", err)
	}
	u, _ := url.Parse(origin.URL + "/")
	if got := s.CookieString(u); s.UsageCount() != 2 || got != "a=1; b=1" {
		t.Errorf("after the kill the pool has uses %d, cookies %q; want 2 and a=1; b=1", s.UsageCount(), got)
	}
}

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

// TestReadmeRulesExample runs the README's rules command as written, on a
// saved Cloudflare challenge named item.http, and checks that it prints
// what the README shows (a line ending in "...)" shows the start of one).
func TestReadmeRulesExample(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, _ := strings.Cut(string(readme), "curl -si https://shop.example.com/item/1 > item.http\n")
	cmdLine, rest, _ := strings.Cut(rest, "\n")
	_, rest, _ = strings.Cut(rest, "```\n```\n")
	shown, _, _ := strings.Cut(rest, "\n```")
	cmdLine, _, _ = strings.Cut(cmdLine, "#")
	fields := strings.Fields(cmdLine)
	if len(fields) < 5 || strings.Join(fields[:4], " ") != "go run . rules" {
		t.Fatalf("the README's rules example is not a 'go run . rules' line: %q", cmdLine)
	}
	dir := t.TempDir()
	for dst, src := range map[string]string{"item.http": "testdata/rules/cloudflare-403.http", "config.example.yaml": "config.example.yaml"} {
		data, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, dst), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	t.Chdir(dir)
	var stdout, stderr bytes.Buffer
	if code := runRules(fields[4:], &stdout, &stderr); code != 0 {
		t.Fatalf("%s: exit status %d\n%s", cmdLine, code, stderr.String())
	}
	out := strings.Split(stdout.String(), "\n")
	i := 0
	for _, want := range strings.Split(shown, "\n") {
		prefix, cut := strings.CutSuffix(want, "...)")
		for i < len(out) && !(out[i] == want || cut && strings.HasPrefix(out[i], prefix)) {
			i++
		}
		if i == len(out) {
			t.Errorf("the rules command does not print the README's line %q; it prints:\n%s", want, stdout.String())
			return
		}
	}
}

// TestHeapFloor: the program keeps gc.heap_floor by raising the GC percent
// while little is live, restores it when it stops, and leaves the runtime
// alone when GOGC is in the environment.
func TestHeapFloor(t *testing.T) {
	for _, tc := range []struct {
		name, gogc string
		raised     bool
	}{
		{"floor", "", true},
		{"GOGC set", "100", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("GOGC", tc.gogc)
			before := gcPercent()
			path := filepath.Join(t.TempDir(), "ok.yaml")
			cfg := "listen: 127.0.0.1:0\nadmin_listen: \"\"\nlog_format: json\ngc:\n  heap_floor: 268435456\ndata_dir: " + filepath.Join(filepath.Dir(path), "data") + "\n"
			if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
				t.Fatal(err)
			}
			sc, pr, done := startRun(path)
			for sc.Scan() && !strings.Contains(sc.Text(), "sessionproxy listening") {
			}
			during := gcPercent()
			if err := syscall.Kill(os.Getpid(), syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			go io.Copy(io.Discard, pr)
			if code := <-done; code != 0 {
				t.Fatalf("exit status %d after SIGTERM, want 0", code)
			}
			after := gcPercent()
			// 256 MiB over a test's few live MiB: a percent in the
			// thousands (gcfloor's tests check the figure itself).
			if raised := during > 10*before; raised != tc.raised {
				t.Errorf("GC percent %d while running (%d before); raised: %v, want %v", during, before, raised, tc.raised)
			}
			if after != before {
				t.Errorf("GC percent %d after the program stopped, want %d as before", after, before)
			}
		})
	}
}

// startRun runs the program on the config file at path in a goroutine:
// its logs come through sc (pr is the pipe sc reads), its exit status
// through done.
// instanceConfigEnv names the config of a test binary run again as a
// proxy instance (startInstance).
const instanceConfigEnv = "SESSIONPROXY_TEST_INSTANCE_CONFIG"

// startInstance runs the test binary again, as a proxy instance of its own
// on the config at path: the child runs test alone, whose first line is
// runAsInstance. It returns the instance and its log; the instance is
// killed when the test ends.
func startInstance(t *testing.T, test, path string) (*exec.Cmd, io.Reader) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^"+test+"$")
	cmd.Env = append(os.Environ(), instanceConfigEnv+"="+path)
	logs, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill() })
	return cmd, logs
}

// runAsInstance makes the test binary, run by startInstance, a proxy
// instance: it runs the proxy and exits with its status.
func runAsInstance() {
	if path := os.Getenv(instanceConfigEnv); path != "" {
		os.Exit(run([]string{"-config", path}, os.Stderr))
	}
}

func startRun(path string) (sc *bufio.Scanner, pr *io.PipeReader, done <-chan int) {
	pr, pw := io.Pipe()
	exit := make(chan int, 1)
	go func() {
		code := run([]string{"-config", path}, pw)
		pw.Close()
		exit <- code
	}()
	return bufio.NewScanner(pr), pr, exit
}

func gcPercent() uint64 {
	s := []metrics.Sample{{Name: "/gc/gogc:percent"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// TestSecondSignalStopsAtOnce: SIGTERM starts a graceful shutdown, which
// waits for the request in flight; a second SIGTERM stops the process at
// once (Go's default), where it was swallowed until the drain's timeout.
func TestSecondSignalStopsAtOnce(t *testing.T) {
	runAsInstance()
	entered, release := make(chan struct{}), make(chan struct{})
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer origin.Close()
	defer close(release)
	dir := t.TempDir()
	path := filepath.Join(dir, "c.yaml")
	cfg := "listen: 127.0.0.1:0\nadmin_listen: \"\"\nlog_format: json\ndata_dir: " + filepath.Join(dir, "data") + "\n"
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd, logs := startInstance(t, "TestSecondSignalStopsAtOnce", path)
	msgs := make(chan string, 64)
	proxyAddr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(logs)
		for sc.Scan() {
			var line struct{ Msg, Proxy string }
			if json.Unmarshal(sc.Bytes(), &line) == nil {
				if line.Msg == "sessionproxy listening" {
					proxyAddr <- line.Proxy
				}
				select {
				case msgs <- line.Msg:
				default:
				}
			}
		}
		close(msgs)
	}()
	client := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(&url.URL{Scheme: "http", Host: <-proxyAddr})}}
	go client.Get(origin.URL + "/hang")
	<-entered
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	for msg := range msgs { // the graceful shutdown has begun: the drain waits for /hang
		if msg == "shutting down" {
			break
		}
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGTERM {
		t.Errorf("after a second SIGTERM the instance ended with %v, want killed by SIGTERM", cmd.ProcessState)
	}
}
