package main

import (
	"bufio"
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
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
