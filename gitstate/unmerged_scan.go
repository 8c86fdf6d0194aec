package gitstate

import (
	"bytes"
	"encoding/binary"
	"os"
)

// unmergedPaths lists the paths of the index file at p that have unmerged
// entries (stages 1-3), sorted as the index keeps them, without starting
// git: a run looks before its first unit starts. ok is false when the
// file is not an index this reads (version 4's compressed paths, damage):
// git is asked then.
func unmergedPaths(p string) (paths []string, ok bool, err error) {
	data, err := os.ReadFile(p)
	if err != nil {
		return nil, false, err
	}
	if len(data) < 12+20 || string(data[:4]) != "DIRC" {
		return nil, false, nil
	}
	version := binary.BigEndian.Uint32(data[4:8])
	if version != 2 && version != 3 {
		return nil, false, nil
	}
	body := data[:len(data)-20]
	n := int(binary.BigEndian.Uint32(data[8:12]))
	off := 12
	for range n {
		const fixed = 62
		if off+fixed > len(body) {
			return nil, false, nil
		}
		flags := binary.BigEndian.Uint16(body[off+60:])
		head := fixed
		if flags&0x4000 != 0 {
			if version < 3 {
				return nil, false, nil
			}
			head += 2 // extended flags
		}
		if off+head > len(body) {
			return nil, false, nil
		}
		end := bytes.IndexByte(body[off+head:], 0)
		if end < 0 {
			return nil, false, nil
		}
		if (flags>>12)&3 != 0 {
			name := string(body[off+head : off+head+end])
			if len(paths) == 0 || paths[len(paths)-1] != name {
				paths = append(paths, name)
			}
		}
		off += (head + end + 8) &^ 7
	}
	if off > len(body) {
		return nil, false, nil
	}
	return paths, true, nil
}
