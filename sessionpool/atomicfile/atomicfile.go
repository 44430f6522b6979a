// Package atomicfile replaces files atomically and durably: after a Write
// returns, and after a crash at any moment during one, the file holds
// either its old content or the new content whole, never a mix.
//
// A Write goes through a temporary file in the target's directory, named
// ".NAME.tmp-RANDOM" (RANDOM is 26 characters of base32); a crash can leave
// one behind, which RemoveTemps deletes. The package owns no goroutine and
// keeps no state; its functions are safe for concurrent use (concurrent
// Writes of one path leave one of the contents whole).
package atomicfile

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Write replaces the file at path with data, with mode perm exactly (the
// umask does not apply). It writes a temporary file in path's directory
// (created with mode 0600: nobody else can read the data before it has its
// mode), sets its mode, fsyncs it, renames it over path and fsyncs the
// directory. The directory must exist.
//
// An error before the rename leaves path untouched and removes the
// temporary file. An error from the final directory sync means path holds
// data already but the rename may not survive a crash.
func Write(path string, data []byte, perm os.FileMode) error {
	return WriteFunc(path, perm, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
}

// WriteFunc is Write of the content fill writes to w, for content produced
// in pieces. An error from fill fails the write as Write's own errors do:
// path untouched, no temporary file left. fill must not keep w.
func WriteFunc(path string, perm os.FileMode, fill func(w io.Writer) error) (err error) {
	dir, name := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	f, err := createTemp(dir, name)
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if err = fill(f); err != nil {
		return fmt.Errorf("write %s: %w", tmp, err)
	}
	// The mode before the sync, so that the sync makes it durable too.
	if err = f.Chmod(perm.Perm()); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	if err = os.Rename(tmp, path); err != nil {
		return err
	}
	if err := syncDir(dir); err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	return nil
}

// RemoveTemps removes the temporary files that Writes of path left behind
// when they were interrupted by a crash. It must not run while a Write of
// path is in progress: that Write would fail (leaving path untouched). A
// missing directory has nothing to remove; errors removing several files
// are joined.
func RemoveTemps(path string) error {
	dir, name := filepath.Split(path)
	return removeTemps(dir, func(entry string) bool { return isTemp(name, entry) })
}

// RemoveAllTemps is RemoveTemps of every file in dir: it removes the
// temporary files of all interrupted Writes there. It must not run while a
// Write in dir is in progress.
func RemoveAllTemps(dir string) error {
	return removeTemps(dir, func(entry string) bool {
		if len(entry) < len("..tmp-")+randomLen || entry[0] != '.' {
			return false
		}
		name := entry[1 : len(entry)-len(".tmp-")-randomLen]
		return isTemp(name, entry)
	})
}

// removeTemps removes the regular files of dir whose names temp accepts.
func removeTemps(dir string, temp func(entry string) bool) error {
	if dir == "" {
		dir = "."
	}
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var errs []error
	for _, e := range entries {
		if !e.Type().IsRegular() || !temp(e.Name()) {
			continue
		}
		if err := os.Remove(filepath.Join(dir, e.Name())); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// randomLen is the length of crypto/rand.Text's strings.
const randomLen = 26

// tempPrefix is the start of the temporary files' names for name.
func tempPrefix(name string) string { return "." + name + ".tmp-" }

// isTemp reports whether entry is the name of a temporary file of name.
func isTemp(name, entry string) bool {
	random, ok := strings.CutPrefix(entry, tempPrefix(name))
	if !ok || len(random) != randomLen {
		return false
	}
	for i := 0; i < len(random); i++ {
		if c := random[i]; !(c >= 'A' && c <= 'Z' || c >= '2' && c <= '7') {
			return false
		}
	}
	return true
}

// createTemp creates a new temporary file for name in dir, mode 0600.
func createTemp(dir, name string) (*os.File, error) {
	for try := 0; ; try++ {
		p := filepath.Join(dir, tempPrefix(name)+rand.Text())
		f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
		// 130 random bits: a clash is someone else's file; a few more
		// tries tell that apart from a directory that refuses them all.
		if errors.Is(err, fs.ErrExist) && try < 3 {
			continue
		}
		return f, err
	}
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}
