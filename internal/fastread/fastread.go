//go:build unix

// Package fastread reads small files without the runtime's poller.
//
// os.Open offers every file it opens to the poller: on Linux it sets the
// descriptor non-blocking, asks epoll to watch it (which refuses a
// regular file), and sets it blocking again, five system calls more than
// the open itself; closing it goes through the poller too. A status opens
// some thirty small files (loose objects, refs, codemachine's local files
// and caches, the sandbox probe's key), where those calls were most of
// each read's cost.
package fastread

import (
	"errors"
	"io/fs"
	"os"
	"syscall"
)

// ErrNotRegular is a named pipe, socket or device where a file was to be
// read: it is refused, not read, as reading a named pipe would wait for a
// writer for ever.
var ErrNotRegular = errors.New("not a regular file (a named pipe, socket or device), which codemachine does not read")

// ReadFile is os.ReadFile for a file that need not be polled (a regular
// file or one of /proc's): the whole content, or the *fs.PathError
// os.ReadFile would give (Op "open" or "read", so that errors.Is(err,
// fs.ErrNotExist) and the like answer alike). A named pipe or device is
// ErrNotRegular (Op "read"): it is opened non-blocking, so that a named
// pipe without a writer does not hang the open, and not read.
func ReadFile(name string) ([]byte, error) {
	fd, err := open(name)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: name, Err: err}
	}
	defer syscall.Close(fd)
	size := 512
	var st syscall.Stat_t
	if syscall.Fstat(fd, &st) == nil {
		switch st.Mode & syscall.S_IFMT {
		case syscall.S_IFIFO, syscall.S_IFCHR, syscall.S_IFBLK, syscall.S_IFSOCK:
			return nil, &fs.PathError{Op: "read", Path: name, Err: ErrNotRegular}
		case syscall.S_IFREG:
			if st.Size > 0 && st.Size < 1<<30 {
				size = int(st.Size) + 1 // one more, to see the end in the same read
			}
		}
	}
	data := make([]byte, 0, size)
	for {
		n, err := syscall.Read(fd, data[len(data):cap(data)])
		if err == syscall.EINTR {
			continue
		}
		if err == syscall.EAGAIN {
			// A file system that honours O_NONBLOCK on a regular file
			// (some FUSE ones): read it blocking, as os.ReadFile would.
			if err := syscall.SetNonblock(fd, false); err != nil {
				return data, &fs.PathError{Op: "read", Path: name, Err: err}
			}
			continue
		}
		if err != nil {
			return data, &fs.PathError{Op: "read", Path: name, Err: err}
		}
		if n <= 0 {
			return data, nil
		}
		data = data[:len(data)+n]
		if len(data) == cap(data) {
			data = append(data, 0)[:len(data)]
		}
	}
}

// Open is os.Open for a regular file that is read or locked (flock) in
// place, not polled: the file is not offered to the runtime's poller.
// The first file os.Open offers to it starts the poller (an epoll
// instance, an eventfd and its registration), which a command that polls
// nothing (status) then pays for. Anything but a regular file is refused
// with ErrNotRegular (Op "open") without waiting: the file is opened
// non-blocking, so that a named pipe planted there does not wait for a
// writer, and made blocking again once it is known to be a file.
func Open(name string) (*os.File, error) {
	fd, err := open(name)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: name, Err: err}
	}
	var st syscall.Stat_t
	if err := syscall.Fstat(fd, &st); err != nil {
		syscall.Close(fd)
		return nil, &fs.PathError{Op: "open", Path: name, Err: err}
	}
	if st.Mode&syscall.S_IFMT != syscall.S_IFREG {
		syscall.Close(fd)
		return nil, &fs.PathError{Op: "open", Path: name, Err: ErrNotRegular}
	}
	// A blocking descriptor: os.NewFile leaves it out of the poller.
	if err := syscall.SetNonblock(fd, false); err != nil {
		syscall.Close(fd)
		return nil, &fs.PathError{Op: "open", Path: name, Err: err}
	}
	return os.NewFile(uintptr(fd), name), nil
}

func open(name string) (int, error) {
	for {
		fd, err := syscall.Open(name, syscall.O_RDONLY|syscall.O_CLOEXEC|syscall.O_NONBLOCK, 0)
		if err != syscall.EINTR {
			return fd, err
		}
	}
}
