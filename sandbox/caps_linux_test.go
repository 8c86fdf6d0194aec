//go:build linux

package sandbox

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// capsScript prints the program's capability sets and no_new_privs.
const capsScript = `grep -E '^(Cap(Inh|Prm|Eff|Bnd|Amb)|NoNewPrivs):' /proc/self/status`

// capLines reads capsScript's output: set name -> hex mask.
func capLines(t *testing.T, out string) map[string]string {
	t.Helper()
	m := map[string]string{}
	for _, f := range regexp.MustCompile(`(?m)^(\w+):\s*(\S+)$`).FindAllStringSubmatch(out, -1) {
		m[f[1]] = f[2]
	}
	if len(m) != 6 {
		t.Fatalf("cannot read the capability sets from %q", out)
	}
	return m
}

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("the capabilities a program could keep are root's")
	}
}

// A program started by a launcher run as root holds no capability, not
// even in its bounding set, and cannot gain one: with or without the rest
// of the sandbox.
func TestCapabilitiesAreDropped(t *testing.T) {
	requireRoot(t)
	dir := t.TempDir()
	// The control: without DropCapabilities the program is root in full.
	res := run(t, Policy{}, dir, baseEnv(dir), nil, "/bin/sh", "-c", capsScript)
	if c := capLines(t, res.out); c["CapEff"] == "0000000000000000" {
		t.Fatalf("control: root's program has no capability: %s", res.out)
	}
	policies := map[string]Policy{
		"alone":    {DropCapabilities: true},
		"landlock": {DropCapabilities: true, Landlock: true, Writable: []string{dir}},
	}
	for name, p := range policies {
		t.Run(name, func(t *testing.T) {
			if p.Landlock {
				requireLandlock(t)
			}
			res := run(t, p, dir, baseEnv(dir), nil, "/bin/sh", "-c", capsScript)
			if !res.state.Success() {
				t.Fatalf("failed: %s %s", res.out, res.report)
			}
			for set, mask := range capLines(t, res.out) {
				want := "0000000000000000"
				if set == "NoNewPrivs" {
					want = "1"
				}
				if mask != want {
					t.Errorf("%s: %s, want %s", set, mask, want)
				}
			}
		})
	}
}

// In a user namespace (an unprivileged user's launcher) the program gets
// nothing of the launcher's CAP_SYS_ADMIN there, and cannot gain it.
func TestCapabilitiesAreDroppedInAUserNamespace(t *testing.T) {
	requireLandlock(t)
	if err := tryNamespace(nsUser); err != nil {
		t.Skipf("no user namespace here: %v", err)
	}
	forceNS = nsUser
	defer func() { forceNS = nsNone }()
	dir := t.TempDir()
	res := run(t, Policy{DropCapabilities: true, Landlock: true, Writable: []string{dir}}, dir, baseEnv(dir), nil, "/bin/sh", "-c", capsScript)
	if !res.state.Success() {
		t.Fatalf("failed: %s %s", res.out, res.report)
	}
	c := capLines(t, res.out)
	for _, set := range []string{"CapInh", "CapPrm", "CapEff", "CapAmb"} {
		if c[set] != "0000000000000000" {
			t.Errorf("%s: %s, want none", set, c[set])
		}
	}
	if c["NoNewPrivs"] != "1" {
		t.Errorf("NoNewPrivs: %s", c["NoNewPrivs"])
	}
}

// Once it has launched a program, the caller is not dumpable: a program
// of the same user without CAP_SYS_PTRACE cannot read its memory or
// environment through /proc.
func TestCommandMakesTheCallerNonDumpable(t *testing.T) {
	if st := Probe(); st.ns == nsUser && st.Writes() {
		t.Skip("the launcher gets a user namespace here, whose uid_map a non-dumpable caller could not write")
	}
	if _, err := Command(Policy{}, "/bin/true", "true", nil); err != nil {
		t.Fatal(err)
	}
	if d, err := unix.PrctlRetInt(unix.PR_GET_DUMPABLE, 0, 0, 0, 0); err != nil || d != 0 {
		t.Errorf("dumpable = %d (%v), want 0", d, err)
	}
}

// Probe says that capabilities can be dropped here, in the summary too.
func TestProbeSaysCapabilitiesAreDropped(t *testing.T) {
	st := Probe()
	if !st.Privileges {
		t.Fatalf("capabilities cannot be dropped: %s", st.PrivilegesErr)
	}
	if !strings.Contains(st.Summary(), "capabilities: dropped") {
		t.Errorf("summary %q", st.Summary())
	}
}

// A system where capabilities cannot be dropped lacks a protection: what
// auto warns about and required refuses for.
func TestMissingNamesKeptCapabilities(t *testing.T) {
	st := Status{OS: "linux", ABI: SocketABI, Subreaper: true, PrivilegesErr: "capget: operation not permitted"}
	if st.Full() {
		t.Error("Full() without dropping capabilities")
	}
	want := []string{"steps keep codemachine's capabilities (capget: operation not permitted)"}
	if got := st.Missing(); len(got) != 1 || got[0] != want[0] {
		t.Errorf("Missing() = %q, want %q", got, want)
	}
}
