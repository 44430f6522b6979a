package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

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

// TestBadFlagsExitTwo: an unknown flag or a stray argument is exit status 2.
func TestBadFlagsExitTwo(t *testing.T) {
	for _, args := range [][]string{{"-nope"}, {"stray"}, {"-log-format", "xml"}} {
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
	pr, pw := io.Pipe()
	done := make(chan int, 1)
	go func() {
		code := run([]string{"-config", path}, pw)
		pw.Close()
		done <- code
	}()
	sc := bufio.NewScanner(pr)
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
	if _, err := os.Stat(filepath.Join(dir, "data", "SDK_SESSION_POOL_STATE.json")); err != nil {
		t.Errorf("the pool was not persisted at shutdown: %v", err)
	}
	info, err := os.Stat(filepath.Join(dir, "data", "ca-key.pem"))
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Errorf("CA key: %v, mode %v; want 0600", err, info.Mode().Perm())
	}
}

// TestKilledInstanceLosesNothing: an instance on a Redis pool that is killed
// (SIGKILL, no shutdown) while a request is in flight loses nothing it had
// acknowledged: the pool on the server has every use and cookie of the
// responses its clients received.
func TestKilledInstanceLosesNothing(t *testing.T) {
	if path := os.Getenv("SESSIONPROXY_TEST_CHILD_CONFIG"); path != "" {
		os.Exit(run([]string{"-config", path}, os.Stderr)) // the instance to kill
	}
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
	cmd := exec.Command(os.Args[0], "-test.run=^TestKilledInstanceLosesNothing$")
	cmd.Env = append(os.Environ(), "SESSIONPROXY_TEST_CHILD_CONFIG="+path)
	logs, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
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

	p, err := sessionpool.Open(t.Context(), sessionpool.Options{Redis: &sessionpool.RedisOptions{URL: rs.URL(0)}})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Teardown(context.Background())
	s, err := p.GetSessionByID(t.Context(), "victim")
	if err != nil {
		t.Fatalf("the session of the killed instance: %v", err)
	}
	u, _ := url.Parse(origin.URL + "/")
	if got := s.CookieString(u); s.UsageCount() != 2 || got != "a=1; b=1" {
		t.Errorf("after the kill the pool has uses %d, cookies %q; want 2 and a=1; b=1", s.UsageCount(), got)
	}
}
