package gitstate

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/codemachine/codemachine/internal/fastread"
)

// git config --list's answer is kept between processes in
// .git/codemachine/cache/config-list, under a key of everything the answer
// depends on: each configuration file's stamp (the file's, and its
// target's where it is a symbolic link: dotfile managers link
// ~/.gitconfig) and the environment variables that name or add
// configuration. A configuration that includes other files is never kept
// (their names are only known from the answer), and of the others only the
// sections codemachine reads (keptSections): never a remote's URL or a
// token. So a codemachine command
// that needs the configuration starts no git process for it while nothing
// changed, which is nearly always.

// configCacheName is the cache file, under LocalDir.
const configCacheName = "cache/config-list"

// configEnvPrefixes are the environment variables git config reads
// besides the files: GIT_CONFIG_PARAMETERS (git -c), GIT_CONFIG_COUNT and
// its GIT_CONFIG_KEY_n/VALUE_n, GIT_CONFIG_NOSYSTEM, GIT_CONFIG_GLOBAL and
// _SYSTEM, GIT_CONFIG; HOME and XDG_CONFIG_HOME name the global files.
var configEnvPrefixes = []string{"GIT_CONFIG", "HOME=", "XDG_CONFIG_HOME="}

// configKey identifies git config --list's answer for the files, stamped
// as stamps, in this environment.
func (r *Repo) configKey(files []string, stamps []fileStamp) string {
	h := sha256.New()
	for i, f := range files {
		s := stamps[i]
		fmt.Fprintf(h, "%s %t %o %d %d %d.%d %d\n", f, s.exists, s.mode, s.size, s.mtime.UnixNano(), s.ctime.Sec, s.ctime.Nsec, s.ino)
		if s.exists && s.mode&fs.ModeSymlink != 0 {
			st, err := os.Stat(f)
			if err != nil {
				fmt.Fprintf(h, "-> %v\n", err)
			} else {
				fmt.Fprintf(h, "-> %o %d %d\n", st.Mode(), st.Size(), st.ModTime().UnixNano())
			}
			if target, err := filepath.EvalSymlinks(f); err == nil {
				ts, _ := stampOf(target)
				fmt.Fprintf(h, "-> %s %d.%d %d\n", target, ts.ctime.Sec, ts.ctime.Nsec, ts.ino)
			}
		}
	}
	var names []string
	for _, kv := range append(os.Environ(), r.env...) {
		for _, p := range configEnvPrefixes {
			if strings.HasPrefix(kv, p) {
				name, _, _ := strings.Cut(kv, "=")
				names = append(names, name)
			}
		}
	}
	slices.Sort(names)
	for _, name := range slices.Compact(names) {
		fmt.Fprintf(h, "%s=%q\n", name, r.getenv(name))
	}
	return hex.EncodeToString(h.Sum(nil))
}

// cachedConfigList is the kept answer for key, or false.
func (r *Repo) cachedConfigList(key string) (string, bool) {
	data, err := fastread.ReadFile(filepath.Join(r.commonDir, "codemachine", filepath.FromSlash(configCacheName)))
	if err != nil {
		return "", false
	}
	head, list, ok := bytes.Cut(data, []byte("\n"))
	if !ok || string(head) != key {
		return "", false
	}
	return string(list), true
}

// keptSections are the configuration sections the cache keeps: those the
// in-process paths and the sandbox's guard read (ConfiguredCommands), and
// nothing that holds remote URLs, tokens or passwords (remote.*.url,
// http.*.extraHeader, url.*.insteadOf, a tool's own token keys), which
// must not be copied out of the files their owner put them in.
var keptSections = map[string]bool{"core": true, "user": true, "author": true, "committer": true, "commit": true,
	"i18n": true, "extensions": true, "index": true, "feature": true, "gpg": true, "filter": true, "diff": true,
	"merge": true, "sequence": true, "credential": true}

// keptConfigList is the part of git config -z --list --show-origin's
// answer that the cache keeps (keptSections), false when the answer must
// not be kept at all: a credential helper that is a shell snippet (it may
// spell out a password) or is set for a URL with a user or password in it.
func keptConfigList(list string) (string, bool) {
	fields := strings.Split(list, "\x00")
	var b strings.Builder
	for i := 0; i+1 < len(fields); i += 2 {
		key, value, _ := strings.Cut(fields[i+1], "\n")
		section, _, _ := strings.Cut(key, ".")
		if !keptSections[section] {
			continue
		}
		if section == "credential" {
			if !strings.HasSuffix(key, ".helper") || strings.Contains(key, "@") || strings.HasPrefix(strings.TrimSpace(value), "!") {
				return "", false
			}
		}
		b.WriteString(fields[i] + "\x00" + fields[i+1] + "\x00")
	}
	return b.String(), true
}

// keepConfigList keeps the answer list under key; best effort (a
// read-only repository just asks git each time). A repository that is not
// codemachine's (neither .git/codemachine nor a .codemachine directory) is
// left as it is.
func (r *Repo) keepConfigList(key, list string) {
	local := filepath.Join(r.commonDir, "codemachine")
	if !isDir(local) && (r.root == "" || !isDir(filepath.Join(r.root, ".codemachine"))) {
		return
	}
	p := filepath.Join(local, filepath.FromSlash(configCacheName))
	list, ok := keptConfigList(list)
	if !ok {
		_ = os.Remove(p)
		return
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return
	}
	tmp, err := os.CreateTemp(filepath.Dir(p), ".config-list-*")
	if err != nil {
		return
	}
	_, werr := tmp.WriteString(key + "\n" + list)
	if cerr := tmp.Close(); werr != nil || cerr != nil || os.Rename(tmp.Name(), p) != nil {
		_ = os.Remove(tmp.Name())
	}
}
