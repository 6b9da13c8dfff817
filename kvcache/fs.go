package kvcache

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// FS is the file system the Store and Blobs write through. OSFS is the real
// one; tests substitute one that fails chosen operations.
type FS interface {
	// MkdirAll creates a directory and its parents.
	MkdirAll(dir string) error
	// CreateTemp creates a new file in dir (os.CreateTemp semantics).
	CreateTemp(dir, pattern string) (File, error)
	// Rename atomically replaces newpath with oldpath.
	Rename(oldpath, newpath string) error
	// Remove removes a file; a missing file is an error wrapping
	// fs.ErrNotExist.
	Remove(name string) error
	// ReadFile returns a file's contents.
	ReadFile(name string) ([]byte, error)
	// ReadDir lists a directory (a missing one is an error wrapping
	// fs.ErrNotExist).
	ReadDir(dir string) ([]fs.DirEntry, error)
	// SyncDir makes the directory's entries (creations, renames, removals)
	// durable.
	SyncDir(dir string) error
}

// File is a file being written.
type File interface {
	Name() string
	Write(p []byte) (int, error)
	Sync() error
	Close() error
}

// OSFS is the operating system's file system.
type OSFS struct{}

// MkdirAll calls os.MkdirAll with mode 0o755.
func (OSFS) MkdirAll(dir string) error { return os.MkdirAll(dir, 0o755) }

// CreateTemp calls os.CreateTemp.
func (OSFS) CreateTemp(dir, pattern string) (File, error) { return os.CreateTemp(dir, pattern) }

// Rename calls os.Rename.
func (OSFS) Rename(oldpath, newpath string) error { return os.Rename(oldpath, newpath) }

// Remove calls os.Remove.
func (OSFS) Remove(name string) error { return os.Remove(name) }

// ReadFile calls os.ReadFile.
func (OSFS) ReadFile(name string) ([]byte, error) { return os.ReadFile(name) }

// ReadDir calls os.ReadDir.
func (OSFS) ReadDir(dir string) ([]fs.DirEntry, error) { return os.ReadDir(dir) }

// SyncDir opens the directory and fsyncs it.
func (OSFS) SyncDir(dir string) error {
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

// errDirSync is wrapped by writeAtomic's error when the file was renamed
// into place but the directory sync failed: the new file is there.
var errDirSync = errors.New("sync directory")

// tmpPrefix starts the names of files being written; Open removes the
// ones a crash left behind.
const tmpPrefix = ".tmp-"

// writeAtomic writes the chunks to dir/name so that a crash at any point
// leaves either the old file or the complete new one: a temporary file in
// the same directory, fsync, rename, fsync of the directory. Without
// durable it skips both fsyncs: readers still never see a partial file,
// but a power loss may lose it. With durable but not syncDir it skips the
// directory fsync, which the caller does (once for many files).
func writeAtomic(fsys FS, dir, name string, durable, syncDir bool, chunks ...[]byte) error {
	f, err := writeTemp(fsys, dir, name, chunks...)
	if err != nil {
		return err
	}
	if err := finishTemp(fsys, f, dir, name, durable); err != nil {
		return err
	}
	if !durable || !syncDir {
		return nil
	}
	if err := fsys.SyncDir(dir); err != nil {
		// The rename happened; only its durability is in doubt.
		return fmt.Errorf("%w of %s: %w", errDirSync, name, err)
	}
	return nil
}

// writeTemp writes the chunks to a new temporary file in dir, for
// finishTemp to put in place as name (or abortTemp to drop), and returns
// it open. On error nothing is left.
func writeTemp(fsys FS, dir, name string, chunks ...[]byte) (File, error) {
	f, err := fsys.CreateTemp(dir, tmpPrefix+"*")
	if err != nil {
		return nil, fmt.Errorf("create %s: %w", name, err)
	}
	for _, c := range chunks {
		if _, err := f.Write(c); err != nil {
			abortTemp(fsys, f)
			return nil, fmt.Errorf("write %s: %w", name, err)
		}
	}
	return f, nil
}

// finishTemp fsyncs (if durable), closes and renames a file from
// writeTemp to dir/name. On error the temporary file is removed.
func finishTemp(fsys FS, f File, dir, name string, durable bool) error {
	if durable {
		if err := f.Sync(); err != nil {
			abortTemp(fsys, f)
			return fmt.Errorf("sync %s: %w", name, err)
		}
	}
	if err := f.Close(); err != nil {
		fsys.Remove(f.Name())
		return fmt.Errorf("close %s: %w", name, err)
	}
	if err := fsys.Rename(f.Name(), filepath.Join(dir, name)); err != nil {
		fsys.Remove(f.Name())
		return fmt.Errorf("rename %s: %w", name, err)
	}
	return nil
}

// abortTemp closes and removes a file from writeTemp.
func abortTemp(fsys FS, f File) {
	f.Close()
	fsys.Remove(f.Name())
}

// removeTemps deletes leftover temporary files in dir.
func removeTemps(fsys FS, dir string) error {
	ents, err := fsys.ReadDir(dir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return err
	}
	for _, e := range ents {
		if len(e.Name()) >= len(tmpPrefix) && e.Name()[:len(tmpPrefix)] == tmpPrefix {
			if err := fsys.Remove(filepath.Join(dir, e.Name())); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return err
			}
		}
	}
	return nil
}
