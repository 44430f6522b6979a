package atomicfile

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
)

// names lists the entries of dir, sorted.
func names(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		out = append(out, e.Name())
	}
	return out
}

func checkFile(t *testing.T, path, want string, mode os.FileMode) {
	t.Helper()
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != want {
		t.Errorf("%s holds %q, want %q", path, got, want)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != mode {
		t.Errorf("%s: mode %#o, want %#o", path, fi.Mode().Perm(), mode)
	}
}

func TestWriteCreatesAndReplaces(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "state.json")
	if err := Write(path, []byte("one"), 0o600); err != nil {
		t.Fatal(err)
	}
	checkFile(t, path, "one", 0o600)
	// The mode is perm exactly, whatever the umask, and a replacement
	// takes the new one.
	for _, mode := range []os.FileMode{0o644, 0o666, 0o640} {
		if err := Write(path, []byte("mode "+mode.String()), mode); err != nil {
			t.Fatal(err)
		}
		checkFile(t, path, "mode "+mode.String(), mode)
	}
	if got := names(t, dir); !slices.Equal(got, []string{"state.json"}) {
		t.Errorf("directory holds %q, want only the file (no temporary file left)", got)
	}
}

func TestWriteFuncPieces(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f")
	err := WriteFunc(path, 0o600, func(w io.Writer) error {
		for _, p := range []string{"a", "b", "c"} {
			if _, err := io.WriteString(w, p); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	checkFile(t, path, "abc", 0o600)
}

// TestWriteFailureKeepsOld: a write that fails leaves the old file whole,
// with its mode, and no temporary file behind.
func TestWriteFailureKeepsOld(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "ca.pem")
	if err := Write(path, []byte("old content"), 0o644); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("disk on fire")
	err := WriteFunc(path, 0o600, func(w io.Writer) error {
		io.WriteString(w, "new cont") // half of it, then the failure
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("error %v, want the fill's", err)
	}
	checkFile(t, path, "old content", 0o644)
	if got := names(t, dir); !slices.Equal(got, []string{"ca.pem"}) {
		t.Errorf("directory holds %q after a failed write, want only the old file", got)
	}

	// A rename that fails (the target is a non-empty directory) also
	// leaves no temporary file.
	sub := filepath.Join(dir, "sub")
	if err := os.MkdirAll(filepath.Join(sub, "x"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := Write(sub, []byte("data"), 0o600); err == nil {
		t.Fatal("Write over a non-empty directory succeeded")
	}
	if got := names(t, dir); !slices.Equal(got, []string{"ca.pem", "sub"}) {
		t.Errorf("directory holds %q after a failed rename", got)
	}

	// A missing directory is an error, and creates nothing.
	if err := Write(filepath.Join(dir, "missing", "f"), []byte("x"), 0o600); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Write into a missing directory: %v, want ErrNotExist", err)
	}
}

func TestWriteRelativePath(t *testing.T) {
	t.Chdir(t.TempDir())
	if err := Write("rel", []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	checkFile(t, "rel", "x", 0o600)
}

func TestWriteConcurrent(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "f")
	contents := []string{strings.Repeat("a", 1<<16), strings.Repeat("b", 1<<16), strings.Repeat("c", 1<<16)}
	var wg sync.WaitGroup
	for _, c := range contents {
		wg.Go(func() {
			if err := Write(path, []byte(c), 0o600); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(contents, string(got)) {
		t.Errorf("concurrent Writes left a mix (%d bytes starting %q)", len(got), got[:8])
	}
	if got := names(t, dir); !slices.Equal(got, []string{"f"}) {
		t.Errorf("directory holds %q", got)
	}
}

// TestRemoveTemps: leftovers of interrupted writes go, everything else
// stays.
func TestRemoveTemps(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "ca-key.pem")
	keep := []string{
		"ca-key.pem",
		".ca.pem.tmp-" + strings.Repeat("A", randomLen),       // another file's
		".ca-key.pem.tmp-" + strings.Repeat("A", randomLen-1), // too short
		".ca-key.pem.tmp-" + strings.Repeat("a", randomLen),   // not base32
		".ca-key.pem.tmp-",
		"ca-key.pem.tmp-" + strings.Repeat("A", randomLen),
	}
	leftovers := []string{
		".ca-key.pem.tmp-" + strings.Repeat("A", randomLen),
		".ca-key.pem.tmp-ABCDEFGHIJKLMNOPQRSTUVWXY2",
	}
	for _, n := range append(slices.Clone(keep), leftovers...) {
		if err := os.WriteFile(filepath.Join(dir, n), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// A directory with a temporary file's name is not one.
	dirLike := ".ca-key.pem.tmp-" + strings.Repeat("B", randomLen)
	if err := os.Mkdir(filepath.Join(dir, dirLike), 0o700); err != nil {
		t.Fatal(err)
	}
	keep = append(keep, dirLike)

	// What Write itself names its temporary files is recognised.
	f, err := createTemp(dir, "ca-key.pem")
	if err != nil {
		t.Fatal(err)
	}
	f.Close()

	if err := RemoveTemps(path); err != nil {
		t.Fatal(err)
	}
	slices.Sort(keep)
	if got := names(t, dir); !slices.Equal(got, keep) {
		t.Errorf("after RemoveTemps: %q, want %q", got, keep)
	}
	if err := RemoveTemps(filepath.Join(dir, "missing", "f")); err != nil {
		t.Errorf("RemoveTemps in a missing directory: %v", err)
	}
}

func TestRemoveAllTemps(t *testing.T) {
	dir := t.TempDir()
	keep := []string{
		"state.json",
		".state.json.tmp-" + strings.Repeat("a", randomLen), // not base32
		".tmp-" + strings.Repeat("A", randomLen),            // no file's
		"state.json.tmp-" + strings.Repeat("A", randomLen),  // no leading dot
		".x",
	}
	leftovers := []string{
		".state.json.tmp-" + strings.Repeat("A", randomLen),
		".other.json.tmp-ABCDEFGHIJKLMNOPQRSTUVWXY2",
		"..tmp-" + strings.Repeat("C", randomLen), // an empty name's
	}
	for _, n := range append(slices.Clone(keep), leftovers...) {
		if err := os.WriteFile(filepath.Join(dir, n), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	f, err := createTemp(dir, "ca.pem")
	if err != nil {
		t.Fatal(err)
	}
	f.Close()

	if err := RemoveAllTemps(dir); err != nil {
		t.Fatal(err)
	}
	slices.Sort(keep)
	if got := names(t, dir); !slices.Equal(got, keep) {
		t.Errorf("after RemoveAllTemps: %q, want %q", got, keep)
	}
	if err := RemoveAllTemps(filepath.Join(dir, "missing")); err != nil {
		t.Errorf("RemoveAllTemps of a missing directory: %v", err)
	}
}
