//go:build !unix

package fastread

import (
	"errors"
	"io/fs"
	"os"
)

// ErrNotRegular is a named pipe, socket or device where a file was to be
// read: it is refused, not read, as reading a named pipe would wait for a
// writer for ever.
var ErrNotRegular = errors.New("not a regular file (a named pipe, socket or device), which codemachine does not read")

// ReadFile is os.ReadFile, refusing a named pipe, socket or device with
// ErrNotRegular without opening it.
func ReadFile(name string) ([]byte, error) {
	if fi, err := os.Stat(name); err == nil && !fi.Mode().IsRegular() && !fi.IsDir() {
		return nil, &fs.PathError{Op: "read", Path: name, Err: ErrNotRegular}
	}
	return os.ReadFile(name)
}

// Open is os.Open, refusing a named pipe, socket or device with
// ErrNotRegular without opening it.
func Open(name string) (*os.File, error) {
	if fi, err := os.Stat(name); err == nil && !fi.Mode().IsRegular() {
		return nil, &fs.PathError{Op: "open", Path: name, Err: ErrNotRegular}
	}
	return os.Open(name)
}
