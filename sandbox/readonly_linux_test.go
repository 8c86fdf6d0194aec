//go:build linux

package sandbox

import "testing"

func TestParseMountInfo(t *testing.T) {
	tests := []struct {
		line string
		want mount
		ok   bool
	}{
		{"36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue", mount{"/mnt2", "ext3"}, true},
		{"22 1 0:21 / /proc rw,nosuid - proc proc rw", mount{"/proc", "proc"}, true},
		{`40 22 0:35 / /home/a\040b\134c rw - tmpfs tmpfs rw`, mount{`/home/a b\c`, "tmpfs"}, true},
		{`41 22 0:36 / /trail\04 rw - tmpfs tmpfs rw`, mount{`/trail\04`, "tmpfs"}, true},
		{"garbage", mount{}, false},
		{"1 2 3 4 - ext4", mount{}, false},
	}
	for _, tt := range tests {
		got, ok := parseMountInfo(tt.line)
		if got != tt.want || ok != tt.ok {
			t.Errorf("parseMountInfo(%q) = %+v, %v; want %+v, %v", tt.line, got, ok, tt.want, tt.ok)
		}
	}
}
