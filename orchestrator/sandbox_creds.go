package orchestrator

import (
	"fmt"
	"path/filepath"
)

// credentialStore is a file or directory where the user's tools keep
// credentials, keys or the commands that fetch them, and why a step may
// not write it.
type credentialStore struct {
	path, what string
}

// credentialStores are the user's credential stores, absolute and clean:
// each by its default place in the home and where the environment moves it
// (both count: a tool started without the variable uses the default). A
// step allowed to write one could let itself in as the user
// (~/.ssh/authorized_keys), swap a key or token for its own, or plant a
// command that the user's tools run outside the sandbox: gpg-agent.conf's
// pinentry-program, ~/.aws/config's credential_process, a gh alias, a
// kubeconfig's exec plugin, a Docker credential helper; reading them is
// beyond the sandbox (see docs/sandbox.md), writing them is not.
func (o *Orchestrator) credentialStores() []credentialStore {
	home := o.getenv("HOME")
	var out []credentialStore
	add := func(what string, paths ...string) {
		for _, p := range paths {
			if filepath.IsAbs(p) {
				out = append(out, credentialStore{path: filepath.Clean(p), what: what})
			}
		}
	}
	inHome := func(rel string) string {
		if !filepath.IsAbs(home) {
			return ""
		}
		return filepath.Join(home, rel)
	}
	// xdg is $VAR/rel, or ~/def/rel when VAR is unset or relative (as
	// the XDG base directory specification says).
	xdg := func(v, def, rel string) string {
		if d := o.getenv(v); filepath.IsAbs(d) {
			return filepath.Join(d, rel)
		}
		return filepath.Join(inHome(def), rel)
	}
	add("ssh's keys and configuration (authorized_keys lets a key in as you; config's ProxyCommand runs in git's fetches and pushes)",
		inHome(".ssh"))
	add("GnuPG's keys and configuration (gpg-agent.conf's pinentry-program runs as you; the trust database decides whose signatures verify)",
		inHome(".gnupg"), o.getenv("GNUPGHOME"))
	add("git's credential store", inHome(".git-credentials"), xdg("XDG_CONFIG_HOME", ".config", "git/credentials"))
	add("the netrc that git's and curl's HTTP logins read", inHome(".netrc"), inHome("_netrc"))
	add("the AWS credentials and configuration (credential_process runs a command)",
		inHome(".aws"), o.getenv("AWS_CONFIG_FILE"), o.getenv("AWS_SHARED_CREDENTIALS_FILE"))
	add("the GitHub CLI's token and configuration (an alias runs a command)",
		xdg("XDG_CONFIG_HOME", ".config", "gh"), inHome(".config/gh"), o.getenv("GH_CONFIG_DIR"))
	add("a keyring", xdg("XDG_DATA_HOME", ".local/share", "keyrings"), inHome(".local/share/keyrings"),
		xdg("XDG_DATA_HOME", ".local/share", "kwalletd"), inHome(".local/share/kwalletd"))
	add("pass's password store", inHome(".password-store"), o.getenv("PASSWORD_STORE_DIR"))
	add("Docker's credentials and configuration (a credential helper runs a command)", inHome(".docker"), o.getenv("DOCKER_CONFIG"))
	add("a kubeconfig (an exec plugin runs a command)", append([]string{inHome(".kube")}, filepath.SplitList(o.getenv("KUBECONFIG"))...)...)
	add("the Google Cloud SDK's credentials", xdg("XDG_CONFIG_HOME", ".config", "gcloud"), inHome(".config/gcloud"), o.getenv("CLOUDSDK_CONFIG"))
	add("the Azure CLI's credentials", inHome(".azure"), o.getenv("AZURE_CONFIG_DIR"))
	add("a package registry's token", inHome(".npmrc"), o.getenv("NPM_CONFIG_USERCONFIG"), inHome(".pypirc"),
		inHome(".cargo/credentials.toml"), inHome(".cargo/credentials"))
	return out
}

// checkCredentialStore refuses a writable path p, r with its links
// followed as far as it exists, that is, holds or lies inside one of the
// user's credential stores (credentialStores), with their links followed
// alike.
func (o *Orchestrator) checkCredentialStore(p, r string) error {
	is := "writable path " + p + " is"
	if r != filepath.Clean(p) {
		is += " " + r + ","
	}
	for _, c := range o.credentialStores() {
		rc := resolveExisting(c.path)
		switch {
		case pathWithin(rc, r):
			return fmt.Errorf("%s a directory that holds %s, %s: a step may not write it (allow a narrower path)", is, c.path, c.what)
		case pathWithin(r, rc):
			return fmt.Errorf("%s inside %s, %s: a step may not write it", is, c.path, c.what)
		}
	}
	return nil
}
