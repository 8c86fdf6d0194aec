//go:build unix

package watcher

import (
	"io/fs"
	"syscall"
)

// inode is the file's inode number, which tells a replaced file from one
// written in place.
func inode(fi fs.FileInfo) uint64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return uint64(st.Ino)
	}
	return 0
}
