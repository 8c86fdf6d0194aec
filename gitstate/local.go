package gitstate

import (
	"bytes"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"

	"go.yaml.in/yaml/v3"
)

// localFile maps a name under LocalDir ("holds.yaml", "runs/x.yaml") to a
// path, refusing names that would leave it.
func (r *Repo) localFile(name string) (string, error) {
	if name == "" || path.IsAbs(name) || strings.Contains(name, "\\") || path.Clean(name) != name || name == ".." || strings.HasPrefix(name, "../") {
		return "", fmt.Errorf("local file %q: not a plain relative name", name)
	}
	return r.localPath(filepath.FromSlash(name))
}

// ReadLocal decodes the YAML file name under LocalDir into v. A missing file
// gives an error wrapping fs.ErrNotExist, which callers treat as empty.
func (r *Repo) ReadLocal(name string, v any) error {
	p, err := r.localFile(name)
	if err != nil {
		return err
	}
	data, err := os.ReadFile(p)
	if err != nil {
		return fmt.Errorf("read %s: %w", p, err)
	}
	if err := yaml.Unmarshal(data, v); err != nil {
		return fmt.Errorf("read %s: %w", p, err)
	}
	return nil
}

// WriteLocal encodes v as YAML into the file name under LocalDir,
// atomically: readers see the old content or the new, never a torn file;
// synced to disk before it replaces the old one (journals, holds) where
// git would sync a ref (syncLocal). A file that already holds that content
// is left as it is.
func (r *Repo) WriteLocal(name string, v any) error {
	mode := freshInode
	if r.syncLocal() {
		mode = synced
	}
	return r.writeLocalYAML(name, v, mode)
}

// WriteLocalVolatile is WriteLocal for a file that only says what is
// happening now (what the lock holder is running): atomic, not synced.
func (r *Repo) WriteLocalVolatile(name string, v any) error {
	return r.writeLocalYAML(name, v, volatile)
}

func (r *Repo) writeLocalYAML(name string, v any, mode writeMode) error {
	p, err := r.localFile(name)
	if err != nil {
		return err
	}
	data, err := yaml.Marshal(v)
	if err != nil {
		return fmt.Errorf("write %s: %w", p, err)
	}
	if old, err := os.ReadFile(p); err == nil && bytes.Equal(old, data) {
		return nil
	}
	return writeFileAtomic(p, data, mode)
}

// ReadLocalRaw is the content of the file name under LocalDir; a missing
// file gives an error wrapping fs.ErrNotExist.
func (r *Repo) ReadLocalRaw(name string) ([]byte, error) {
	p, err := r.localFile(name)
	if err != nil {
		return nil, err
	}
	data, err := os.ReadFile(p)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", p, err)
	}
	return data, nil
}

// WriteLocalRaw writes data into the file name under LocalDir, atomically
// but not synced: for caches, which are rebuilt when lost.
func (r *Repo) WriteLocalRaw(name string, data []byte) error {
	p, err := r.localFile(name)
	if err != nil {
		return err
	}
	return writeFileAtomic(p, data, volatile)
}

// LogDir is the directory for the event logs of one run,
// LocalDir/logs/<run>. It is not created.
func (r *Repo) LogDir(run string) string {
	return filepath.Join(r.commonDir, "codemachine", "logs", run)
}
