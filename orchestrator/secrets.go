package orchestrator

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/codemachine/codemachine/internal/lazyre"

	"github.com/bmatcuk/doublestar/v4"

	"github.com/codemachine/codemachine/gitstate"
)

// secretNames are base-name globs of files that hold secrets.
var secretNames = []string{
	".env", ".env.*", "*.pem", "*.key", "*.p12", "*.pfx", "*.jks", "*.keystore",
	"id_rsa", "id_dsa", "id_ecdsa", "id_ed25519", ".netrc", ".pgpass", ".npmrc", ".pypirc",
	"credentials.json", "service-account*.json", "*.tfstate",
}

// secretNameExceptions are templates that look like secrets but are meant to
// be committed.
var secretNameExceptions = []string{".env.example", ".env.sample", ".env.template", "*.pub"}

// secretContent matches private keys and common token formats inside files.
var secretContent = lazyre.New(`-----BEGIN [A-Z ]*PRIVATE KEY-----|\bAKIA[0-9A-Z]{16}\b|\bgh[pousr]_[A-Za-z0-9]{36,}\b|\bsk-ant-[A-Za-z0-9_-]{20,}|\bxox[baprs]-[A-Za-z0-9-]{10,}|\bsk-[A-Za-z0-9]{32,}\b`)

// maxSecretScan bounds how much of a changed file is scanned for secrets.
const maxSecretScan = 256 << 10

// findSecrets refuses a change that adds or edits a file that looks like a
// secret, unless the workflow's allow_secrets lists the path. It returns ""
// when the change is clean.
func findSecrets(allow []string, dir string, changes []gitstate.Change) string {
	for _, c := range changes {
		if c.Status == 'D' || c.NewMode == "120000" || c.NewMode == "160000" || allowed(allow, c.Path) {
			continue
		}
		base := path.Base(c.Path)
		if matchAny(secretNames, base) && !matchAny(secretNameExceptions, base) {
			return fmt.Sprintf("refusing to commit %s: it looks like a secret (list it under allow_secrets in workflow.yaml if it is not)", c.Path)
		}
		data, err := readHead(filepath.Join(dir, filepath.FromSlash(c.Path)), maxSecretScan)
		if err != nil || bytes.IndexByte(data, 0) >= 0 {
			continue
		}
		if loc := secretContent().FindIndex(data); loc != nil {
			line := 1 + bytes.Count(data[:loc[0]], []byte("\n"))
			return fmt.Sprintf("refusing to commit %s:%d: it contains what looks like a private key or token (list it under allow_secrets in workflow.yaml if it is not)", c.Path, line)
		}
	}
	return ""
}

func allowed(globs []string, p string) bool {
	for _, g := range globs {
		if ok, _ := doublestar.Match(g, p); ok {
			return true
		}
	}
	return false
}

func matchAny(globs []string, name string) bool {
	for _, g := range globs {
		if ok, _ := path.Match(g, strings.ToLower(name)); ok {
			return true
		}
	}
	return false
}

// readHead reads at most n bytes of a file.
func readHead(name string, n int64) ([]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, n))
}
