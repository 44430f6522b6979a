package sessionpool

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/sessionproxy/sessionproxy/sessionpool/atomicfile"
)

// Store keeps persisted pool states by key. Implementations must be safe for
// concurrent use.
type Store interface {
	// Get returns the value stored under key, or an error wrapping
	// ErrNotFound when there is none.
	Get(ctx context.Context, key string) ([]byte, error)
	// Set stores value under key, replacing any earlier value.
	Set(ctx context.Context, key string, value []byte) error
	// Delete removes key; deleting an absent key is not an error.
	Delete(ctx context.Context, key string) error
}

// FileStore is a Store keeping each key in <dir>/<key>.json. Writes are
// atomic (package atomicfile): a temporary file in dir is written, fsynced
// and renamed over the old file, then dir is fsynced, so a crash at any
// moment leaves either the old or the new document, never a torn one. A
// crash can leave a temporary file behind; NewFileStore removes those.
// Files are created with mode 0600: they hold cookies and upstream
// credentials. Keys must be non-empty and hold no
// path separator, NUL or "..". Safe for concurrent use; concurrent Sets of
// one key leave one of the values whole.
type FileStore struct {
	dir string
}

// NewFileStore returns a FileStore in dir, creating dir (mode 0700) when it
// does not exist. It removes the temporary files that writes interrupted by
// a crash left in dir, so it must not run while another FileStore writes
// there.
func NewFileStore(dir string) (*FileStore, error) {
	if dir == "" {
		return nil, errors.New("new file store: empty directory")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("new file store: %w", err)
	}
	if err := removeTemps(dir); err != nil {
		return nil, fmt.Errorf("new file store: remove temporary files: %w", err)
	}
	return &FileStore{dir: dir}, nil
}

// removeTemps removes the temporary files of interrupted writes in dir:
// atomicfile's, and the "<key>.json.tmp-*" files of earlier versions.
func removeTemps(dir string) error {
	errs := []error{atomicfile.RemoveAllTemps(dir)}
	entries, err := os.ReadDir(dir)
	errs = append(errs, err)
	for _, e := range entries {
		_, random, ok := strings.Cut(e.Name(), ".json.tmp-")
		if ok && random != "" && strings.Trim(random, "0123456789") == "" && e.Type().IsRegular() {
			errs = append(errs, os.Remove(filepath.Join(dir, e.Name())))
		}
	}
	return errors.Join(errs...)
}

// checkKey rejects keys that could escape the store's directory.
func checkKey(key string) error {
	if problem := keyProblem(key); problem != "" {
		return fmt.Errorf("%w: %s", ErrInvalidKey, problem)
	}
	return nil
}

// keyProblem says what makes key unfit for a FileStore ("" when nothing
// does): the text of checkKey's error, which Options.validate words as an
// invalid option.
func keyProblem(key string) string {
	switch {
	case key == "":
		return "empty key"
	case strings.ContainsAny(key, `/\`+"\x00") || strings.ContainsRune(key, filepath.Separator):
		return fmt.Sprintf("%q holds a path separator or NUL", key)
	case strings.Contains(key, ".."):
		return fmt.Sprintf("%q holds \"..\"", key)
	case len(key) > maxKeyLen:
		return fmt.Sprintf("%.40q... is %d bytes, over the %d of a file name with its suffixes", key, len(key), maxKeyLen)
	}
	return ""
}

// maxKeyLen is the longest key whose files (".KEY.json.tmp-" and 26
// characters, the longest) have names a file system takes (255 bytes).
const maxKeyLen = 255 - len("..json.tmp-") - 26

func (s *FileStore) path(key string) (string, error) {
	if err := checkKey(key); err != nil {
		return "", err
	}
	return filepath.Join(s.dir, key+".json"), nil
}

// Get reads <dir>/<key>.json.
func (s *FileStore) Get(ctx context.Context, key string) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("get %q: %w", key, err)
	}
	p, err := s.path(key)
	if err != nil {
		return nil, fmt.Errorf("get: %w", err)
	}
	data, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("get %q: %w", key, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("get %q: %w", key, err)
	}
	return data, nil
}

// Set writes <dir>/<key>.json atomically (atomicfile.Write), with mode 0600.
func (s *FileStore) Set(ctx context.Context, key string, value []byte) error {
	return s.setStream(ctx, key, func(write func([]byte) error) error { return write(value) })
}

// setStream is Set of the value that fill passes to write, chunk by chunk.
func (s *FileStore) setStream(ctx context.Context, key string, fill func(write func([]byte) error) error) (err error) {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("set %q: %w", key, err)
	}
	p, err := s.path(key)
	if err != nil {
		return fmt.Errorf("set: %w", err)
	}
	err = atomicfile.WriteFunc(p, 0o600, func(w io.Writer) error {
		return fill(func(b []byte) error {
			_, err := w.Write(b)
			return err
		})
	})
	if err != nil {
		return fmt.Errorf("set %q: %w", key, err)
	}
	return nil
}

// Delete removes <dir>/<key>.json.
func (s *FileStore) Delete(ctx context.Context, key string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("delete %q: %w", key, err)
	}
	p, err := s.path(key)
	if err != nil {
		return fmt.Errorf("delete: %w", err)
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("delete %q: %w", key, err)
	}
	return nil
}

// MemoryStore is a Store in memory, for tests and for pools that need no
// persistence across processes. Values are copied in and out. The zero
// value is not usable: use NewMemoryStore. Safe for concurrent use.
type MemoryStore struct {
	mu   sync.Mutex
	data map[string][][]byte // a value is the concatenation of its chunks
}

// NewMemoryStore returns an empty MemoryStore.
func NewMemoryStore() *MemoryStore { return &MemoryStore{data: make(map[string][][]byte)} }

// Get returns a copy of the value under key.
func (m *MemoryStore) Get(ctx context.Context, key string) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("get %q: %w", key, err)
	}
	m.mu.Lock()
	v, ok := m.data[key]
	m.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("get %q: %w", key, ErrNotFound)
	}
	return concat([]byte{}, v), nil
}

// Set stores a copy of value under key.
func (m *MemoryStore) Set(ctx context.Context, key string, value []byte) error {
	return m.setChunks(ctx, key, [][]byte{bytes.Clone(value)})
}

// setChunks stores chunks, which the caller hands over (no copy: the pool's
// persist builds them for this call only).
func (m *MemoryStore) setChunks(ctx context.Context, key string, chunks [][]byte) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("set %q: %w", key, err)
	}
	m.mu.Lock()
	m.data[key] = chunks
	m.mu.Unlock()
	return nil
}

// Delete removes key.
func (m *MemoryStore) Delete(ctx context.Context, key string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("delete %q: %w", key, err)
	}
	m.mu.Lock()
	delete(m.data, key)
	m.mu.Unlock()
	return nil
}
