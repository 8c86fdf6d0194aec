package orchestrator

import (
	"io/fs"
	"os"
	"path/filepath"
	"sync"

	"github.com/codemachine/codemachine/gitstate"
	"github.com/codemachine/codemachine/internal/fastread"
	"github.com/codemachine/codemachine/workflow"
)

// stateCacheMin is the size from which a parsed state.yaml is kept by its
// blob id, in memory and on disk: a fan-out over thousands of files
// records a task each, and reading and parsing that YAML is most of what a
// status or a run's first load would cost; known by its blob id (which the
// commit's tree gives without reading the file) it is decoded from a gob
// instead (statecodec.go), or taken from memory. Already at 100 records
// (24 KiB of YAML) the parse costs several milliseconds of a status, a gob's
// decoding a twentieth of that and statecodec.go's less again; below about
// 20 records there is little to gain.
const stateCacheMin = 4 << 10

// stateCache holds the parsed state.yaml last cached, by blob id.
type stateCache struct {
	mu    sync.Mutex
	id    string
	state *gitstate.State
}

// stateCacheFile is the disk copy: .git/codemachine/cache/state.bin, the
// blob id's 40 hex digits and the parsed state as encodeState writes it.
// (Binaries before that encoding kept a gob in state.gob.)
func (o *Orchestrator) stateCacheFile() string {
	return filepath.Join(o.repo.CommonDir(), "codemachine", "cache", "state.bin") // LocalDir would create it
}

// stateBlobID is the blob id of state.yaml at commit, "" when it cannot be
// known without reading (then the cache is not used). fsys, when not nil,
// is commit's TreeFS.
func (o *Orchestrator) stateBlobID(commit string, fsys fs.FS) string {
	if fsys == nil {
		var err error
		if fsys, err = o.repo.TreeFS(commit); err != nil {
			return ""
		}
	}
	h, ok := fsys.(workflow.BlobHasher)
	if !ok {
		return ""
	}
	id, err := h.BlobHash(workflow.StateFile)
	if err != nil {
		return ""
	}
	return id
}

// cachedState returns the parsed state of blob id when it is cached (nil
// otherwise: not cached, another content, unreadable).
func (o *Orchestrator) cachedState(id string) *gitstate.State {
	if id == "" {
		return nil
	}
	o.stateCache.mu.Lock()
	defer o.stateCache.mu.Unlock()
	if o.stateCache.id == id {
		return o.stateCache.state
	}
	raw, err := fastread.ReadFile(o.stateCacheFile())
	if err != nil || len(raw) < len(id) || string(raw[:len(id)]) != id {
		return nil
	}
	st, ok := decodeState(raw[len(id):])
	if !ok {
		return nil
	}
	if st.Steps == nil {
		st.Steps = map[string]*gitstate.StepRecord{}
	}
	o.stateCache.id, o.stateCache.state = id, st
	return st
}

// cacheState keeps a large parsed state by its blob id, in memory and on
// disk (best effort: a failure only costs the next process a parse).
func (o *Orchestrator) cacheState(id string, data []byte, st *gitstate.State) {
	if id == "" || len(data) < stateCacheMin {
		return
	}
	o.stateCache.mu.Lock()
	defer o.stateCache.mu.Unlock()
	if o.stateCache.id == id {
		return
	}
	o.stateCache.id, o.stateCache.state = id, st
	enc, ok := encodeState(st)
	if !ok {
		return
	}
	p := o.stateCacheFile()
	if !localDirExists(o.repo) || os.MkdirAll(filepath.Dir(p), 0o755) != nil {
		return
	}
	tmp, err := os.CreateTemp(filepath.Dir(p), "state-*.tmp")
	if err != nil {
		return
	}
	_, werr := tmp.Write(append([]byte(id), enc...))
	if cerr := tmp.Close(); werr != nil || cerr != nil || os.Rename(tmp.Name(), p) != nil {
		_ = os.Remove(tmp.Name())
	}
}
