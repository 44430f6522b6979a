package proxy

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sessionproxy/sessionproxy/proxy/proxytest"
)

// The README's examples that start servers on fixed ports (the quick
// start's 127.0.0.1:8080, the two instances on one Redis) run as written
// in a private network, mount and PID namespace (unshare -rnm --pid), with
// its own loopback: the test binary runs itself there
// (TestReadmeNamespaceChild), starts the origins the examples name on
// their real ports (/etc/hosts maps example.com and httpbin.org to
// 127.0.0.1, bind-mounted over the machine's inside the namespace only:
// the proxy, not curl, resolves the target's name, so curl's --resolve
// would not reach it), then the README's lines, each with sh -c, in a copy
// of the module.

// readmeNSEnv carries a namespaceJob to TestReadmeNamespaceChild.
const readmeNSEnv = "SESSIONPROXY_README_NAMESPACE_JOB"

// namespaceJob is what TestReadmeNamespaceChild runs inside the namespace.
type namespaceJob struct {
	Dir    string   // working directory of every line: a copy of the module
	Report string   // file the child writes its namespaceReport to, as JSON
	Redis  bool     // start redis-server on 127.0.0.1:6379 first
	Serve  []string // lines that start a proxy, each waited for until it listens
	Run    []string // lines run one after another, each to its end
}

// namespaceReport is what the lines of a namespaceJob printed.
type namespaceReport struct {
	Outputs []string // stdout and stderr of each Run line
	Errors  []string // each Run line's exit error, "" for status 0
	Logs    []string // stdout and stderr of each Serve line, until it stopped
}

