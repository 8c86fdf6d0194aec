//go:build !unix

package watcher

import "io/fs"

// inode is 0 where the platform has no inode numbers: polling then tells
// changes apart by size and time alone.
func inode(fs.FileInfo) uint64 { return 0 }
