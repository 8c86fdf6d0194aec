//go:build linux

package sandbox

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/codemachine/codemachine/internal/fastread"
)

// probeDeps are the files whose contents decide whether the launcher can
// have a mount namespace: the kernel instance (its boot id), the sysctls
// that allow or forbid unprivileged user namespaces, and this process's
// security label (AppArmor, SELinux).
var probeDeps = []string{
	"/proc/sys/kernel/random/boot_id",
	"/proc/sys/kernel/unprivileged_userns_clone",
	"/proc/sys/user/max_user_namespaces",
	"/proc/sys/user/max_mnt_namespaces",
	"/proc/sys/user/max_ipc_namespaces",
	"/proc/sys/kernel/apparmor_restrict_unprivileged_userns",
	"/proc/self/attr/current",
}

// probeStatusFields are the lines of /proc/self/status that matter too:
// the seccomp filter and the capabilities a container gives.
var probeStatusFields = []string{"Uid:", "Gid:", "CapEff:", "CapBnd:", "NoNewPrivs:", "Seccomp:", "Seccomp_filters:"}

// probeKey identifies everything the namespace trial's answer depends on:
// probeDeps, the user and mount namespaces this process is in (a
// container has its own), probeStatusFields, and the executable (the
// launcher itself). "" when it cannot be told.
func probeKey() string {
	h := sha256.New()
	for _, f := range probeDeps {
		data, err := fastread.ReadFile(f)
		fmt.Fprintf(h, "%s %q %v\n", f, data, err != nil)
	}
	for _, ns := range []string{"/proc/self/ns/user", "/proc/self/ns/mnt"} {
		link, err := os.Readlink(ns)
		if err != nil {
			return ""
		}
		fmt.Fprintf(h, "%s %s\n", ns, link)
	}
	status, err := fastread.ReadFile("/proc/self/status")
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(string(status), "\n") {
		for _, field := range probeStatusFields {
			if strings.HasPrefix(line, field) {
				fmt.Fprintln(h, line)
			}
		}
	}
	exe, err := os.Executable()
	if err != nil {
		return ""
	}
	fi, err := os.Stat(exe)
	if err != nil {
		return ""
	}
	fmt.Fprintf(h, "%s %d %d\n", exe, fi.Size(), fi.ModTime().UnixNano())
	return hex.EncodeToString(h.Sum(nil))
}

// rememberedProbe is the disk copy of a namespace trial's answer.
type rememberedProbe struct {
	Key          string `json:"key"`
	NS           int    `json:"ns"`
	Namespace    string `json:"namespace,omitempty"`
	NamespaceErr string `json:"namespace_error,omitempty"`
}

var (
	rememberedOnce sync.Once
	remembered     Status
)

// ProbeRemembered is Probe for reports (codemachine status), which must
// not start a process each time: the answer of the namespace trial is
// kept in file by probeKey, everything it depends on, and read back while
// that is unchanged. Landlock's ABI is asked every time (a system call).
// Steps are launched after Probe, which always tries.
func ProbeRemembered(file string) Status {
	rememberedOnce.Do(func() { remembered = probeRemembered(file) })
	return remembered
}

func probeRemembered(file string) Status {
	key := probeKey()
	if !ready.Load() || key == "" {
		return Probe()
	}
	var r rememberedProbe
	if data, err := fastread.ReadFile(file); err == nil && json.Unmarshal(data, &r) == nil && r.Key == key {
		s := probeABI()
		s.ns, s.Namespace, s.NamespaceErr = nsMode(r.NS), r.Namespace, r.NamespaceErr
		return s
	}
	s := Probe()
	data, err := json.Marshal(rememberedProbe{Key: key, NS: int(s.ns), Namespace: s.Namespace, NamespaceErr: s.NamespaceErr})
	if err != nil {
		return s
	}
	if os.MkdirAll(filepath.Dir(file), 0o755) != nil {
		return s
	}
	tmp, err := os.CreateTemp(filepath.Dir(file), "probe-*.tmp")
	if err != nil {
		return s
	}
	_, werr := tmp.Write(data)
	if cerr := tmp.Close(); werr != nil || cerr != nil || os.Rename(tmp.Name(), file) != nil {
		_ = os.Remove(tmp.Name())
	}
	return s
}