// readmeSection returns the README's text under the heading line (such as
// "## Quick start") up to the next heading of the same or a higher level.
func readmeSection(t *testing.T, heading string) string {
	t.Helper()
	readme, err := os.ReadFile(filepath.Join("..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(readme), "\n"+heading+"\n")
	if !ok {
		t.Fatalf("no %q section in the README", heading)
	}
	level := strings.Repeat("#", strings.IndexByte(heading, ' '))
	inFence := false
	var out strings.Builder
	for _, line := range strings.SplitAfter(rest, "\n") {
		if strings.HasPrefix(line, "```") {
			inFence = !inFence
		}
		if !inFence && strings.HasPrefix(line, "#") {
			hashes, _, _ := strings.Cut(line, " ")
			if strings.Trim(hashes, "#") == "" && len(hashes) <= len(level) {
				break
			}
		}
		out.WriteString(line)
	}
	return out.String()
}

// fencedBlock is one fenced code block: its language ("" for none) and
// its lines without the fences.
type fencedBlock struct {
	lang  string
	lines []string
}

// fencedBlocks returns the fenced code blocks of text, in order.
func fencedBlocks(text string) []fencedBlock {
	var out []fencedBlock
	var cur *fencedBlock
	for _, line := range strings.Split(text, "\n") {
		switch {
		case cur == nil && strings.HasPrefix(line, "```"):
			cur = &fencedBlock{lang: strings.TrimPrefix(line, "```")}
		case cur != nil && line == "```":
			out = append(out, *cur)
			cur = nil
		case cur != nil:
			cur.lines = append(cur.lines, line)
		}
	}
	return out
}

// copyModule copies the repository's working tree (without .git, the
// root's data/ and node_modules) into a temporary directory and returns
// it: the README's lines run there, so that what they write (data/, CA
// keys) stays out of the repository.
func copyModule(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(t.TempDir(), "sessionproxy")
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		if rel == ".git" || rel == "data" || d.Name() == "node_modules" {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		target := filepath.Join(dst, rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			return os.MkdirAll(target, 0o755)
		case info.Mode().IsRegular():
			data, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			return os.WriteFile(target, data, info.Mode().Perm())
		}
		return nil // sockets, symlinks: nothing the build needs
	})
	if err != nil {
		t.Fatalf("copy the module: %v", err)
	}
	return dst
}

// requireNamespace returns unshare's path once the programs the README
// tests run in a namespace are there (skipping under -short, as
// requireProgram does) and a namespace can be made; when it cannot, it
// fails the test saying why.
func requireNamespace(t *testing.T, redis bool) (unshare string) {
	t.Helper()
	unshare = requireProgram(t, "unshare", "util-linux")
	requireProgram(t, "ip", "iproute2")
	requireProgram(t, "curl", "curl")
	if redis {
		requireProgram(t, "redis-server", "redis-server")
	}
	if out, err := exec.Command(unshare, namespaceArgs("true")...).CombinedOutput(); err != nil {
		t.Fatalf("unshare %s true: %v: %s\nthis test runs the README's fixed ports in a private network namespace: "+
			"it needs user namespaces (root, or sysctl kernel.unprivileged_userns_clone=1 and user.max_user_namespaces > 0)",
			strings.Join(namespaceArgs(), " "), err, strings.TrimSpace(string(out)))
	}
	return unshare
}

// namespaceArgs are unshare's arguments to run cmd in a namespace of the
// README tests: user (as root inside), network, mount and PID; its
// processes all end when unshare does.
func namespaceArgs(cmd ...string) []string {
	return append([]string{"-rnm", "--pid", "--fork", "--kill-child", "--mount-proc"}, cmd...)
}

// runInNamespace runs job in a private network, mount and PID namespace
// (unshare is requireNamespace's) and returns what its lines printed.
func runInNamespace(t *testing.T, unshare string, job namespaceJob) namespaceReport {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	hosts := filepath.Join(tmp, "hosts")
	if err := os.WriteFile(hosts, []byte("127.0.0.1 localhost example.com httpbin.org\n::1 localhost\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	job.Report = filepath.Join(tmp, "report.json")
	spec, err := json.Marshal(job)
	if err != nil {
		t.Fatal(err)
	}
	script := `mount --bind "$1" /etc/hosts && ip link set lo up && exec "$2" -test.run='^TestReadmeNamespaceChild$' -test.count=1 -test.v`
	cmd := exec.CommandContext(waitCtx(t, 5*time.Minute), unshare,
		namespaceArgs("sh", "-c", script, "sh", hosts, exe)...)
	cmd.Dir = job.Dir
	// No network in the namespace: the go command builds from the module
	// cache that building this test filled, and must not try to download.
	cmd.Env = clientEnv(readmeNSEnv+"="+string(spec), "GOPROXY=off", "GOTOOLCHAIN=local")
	out := runChild(t, cmd)
	var rep namespaceReport
	decodeJSONFile(t, job.Report, &rep)
	if len(rep.Outputs) != len(job.Run) {
		t.Fatalf("the namespace ran %d of %d lines:\n%s", len(rep.Outputs), len(job.Run), out)
	}
	return rep
}

// TestReadmeNamespaceChild is not a test of its own: it is the program
// that runInNamespace starts inside the namespace, and is skipped
// anywhere else.
func TestReadmeNamespaceChild(t *testing.T) {
	spec := os.Getenv(readmeNSEnv)
	if spec == "" {
		t.Skip("runs only inside the namespace that the README tests make")
	}
	var job namespaceJob
	if err := json.Unmarshal([]byte(spec), &job); err != nil {
		t.Fatal(err)
	}
	caFile := startReadmeOrigins(t)
	env := clientEnv("SSL_CERT_FILE=" + caFile) // the proxies trust the origins through the system roots
	if job.Redis {
		startLine(t, env, t.TempDir(), "Ready to accept connections",
			"exec redis-server --port 6379 --bind 127.0.0.1 --save '' --appendonly no")
	}
	var rep namespaceReport
	logs := make([]*lineLog, len(job.Serve))
	for i, line := range job.Serve {
		logs[i] = startLine(t, env, job.Dir, "sessionproxy listening", line)
	}
	for _, line := range job.Run {
		cmd := exec.CommandContext(waitCtx(t, 30*time.Second), "sh", "-c", line)
		cmd.Dir, cmd.Env = job.Dir, env
		out, err := cmd.CombinedOutput()
		rep.Outputs = append(rep.Outputs, string(out))
		msg := ""
		if err != nil {
			msg = err.Error()
		}
		rep.Errors = append(rep.Errors, msg)
	}
	for _, l := range logs {
		rep.Logs = append(rep.Logs, l.String())
	}
	data, err := json.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(job.Report, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// startReadmeOrigins serves the origins the README's examples name, on
// their own ports: https://example.com/ (127.0.0.1:443, a certificate
// for example.com from a CA made here) and http://httpbin.org/ (port 80,
// /cookies/set and /cookies as httpbin.org answers them). It returns the
// file holding the CA.
func startReadmeOrigins(t *testing.T) (caFile string) {
	t.Helper()
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("hello from " + r.Host + "\n"))
	})
	mux.HandleFunc("/cookies/set", func(w http.ResponseWriter, r *http.Request) {
		for name, values := range r.URL.Query() {
			http.SetCookie(w, &http.Cookie{Name: name, Value: values[0], Path: "/"})
		}
		http.Redirect(w, r, "/cookies", http.StatusFound)
	})
	mux.HandleFunc("/cookies", func(w http.ResponseWriter, r *http.Request) {
		got := map[string]string{}
		for _, c := range r.Cookies() {
			got[c.Name] = c.Value
		}
		body, _ := json.MarshalIndent(map[string]any{"cookies": got}, "", "  ")
		w.Header().Set("Content-Type", "application/json")
		w.Write(append(body, '\n'))
	})
	caPEM, keyPEM, _ := proxytest.NewCA(t)
	caFile = filepath.Join(t.TempDir(), "origin-ca.pem")
	if err := os.WriteFile(caFile, caPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	tlsLn, err := net.Listen("tcp", "127.0.0.1:443")
	if err != nil {
		t.Fatal(err)
	}
	plainLn, err := net.Listen("tcp", "127.0.0.1:80")
	if err != nil {
		t.Fatal(err)
	}
	// Two servers: one http.Server serving TLS and plain listeners at once
	// races its HTTP/2 set-up (ALPN may pick h2 with no h2 handler).
	tlsSrv := &http.Server{Handler: mux, ErrorLog: proxytest.DiscardLog(), TLSConfig: &tls.Config{
		Certificates: []tls.Certificate{proxytest.NewLeaf(t, caPEM, keyPEM, "example.com", "httpbin.org")},
	}}
	plainSrv := &http.Server{Handler: mux, ErrorLog: proxytest.DiscardLog()}
	go tlsSrv.ServeTLS(tlsLn, "", "")
	go plainSrv.Serve(plainLn)
	t.Cleanup(func() { tlsSrv.Close(); plainSrv.Close() })
	return caFile
}

// lineLog is the output of a server's line; ready is closed once the
// output holds the text the line's server prints when it is ready.
type lineLog struct {
	lockedBuffer
	text  string
	once  sync.Once
	ready chan struct{}
}

func (l *lineLog) Write(p []byte) (int, error) {
	n, err := l.lockedBuffer.Write(p)
	if strings.Contains(l.String(), l.text) {
		l.once.Do(func() { close(l.ready) })
	}
	return n, err
}

// startLine runs a line that starts a server (sh -c, in a process group of
// its own) and waits until its output holds ready. Its output goes through
// a pipe of the test's own, so that a line ending in & (sh exits, the
// server runs on) keeps its output. When the test ends it stops the group
// (SIGINT, as Ctrl-C does) and waits until every process of it has closed
// the pipe.
func startLine(t *testing.T, env []string, dir, ready, line string) *lineLog {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("sh", "-c", line)
	cmd.Dir, cmd.Env, cmd.Stdout, cmd.Stderr = dir, env, w, w
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	err = cmd.Start()
	w.Close()
	if err != nil {
		r.Close()
		t.Fatalf("%s: %v", line, err)
	}
	go cmd.Wait()
	log := &lineLog{text: ready, ready: make(chan struct{})}
	closed := make(chan struct{}) // every process of the line has exited
	go func() {
		io.Copy(log, r)
		r.Close()
		close(closed)
	}()
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGINT)
		select {
		case <-closed:
		case <-time.After(15 * time.Second):
			t.Errorf("%s: still running 15 s after SIGINT; killed", line)
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-closed
		}
	})
	// The line may build the proxy first: a few seconds here, longer on a
	// machine whose build cache lacks the dependencies.
	timeout := time.NewTimer(3 * time.Minute)
	defer timeout.Stop()
	select {
	case <-log.ready:
		return log
	case <-closed:
		t.Fatalf("%s: exited before %q:\n%s", line, ready, log.String())
	case <-timeout.C:
		t.Fatalf("%s: no %q after 3 minutes:\n%s", line, ready, log.String())
	}
	return nil
}

