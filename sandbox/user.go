package sandbox

import (
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// socketDirs are where programs keep the Unix sockets a step must not
// reach: system services and container engines under /run (docker.sock,
// D-Bus, systemd, databases), the user's runtime dir below it (D-Bus
// session bus, ssh and gpg agents, Wayland, podman), and the temporary
// directories (ssh-agent, X11, tmux, editors' IPC sockets).
var socketDirs = []string{"/run", "/var/run", "/tmp", "/var/tmp"}

// SocketDirs are the directories the sandbox hides from a step for the
// sockets they hold: socketDirs, and those UserSockets finds in environ.
// A writable path that holds one would put its sockets back in reach.
func SocketDirs(environ []string) []string {
	dirs, _ := UserSockets(environ)
	return append(slices.Clone(socketDirs), dirs...)
}

// socketVars are the variables through which a user's programs find the
// Unix sockets of services that act for the user: an agent that reached
// one could act as the user outside the sandbox (sign with the user's SSH
// keys, start containers with the host's root, talk to the session bus).
// They are kept out of a step's environment, and what they point at is
// hidden.
var socketVars = []string{
	"SSH_AUTH_SOCK", "DOCKER_HOST", "DBUS_SESSION_BUS_ADDRESS", "DBUS_SYSTEM_BUS_ADDRESS",
	"XDG_RUNTIME_DIR", "WAYLAND_DISPLAY", "DISPLAY", "GPG_AGENT_INFO", "PULSE_SERVER",
	"CONTAINER_HOST", "PODMAN_HOST", "KRB5CCNAME",
}

// SocketVar reports whether the variable name points programs at a Unix
// socket of the user's (see socketVars).
func SocketVar(name string) bool {
	for _, v := range socketVars {
		if name == v {
			return true
		}
	}
	return false
}

// gpgAgentSockets are the sockets of GnuPG's agent, which holds the
// user's private keys: where the system has no runtime dir for them
// (/run/user/UID/gnupg, hidden with it) they are in GnuPG's home. Those
// of keyboxd and dirmngr, which serve public keys, stay reachable.
var gpgAgentSockets = []string{"S.gpg-agent", "S.gpg-agent.extra", "S.gpg-agent.browser", "S.gpg-agent.ssh", "S.scdaemon"}

// UserSockets reads from the user's environment (KEY=VALUE) where the
// user's sockets are, for a Policy: dirs to hide besides the system's
// socket directories (the runtime dir and the temporary dir), and single
// sockets to cover wherever they are (the SSH agent, a Docker or Podman
// host, the D-Bus buses, the container engines the Docker CLI knows (see
// dockerSockets), GnuPG's agent in GnuPG's home or where GPG_AGENT_INFO
// says, tmux's servers, git credential-cache's daemon, and those in ~/.ssh
// as the step starts: see sshSockets).
func UserSockets(environ []string) (dirs, sockets []string) {
	get := func(k string) string {
		for i := len(environ) - 1; i >= 0; i-- {
			if key, v, ok := strings.Cut(environ[i], "="); ok && key == k {
				return v
			}
		}
		return ""
	}
	for _, k := range []string{"XDG_RUNTIME_DIR", "TMPDIR"} {
		if d := get(k); filepath.IsAbs(d) {
			dirs = append(dirs, filepath.Clean(d))
		}
	}
	if s := get("SSH_AUTH_SOCK"); filepath.IsAbs(s) {
		sockets = append(sockets, s)
	}
	for _, k := range []string{"DOCKER_HOST", "CONTAINER_HOST", "PODMAN_HOST"} {
		if s, ok := strings.CutPrefix(get(k), "unix://"); ok && filepath.IsAbs(s) {
			sockets = append(sockets, s)
		}
	}
	for _, k := range []string{"DBUS_SESSION_BUS_ADDRESS", "DBUS_SYSTEM_BUS_ADDRESS"} {
		for _, part := range strings.Split(get(k), ";") {
			for _, kv := range strings.Split(strings.TrimPrefix(part, "unix:"), ",") {
				if s, ok := strings.CutPrefix(kv, "path="); ok && filepath.IsAbs(s) {
					sockets = append(sockets, s)
				}
			}
		}
	}
	gnupg := get("GNUPGHOME")
	docker := get("DOCKER_CONFIG")
	sockets = append(sockets, credentialCacheSockets(get("XDG_CACHE_HOME"), get("HOME"))...)
	if h := get("HOME"); filepath.IsAbs(h) {
		sockets = append(sockets, filepath.Join(h, ".docker", "run", "docker.sock"))
		sockets = append(sockets, sshSockets(filepath.Join(h, ".ssh"))...)
		sockets = append(sockets, sshConfigSockets(filepath.Join(h, ".ssh", "config"), h)...)
		if docker == "" {
			docker = filepath.Join(h, ".docker")
		}
		if gnupg == "" {
			gnupg = filepath.Join(h, ".gnupg")
		}
	}
	if filepath.IsAbs(gnupg) {
		for _, name := range gpgAgentSockets {
			sockets = append(sockets, filepath.Join(gnupg, name))
		}
	}
	if filepath.IsAbs(docker) {
		sockets = append(sockets, dockerSockets(docker)...)
	}
	// tmux's server, through which whoever connects types into the
	// user's panes (tmux send-keys): TMUX names the one codemachine runs
	// under ("SOCKET,PID,SESSION"), and TMUX_TMPDIR moves every server's
	// out of /tmp (into TMUX_TMPDIR/tmux-UID).
	if s, _, _ := strings.Cut(get("TMUX"), ","); filepath.IsAbs(s) {
		sockets = append(sockets, s)
	}
	if d := get("TMUX_TMPDIR"); filepath.IsAbs(d) {
		sockets = append(sockets, sshSockets(d)...)
	}
	// GnuPG before 2.1: "PATH:PID:PROTOCOL".
	if s, _, _ := strings.Cut(get("GPG_AGENT_INFO"), ":"); filepath.IsAbs(s) {
		sockets = append(sockets, s)
	}
	return dirs, sockets
}

// credentialCacheSockets are the sockets of git credential-cache's
// daemon, which hands the passwords and tokens it holds (for github.com,
// say) to whoever asks on its socket: in ~/.git-credential-cache where
// that directory exists, else in $XDG_CACHE_HOME/git/credential, by
// default ~/.cache/git/credential (see git-credential-cache(1)).
func credentialCacheSockets(xdgCache, home string) []string {
	var out []string
	if filepath.IsAbs(xdgCache) {
		out = append(out, filepath.Join(xdgCache, "git", "credential", "socket"))
	}
	if filepath.IsAbs(home) {
		out = append(out, filepath.Join(home, ".git-credential-cache", "socket"),
			filepath.Join(home, ".cache", "git", "credential", "socket"))
	}
	return out
}

// sshConfigSockets lists the Unix sockets that ssh's configuration file
// (~/.ssh/config) points ssh at outside ~/.ssh: an IdentityAgent
// (1Password's ~/.1password/agent.sock, Bitwarden's, a gpg-agent's),
// which signs with the user's keys, and the ControlPath sockets of shared
// connections (through which ssh -S runs commands on their hosts), those
// in the directory of a ControlPath with % tokens. home expands a leading
// ~. Values naming variables are left out (SSH_AUTH_SOCK is covered
// where it points).
func sshConfigSockets(config, home string) []string {
	data, err := os.ReadFile(config)
	if err != nil {
		return nil
	}
	var out []string
	for _, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(strings.ReplaceAll(line, "\t", " "))
		key, value, ok := strings.Cut(line, " ")
		if !ok {
			key, value, ok = strings.Cut(line, "=")
		}
		key = strings.ToLower(strings.TrimSpace(key))
		if !ok || (key != "identityagent" && key != "controlpath") {
			continue
		}
		value = strings.Trim(strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(value), "=")), `"`)
		if rest, ok := strings.CutPrefix(value, "~/"); ok {
			value = filepath.Join(home, rest)
		}
		if !filepath.IsAbs(value) || strings.Contains(value, "$") {
			continue
		}
		if !strings.Contains(value, "%") {
			out = append(out, filepath.Clean(value))
			continue
		}
		if dir := filepath.Dir(value); !strings.Contains(dir, "%") {
			out = append(out, sshSockets(dir)...)
		}
	}
	return out
}

