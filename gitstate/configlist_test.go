package gitstate

import (
	"reflect"
	"testing"
)

// TestParseConfigList reads git config -z --list --show-origin: values
// (the last of a key, a bare key as true) and the includes with their
// origins.
func TestParseConfigList(t *testing.T) {
	out := "file:.git/config\x00core.bare\nfalse\x00" +
		"file:.git/config\x00core.bare\ntrue\x00" +
		"file:/home/u/.gitconfig\x00diff.colormoved\x00" +
		"file:.git/config\x00include.path\n../.gitconfig\x00" +
		"command line:\x00includeif.gitdir:/x/.path\n/etc/extra\x00" +
		"file:.git/config\x00filter.strip.clean\nsh scripts/clean.sh\x00"
	c := parseConfigList(out)
	want := map[string]string{"core.bare": "true", "diff.colormoved": "true", "include.path": "../.gitconfig",
		"includeif.gitdir:/x/.path": "/etc/extra", "filter.strip.clean": "sh scripts/clean.sh"}
	if !reflect.DeepEqual(c.values, want) {
		t.Errorf("values %v, want %v", c.values, want)
	}
	wantInc := []configInclude{{"file:.git/config", "../.gitconfig"}, {"command line:", "/etc/extra"}}
	if !reflect.DeepEqual(c.includes, wantInc) || !c.volatile {
		t.Errorf("includes %v (volatile %v), want %v", c.includes, c.volatile, wantInc)
	}
	if c := parseConfigList(""); len(c.values) != 0 || c.volatile {
		t.Errorf("empty configuration: %+v", c)
	}
}
