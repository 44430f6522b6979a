package proxy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"

	"github.com/sessionproxy/sessionproxy/proxy/config"
	"github.com/sessionproxy/sessionproxy/sessionpool"
)

// writeConfig writes a config file and returns its path.
func writeConfig(t testing.TB, dir, body string) string {
	t.Helper()
	p := filepath.Join(dir, "sessionproxy.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestReload: a changed file takes effect for the next request without
// dropping a session or an open tunnel; keys bound at start are named and
// kept; an invalid file changes nothing.
func TestReload(t *testing.T) {
	origin := httptest.NewTLSServer(originMux())
	defer origin.Close()
	dir := t.TempDir()
	caFile := filepath.Join(dir, "origin.pem")
	writeCertPEM(t, caFile, origin)
	base := "listen: 127.0.0.1:0\nadmin_listen: 127.0.0.1:0\ndata_dir: " + filepath.Join(dir, "data") +
		"\nmitm:\n  upstream_ca: [" + caFile + "]\n"
	path := writeConfig(t, dir, base+"cookies: merge\n")
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	h := startProxy(t, cfg)
	c := h.client("", "") // one keep-alive tunnel for the whole test

	get(t, c, origin.URL+"/set?name=sid&value=1", "r1")
	req := func() (*http.Response, string) {
		r, _ := http.NewRequest(http.MethodGet, origin.URL+"/echo", nil)
		r.Header.Set("X-Session-Id", "r1")
		r.Header.Set("Cookie", "mine=1")
		resp, err := c.Do(r)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp, string(b)
	}
	if _, body := req(); decodeSeen(t, body).Cookie != "mine=1; sid=1" {
		t.Fatalf("before reload (merge): origin saw %q", decodeSeen(t, body).Cookie)
	}

	// New cookie mode and a rule that retires on 200, plus a key that
	// needs a restart.
	writeConfig(t, dir, strings.Replace(base, "listen: 127.0.0.1:0", "listen: 127.0.0.1:1", 1)+
		"cookies: client\nrules:\n  - name: everything-retires\n    status: [\"2xx\"]\n    action: retire\n")
	restart, err := h.srv.Reload()
	if err != nil {
		t.Fatalf("Reload: %v", err)
	}
	if strings.Join(restart, ",") != "listen" {
		t.Errorf("restart needed for %v, want [listen]", restart)
	}
	if h.srv.Config().Listen != cfg.Listen {
		t.Errorf("listen changed to %q while running", h.srv.Config().Listen)
	}
	resp, body := req() // same tunnel: it was not dropped
	if got := decodeSeen(t, body).Cookie; got != "mine=1" {
		t.Errorf("after reload (client): origin saw %q, want only the client's cookie", got)
	}
	if resp.Header.Get("X-Session-Rule") != "everything-retires" {
		t.Errorf("the reloaded rule did not decide: X-Session-Rule %q", resp.Header.Get("X-Session-Rule"))
	}

	// An invalid file is refused with its errors; the running config stays.
	writeConfig(t, dir, base+"cookies: sometimes\n")
	before := h.srv.Config()
	if _, err := h.srv.Reload(); !errors.Is(err, config.ErrInvalid) || !strings.Contains(err.Error(), "cookies") {
		t.Fatalf("Reload of an invalid file: %v, want a config error naming cookies", err)
	}
	if h.srv.Config() != before {
		t.Errorf("an invalid reload replaced the running config")
	}
	r, err := http.Post(h.adminURL+"/reload", "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Body.Close()
	var e map[string]string
	if err := json.NewDecoder(r.Body).Decode(&e); err != nil || r.StatusCode != http.StatusBadRequest ||
		!strings.Contains(e["error"], "cookies") {
		t.Errorf("POST /reload of an invalid file: %d %v (%v), want 400 with the errors", r.StatusCode, e, err)
	}
}

// TestReloadWithoutFile: a server started on built-in defaults has nothing
// to re-read.
func TestReloadWithoutFile(t *testing.T) {
	h := startProxy(t, testConfig(t))
	if _, err := h.srv.Reload(); !errors.Is(err, ErrNoConfigFile) {
		t.Errorf("Reload: %v, want ErrNoConfigFile", err)
	}
}

// TestDrain: requests entering after close are refused, and the channel
// closes when the last one in flight leaves.
func TestDrain(t *testing.T) {
	var d drain
	if !d.enter() || !d.enter() {
		t.Fatal("an open drain refused a request")
	}
	done := d.close()
	if d.enter() {
		t.Error("a closed drain let a request in")
	}
	d.leave()
	select {
	case <-done:
		t.Fatal("drained with a request still in flight")
	default:
	}
	d.leave()
	<-done // closes once the last leaves; a hang here fails the test by timeout
	var empty drain
	<-empty.close()
}

// TestShutdownDrainsInFlight: Shutdown lets a request in flight inside an
// intercepted tunnel (a hijacked connection, which http.Server.Shutdown does
// not wait for) finish before it closes the connections.
func TestShutdownDrainsInFlight(t *testing.T) {
	arrived, release := make(chan struct{}), make(chan struct{})
	origin := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(arrived)
		<-release
		io.WriteString(w, "finished")
	}))
	defer origin.Close()
	cfg := testConfig(t)
	trustOrigin(t, cfg, origin)
	h := startProxy(t, cfg)
	got := make(chan string, 1)
	go func() {
		resp, err := h.client("", "").Get(origin.URL + "/slow")
		if err != nil {
			got <- "error: " + err.Error()
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		got <- string(b)
	}()
	<-arrived
	stopped := make(chan error, 1)
	go func() { stopped <- h.srv.Shutdown(context.Background()) }()
	for { // wait until Shutdown is draining: the drain refuses newcomers
		h.srv.inflight.mu.Lock()
		closed := h.srv.inflight.closed
		h.srv.inflight.mu.Unlock()
		if closed {
			break
		}
		runtime.Gosched()
	}
	select {
	case err := <-stopped:
		t.Fatalf("Shutdown returned (%v) with a request in flight", err)
	default:
	}
	close(release)
	if body := <-got; body != "finished" {
		t.Errorf("the in-flight request got %q, want the origin's answer", body)
	}
	if err := <-stopped; err != nil {
		t.Errorf("Shutdown: %v", err)
	}
}

// failingStore is a sessionpool.Store that holds nothing and refuses every
// write.
type failingStore struct{}

func (failingStore) Get(_ context.Context, key string) ([]byte, error) {
	return nil, fmt.Errorf("get %q: %w", key, sessionpool.ErrNotFound)
}
func (failingStore) Set(context.Context, string, []byte) error { return errors.New("disk full") }
func (failingStore) Delete(context.Context, string) error      { return nil }

// TestPersistFailureReportedOnce: a failed save is logged once for each
// write that failed, POST /persist's as well (it also answers 500), and
// not at all for Shutdown's last save, whose failure Shutdown returns
// (and main logs).
func TestPersistFailureReportedOnce(t *testing.T) {
	var buf syncBuffer
	srv, err := Open(context.Background(), Options{Config: testConfig(t), Logger: slog.New(slog.NewJSONHandler(&buf, nil)), Store: failingStore{}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := srv.Sites().Pool(context.Background(), originSite); err != nil {
		t.Fatal(err)
	}
	adminLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.ServeAdmin(adminLn)
	resp, err := http.Post("http://"+adminLn.Addr().String()+"/persist", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusInternalServerError {
		t.Fatalf("POST /persist: %d, want 500", resp.StatusCode)
	}
	// Two writes failed: the site's state and the sites index.
	if n := strings.Count(buf.String(), "disk full"); n != 2 {
		t.Errorf("POST /persist's failure logged in %d lines, want one for each of the 2 writes:\n%s", n, buf.String())
	}
	before := buf.String()
	if err := srv.Shutdown(context.Background()); err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("Shutdown: %v, want the last save's failure", err)
	}
	if after := strings.TrimPrefix(buf.String(), before); strings.Contains(after, "disk full") {
		t.Errorf("Shutdown returned the last save's failure and it was logged too:\n%s", after)
	}
}

// TestReloadsAtOnce: of two reloads at once (a SIGHUP and POST /reload),
// the one that read an older file and stores last does not leave the
// server on it: it reads the file again. The file is a FIFO, a new one for
// each reload, so that the test hands each its version: the first an
// older one, slow to parse (8,000 rules), the second the later one.
func TestReloadsAtOnce(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "sessionproxy.yaml")
	fifo := func() { // a new FIFO at path; one opened before stays its reader's
		tmp := filepath.Join(dir, "next")
		if err := syscall.Mkfifo(tmp, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, path); err != nil {
			t.Fatal(err)
		}
	}
	open := func() *os.File { // the FIFO at path, once a reload opens it
		f, err := os.OpenFile(path, os.O_WRONLY, 0)
		if err != nil {
			t.Error(err)
		}
		return f
	}
	write := func(f *os.File, body string) {
		if _, err := io.WriteString(f, body); err != nil {
			t.Error(err)
		}
		f.Close()
	}
	base := "listen: 127.0.0.1:0\nadmin_listen: 127.0.0.1:0\ndata_dir: " + filepath.Join(dir, "data") + "\n"
	cfg, err := config.Parse(path, []byte(base+"session_header: X-Start\n"))
	if err != nil {
		t.Fatal(err)
	}
	h := startProxy(t, cfg)
	var older strings.Builder
	older.WriteString(base + "session_header: X-Older\nrules:\n")
	for i := range 8000 {
		fmt.Fprintf(&older, "  - {name: r%d, status: 403, body: 'b%d[a-z]+', action: bad}\n", i, i)
	}
	later := base + "session_header: X-Later\n"

	fifo()
	slow := make(chan error, 1)
	go func() { _, err := h.srv.Reload(); slow <- err }()
	write(open(), older.String())
	fifo()
	fast := make(chan error, 1)
	go func() { _, err := h.srv.Reload(); fast <- err }()
	f := open()
	fifo() // for the first, should it read the file again
	write(f, later)
	if err := <-fast; err != nil { // the later file, stored while the first parses
		t.Fatal(err)
	}
	again := make(chan struct{})
	go func() { write(open(), later); close(again) }()
	if err := <-slow; err != nil {
		t.Fatal(err)
	}
	// Unblock the last write if nobody read the file again.
	if r, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0); err == nil {
		<-again
		r.Close()
	}
	if got := h.srv.cfg.Load().SessionHeader; got != "X-Later" {
		t.Errorf("after both reloads the server runs with session_header %q, want the later file's X-Later", got)
	}
}
