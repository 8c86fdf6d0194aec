//go:build linux

package sandbox

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

// TestProbeRemembered: the namespace trial's answer is written by its key
// and read back while the key holds, so a report starts no process; a
// remembered answer of another key is not used but tried again and
// replaced.
func TestProbeRemembered(t *testing.T) {
	file := filepath.Join(t.TempDir(), "cache", "sandbox-probe.json")
	live := Probe()
	first := probeRemembered(file)
	if first != live {
		t.Fatalf("first report %+v, the probe says %+v", first, live)
	}
	read := func() rememberedProbe {
		t.Helper()
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatalf("nothing remembered: %v", err)
		}
		var r rememberedProbe
		if err := json.Unmarshal(data, &r); err != nil {
			t.Fatal(err)
		}
		return r
	}
	r := read()
	if r.Key == "" || r.Key != probeKey() || r.Namespace != live.Namespace || r.NamespaceErr != live.NamespaceErr {
		t.Fatalf("remembered %+v for the probe's %+v", r, live)
	}
	if probeKey() != r.Key {
		t.Fatal("the key changed between two reads of the same system")
	}

	// A remembered answer with this key is what is reported (no trial:
	// the trial would not give this made-up error).
	write := func(r rememberedProbe) {
		t.Helper()
		data, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(file, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(rememberedProbe{Key: r.Key, NS: int(nsNone), NamespaceErr: "remembered"})
	if got := probeRemembered(file); got.NamespaceErr != "remembered" || got.ABI != live.ABI || got.ns != nsNone {
		t.Errorf("with the answer remembered: %+v", got)
	}

	// Another key: tried again, and the answer replaced.
	write(rememberedProbe{Key: "another system", NS: int(nsNone), NamespaceErr: "remembered"})
	if got := probeRemembered(file); got != live {
		t.Errorf("with another key remembered: %+v, want the probe's %+v", got, live)
	}
	if r := read(); r.Key != probeKey() || r.NamespaceErr != live.NamespaceErr {
		t.Errorf("not replaced: %+v", r)
	}
}
