// Package mmap maps model files read-only into memory. On unix systems the
// file is memory-mapped, so opening a multi-gigabyte model costs no copy and
// pages load on first touch; elsewhere the file is read into memory.
package mmap

import (
	"errors"
	"fmt"
	"os"
)

// ErrClosed is returned by Close on an already closed Map.
var ErrClosed = errors.New("mmap: already closed")

// Map is a read-only view of a whole file.
type Map struct {
	data   []byte
	mapped bool
}

// Open maps the file at path read-only. An empty file gives an empty Map.
func Open(path string) (*Map, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("open %s: not a regular file", path)
	}
	size := fi.Size()
	if size == 0 {
		return &Map{}, nil
	}
	if int64(int(size)) != size || size < 0 {
		return nil, fmt.Errorf("open %s: file of %d bytes is too large to map", path, size)
	}
	data, mapped, err := mapFile(f, int(size))
	if err != nil {
		return nil, fmt.Errorf("map %s: %w", path, err)
	}
	return &Map{data: data, mapped: mapped}, nil
}

// Bytes returns the file's contents. The slice must not be written and must
// not be used after Close.
func (m *Map) Bytes() []byte { return m.data }

// Len returns the file's size in bytes.
func (m *Map) Len() int { return len(m.data) }

// Mapped reports whether the contents are memory-mapped (rather than read
// into the Go heap).
func (m *Map) Mapped() bool { return m.mapped }

// Close releases the mapping. The slices returned by Bytes become invalid.
func (m *Map) Close() error {
	if m.data == nil {
		if m.mapped {
			return ErrClosed
		}
		return nil
	}
	var err error
	if m.mapped {
		err = unmap(m.data)
	}
	m.data = nil
	return err
}

// DontNeed tells the kernel the mapped pages are not needed for now: they
// leave the process's resident set (a file's pages stay in the page cache)
// and fault back in if read again. Loaders call it once the weights have
// been copied into their packed layout. Without a real mapping it does
// nothing.
func (m *Map) DontNeed() error {
	if m == nil || !m.mapped || len(m.data) == 0 {
		return nil
	}
	return dontNeed(m.data)
}
