package main

import "testing"

// TestBuildInfoNotReadWhenLinked: with the version and the commit set by
// the linker (make build), every command's start skips parsing the
// module's build information, which allocates a line per module.
func TestBuildInfoNotReadWhenLinked(t *testing.T) {
	defer func(v, c string) { version, commit = v, c }(version, commit)
	version, commit = "v1.2.3", "0123456789abcdef0123456789abcdef01234567"
	var v, c string
	if allocs := testing.AllocsPerRun(10, func() { v, c = readBuildInfo() }); allocs != 0 {
		t.Errorf("readBuildInfo allocated %v times with both set by the linker", allocs)
	}
	if v != version || c != commit {
		t.Errorf("readBuildInfo() = %q, %q; want the linker's %q, %q", v, c, version, commit)
	}
	// Without them (go install), the build information fills them in.
	version, commit = "dev", ""
	if _, c := readBuildInfo(); c == "" {
		t.Error("no commit without the linker's")
	}
}