// stripComment cuts a shell line's trailing comment (" #" onwards).
func stripComment(line string) string {
	cmd, _, _ := strings.Cut(line, " #")
	return strings.TrimSpace(cmd)
}

// TestReadmeQuickStartRuns runs the README's quick start as written: its
// go run line (config.example.yaml, 127.0.0.1:8080) in a copy of the
// module, then its curl line against https://example.com/, served by an
// origin in the namespace. The proxy trusts that origin as
// config.example.yaml says (mitm.upstream_ca: [], the system roots: Go
// reads them from SSL_CERT_FILE); curl trusts the proxy's new CA,
// data/ca.pem, as the README's line says. Only -sS -D - is appended to the
// curl line, to see the response's headers.
func TestReadmeQuickStartRuns(t *testing.T) {
	var serve, curl string
	for _, b := range fencedBlocks(readmeSection(t, "## Quick start")) {
		for _, line := range b.lines {
			switch {
			case serve == "" && strings.HasPrefix(line, "go run . "):
				serve = line
			case curl == "" && strings.HasPrefix(line, "curl "):
				curl = line
			}
		}
	}
	if serve == "" || curl == "" {
		t.Fatalf("the README's quick start has no go run line (%q) or no curl line (%q)", serve, curl)
	}
	unshare := requireNamespace(t, false)
	dir := copyModule(t)
	rep := runInNamespace(t, unshare, namespaceJob{Dir: dir, Serve: []string{serve}, Run: []string{stripComment(curl) + " -sS -D -"}})
	out := rep.Outputs[0]
	if rep.Errors[0] != "" {
		t.Fatalf("%s: %s\n%s\n--- proxy ---\n%s", curl, rep.Errors[0], out, rep.Logs[0])
	}
	if !regexp.MustCompile(`(?im)^x-session-id: alice\r?$`).MatchString(out) || !strings.Contains(out, "hello from example.com") {
		t.Errorf("%s: want the origin's answer with X-Session-Id: alice, got:\n%s\n--- proxy ---\n%s", curl, out, rep.Logs[0])
	}
	for name, mode := range map[string]os.FileMode{"ca.pem": 0, "ca-key.pem": 0o600} {
		info, err := os.Stat(filepath.Join(dir, "data", name))
		if err != nil {
			t.Errorf("the quick start made no data/%s: %v", name, err)
		} else if mode != 0 && info.Mode().Perm() != mode {
			t.Errorf("data/%s has mode %v, want %v", name, info.Mode().Perm(), mode)
		}
	}
}