// dockerSockets lists the Unix sockets of container engines that the
// Docker CLI's configuration dir (~/.docker) knows: those in it and in
// its directories (Docker Desktop for Linux listens in
// ~/.docker/desktop), and those its contexts name as their endpoints
// (Colima, Rancher Desktop, Lima and Podman machines listen in the
// user's home). Through one, a step could start a privileged container
// and act as root on the host. DOCKER_HOST alone is not enough: the
// Docker CLI finds the engine through its current context.
func dockerSockets(dir string) []string {
	out := sshSockets(dir)
	metas, _ := filepath.Glob(filepath.Join(dir, "contexts", "meta", "*", "meta.json"))
	for _, m := range metas {
		data, err := os.ReadFile(m)
		if err != nil {
			continue
		}
		var meta struct {
			Endpoints map[string]struct{ Host string }
		}
		if json.Unmarshal(data, &meta) != nil {
			continue
		}
		for _, e := range meta.Endpoints {
			if s, ok := strings.CutPrefix(e.Host, "unix://"); ok && filepath.IsAbs(s) {
				out = append(out, s)
			}
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// sshSockets lists the Unix sockets in dir (~/.ssh) and in its
// directories, one level down: where ssh's ControlPath usually keeps the
// sockets of the connections it shares (ControlMaster). Through one, a
// step could run commands on the remote host as the user (ssh -S SOCKET
// HOST CMD), with no key or password. A connection opened once the step
// started is not seen.
func sshSockets(dir string) []string {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range entries {
		p := filepath.Join(dir, e.Name())
		switch {
		case e.Type()&fs.ModeSocket != 0:
			out = append(out, p)
		case e.IsDir():
			sub, _ := os.ReadDir(p)
			for _, s := range sub {
				if s.Type()&fs.ModeSocket != 0 {
					out = append(out, filepath.Join(p, s.Name()))
				}
			}
		}
	}
	return out
}
