package sessionpool

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"testing"
)

const crashChildEnv = "SESSIONPOOL_CRASH_CHILD_DIR"

// TestFileStoreSurvivesKill re-runs the test binary as a child that
// persists a changing pool in a loop, SIGKILLs it after it reported a few
// writes, and checks that the document always loads: the file store never
// leaves a torn document, nor, once reopened, a temporary file.
func TestFileStoreSurvivesKill(t *testing.T) {
	if dir := os.Getenv(crashChildEnv); dir != "" {
		crashChild(dir) // never returns
	}
	dir := t.TempDir()
	for round := range 5 {
		cmd := exec.Command(os.Args[0], "-test.run=^TestFileStoreSurvivesKill$", "-test.count=1")
		cmd.Env = append(os.Environ(), crashChildEnv+"="+dir)
		cmd.Stderr = os.Stderr
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		lines := bufio.NewScanner(out)
		writes := 0
		for writes < 3+round && lines.Scan() {
			if strings.HasPrefix(lines.Text(), "persisted ") {
				writes++
			}
		}
		if err := cmd.Process.Kill(); err != nil { // SIGKILL, mid-loop
			t.Fatal(err)
		}
		cmd.Wait()
		if writes < 3+round {
			t.Fatalf("round %d: the child reported %d writes before ending: %v", round, writes, lines.Err())
		}
		fs, err := NewFileStore(dir)
		if err != nil {
			t.Fatal(err)
		}
		// A write the kill interrupted left its temporary file (it holds
		// cookies); opening the store removed it.
		if entries, err := os.ReadDir(dir); err != nil || len(entries) != 1 || entries[0].Name() != "crash.json" {
			t.Errorf("round %d: after NewFileStore the directory holds %v (%v), want only crash.json", round, entries, err)
		}
		p, err := Open(context.Background(), Options{Store: fs, PersistStateKey: "crash"})
		if err != nil {
			t.Fatalf("round %d: the document does not load after SIGKILL: %v", round, err)
		}
		if n := p.UsableSessionsCount(); n < 100 {
			t.Errorf("round %d: restored %d sessions, want at least 100", round, n)
		}
		if err := p.Teardown(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
}

// crashChild persists a pool of the file store in dir forever, printing a
// line after each write, until it is killed.
func crashChild(dir string) {
	fail := func(err error) {
		fmt.Fprintln(os.Stderr, "crash child:", err)
		os.Exit(2)
	}
	ctx := context.Background()
	fs, err := NewFileStore(dir)
	if err != nil {
		fail(err)
	}
	p, err := Open(ctx, Options{Store: fs, PersistStateKey: "crash", MaxPoolSize: 300})
	if err != nil {
		fail(err)
	}
	u, _ := url.Parse("https://example.com/")
	for i := 0; ; i++ {
		for range 100 {
			s, err := p.GetSession(ctx)
			if err != nil {
				fail(err)
			}
			s.SetCookies(u, []*http.Cookie{{Name: fmt.Sprintf("c%d", i%5), Value: strings.Repeat("v", i%300)}})
			s.MarkGood()
		}
		if err := p.PersistState(ctx); err != nil {
			fail(err)
		}
		fmt.Printf("persisted %d\n", i)
	}
}