// TestReadmeRedisInstancesRun runs "Several instances on one Redis" as
// written: its a.yaml and b.yaml (the YAML blocks headed "# a.yaml" and
// "# b.yaml"), its two go run lines and its two curls, with a redis-server
// on 127.0.0.1:6379 and httpbin.org served in the namespace. Each curl
// must print the output block that follows.
func TestReadmeRedisInstancesRun(t *testing.T) {
	unshare := requireNamespace(t, true)
	dir := copyModule(t)
	var job namespaceJob
	var want []string
	var files []string
	for _, b := range fencedBlocks(readmeSection(t, "## Several instances on one Redis")) {
		switch {
		case b.lang == "yaml" && len(b.lines) > 0 && strings.HasPrefix(b.lines[0], "# ") && strings.HasSuffix(b.lines[0], ".yaml"):
			name := strings.TrimPrefix(b.lines[0], "# ")
			files = append(files, name)
			if err := os.WriteFile(filepath.Join(dir, name), []byte(strings.Join(b.lines, "\n")+"\n"), 0o644); err != nil {
				t.Fatal(err)
			}
		case b.lang == "sh":
			for _, line := range b.lines {
				switch {
				case strings.HasPrefix(line, "go run "):
					job.Serve = append(job.Serve, line)
				case strings.HasPrefix(line, "curl "):
					job.Run = append(job.Run, line)
				case strings.TrimSpace(line) != "":
					t.Fatalf("a line the test does not know how to run: %q", line)
				}
			}
		case b.lang == "" && job.Run != nil && want == nil:
			want = strings.Fields(strings.Join(b.lines, "\n"))
		}
	}
	if !slices.Equal(files, []string{"a.yaml", "b.yaml"}) || len(job.Serve) != 2 || len(job.Run) != 2 || want == nil {
		t.Fatalf("want a.yaml and b.yaml, two go run lines, two curls and their output; the README has files %q, %q, %q, output %q",
			files, job.Serve, job.Run, want)
	}
	job.Dir, job.Redis = dir, true
	rep := runInNamespace(t, unshare, job)
	for i, line := range job.Run {
		if got := strings.Fields(rep.Outputs[i]); rep.Errors[i] != "" || !slices.Equal(got, want) {
			t.Errorf("%s: %s\n%s\nwant the README's output:\n%s", line, rep.Errors[i], rep.Outputs[i], strings.Join(want, " "))
		}
	}
	if t.Failed() {
		for i, l := range rep.Logs {
			t.Logf("--- %s ---\n%s", job.Serve[i], l)
		}
	}
}

// TestReadmeBenchCommandsRun runs the benchmark command lines of the
// README's "The proxy" section (go run ./proxy/testdata/bench ...) from the
// repository's root, each as written with -rounds 1 -d 1s appended (the
// last value of a flag wins), and checks that each prints its table. The
// benchmark listens on ports from :0 only. Each run takes 20-30 s here
// (it builds four programs, then loads each proxy for a warm-up round and
// a round per scenario), so to stay near a minute a line that another one
// extends is not run, and is named in the log (the defaults, "-rounds 7 -d
// 5s", which "-rounds 7 -d 5s -keep" runs with one flag more). A line with
// -base, whose program (/tmp/sp-base in the README) is an older build the
// reader makes, runs with a build of this tree in its place.
func TestReadmeBenchCommandsRun(t *testing.T) {
	requireProgram(t, "wrk", "wrk")
	var lines []string
	for _, b := range fencedBlocks(readmeSection(t, "### The proxy")) {
		for _, line := range b.lines {
			if line = stripComment(line); strings.HasPrefix(line, "go run ./proxy/testdata/bench") && !slices.Contains(lines, line) {
				lines = append(lines, line)
			}
		}
	}
	if len(lines) == 0 {
		t.Fatal("no benchmark command in the README's \"The proxy\" section")
	}
	var run []string
	for _, line := range lines {
		extended := slices.ContainsFunc(lines, func(l string) bool { return strings.HasPrefix(l, line+" ") })
		switch {
		case extended:
			t.Logf("not run: %s (a longer line runs it with more flags)", line)
		default:
			run = append(run, line)
		}
	}
	header := regexp.MustCompile(`(?m)^proxy +req/s +ratio `)
	row := regexp.MustCompile(`(?m)^sessionproxy\S* +\d+ +\d+\.\d\d `)
	base := ""             // the -base program: the reader's older build; here, this tree's
	baseDir := t.TempDir() // the test's, not a subtest's: every -base line uses the one build
	for _, line := range run {
		t.Run(strings.TrimPrefix(line, "go run ./proxy/testdata/bench"), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			if f := strings.Fields(line); slices.Contains(f, "-base") {
				if base == "" {
					base = filepath.Join(baseDir, "sp-base")
					build := exec.CommandContext(ctx, "go", "build", "-o", base, ".")
					build.Dir, build.Env = "..", clientEnv()
					runChild(t, build)
				}
				i := slices.Index(f, "-base")
				line = strings.Replace(line, "-base "+f[i+1], "-base "+base, 1)
			}
			cmd := exec.CommandContext(ctx, "sh", "-c", line+" -rounds 1 -d 1s")
			cmd.Dir, cmd.Env = "..", clientEnv()
			out := runChild(t, cmd)
			if !header.MatchString(out) || !row.MatchString(out) {
				t.Errorf("%s: no req/s and ratio columns in its output:\n%s", line, out)
			}
		})
	}
}
