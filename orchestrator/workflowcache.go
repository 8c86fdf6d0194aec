package orchestrator

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/codemachine/codemachine/agents"
	"github.com/codemachine/codemachine/internal/bincode"
	"github.com/codemachine/codemachine/internal/fastread"
)

// The workflow's definition (workflow.yaml with what uses: imports, and the
// agents: workflow.Project less its plans, fan-outs and graph) is kept
// between loads, in memory and in .git/codemachine/cache/workflow.gob,
// with the id of every path of the commit's tree it was read from
// (absent ones too) and the identity of the binary that wrote it. A load
// at a commit where each of those paths has the same id decodes it instead
// of parsing the YAML and decoding it into the model, which was most of the
// cost of loading a workflow and about a fifth of a status's CPU time. The
// git sources of uses: are keyed by their commit: the importer reads them
// at their pins, and a source that imports at another commit than the
// one kept makes the load parse (see workflow.LoadOptions.Definition).
//
// Anything that does not match (another binary, a format it cannot
// decode, a truncated or corrupt file, a changed path) is ignored and the
// workflow parsed; a workflow or agent with problems is not kept, so its
// problems are reported by the parse as ever.

// workflowCacheFormat changes whenever what the file holds does; the
// binary's identity (cacheBinaryID) covers every other change of code.
const workflowCacheFormat = "codemachine workflow cache 3"

// workflowCache is the definition kept last.
type workflowCache struct {
	mu    sync.Mutex
	entry *workflowCacheEntry
}

// workflowCacheEntry is the content of workflow.gob, after the SHA-256 of
// its encoding (package bincode: Key, Paths, IDs, Definition; a file
// changed by anything but a whole write of codemachine's, even where it
// would still decode, is ignored). The name is older than the encoding.
type workflowCacheEntry struct {
	// Key is the format and the binary that wrote it (cacheKey).
	Key string
	// Paths and IDs are the paths the definition was read from and
	// their EntryID ("-" for a path that was absent).
	Paths, IDs []string
	Definition []byte
}

// entryIDer is a file system that identifies its entries without reading
// them: a commit's tree (gitstate.TreeFS).
type entryIDer interface {
	EntryID(name string) (string, error)
}

var (
	cacheKeyOnce sync.Once
	cacheKeyVal  string
)

// cacheKey identifies the cache format, the binary (its path, size and
// modification time: a rebuilt or upgraded binary is another one) and the
// engine names a workflow is checked against. "" when the binary cannot
// be identified: nothing is kept then.
func cacheKey() string {
	cacheKeyOnce.Do(func() {
		exe, err := os.Executable()
		if err != nil {
			return
		}
		fi, err := os.Stat(exe)
		if err != nil {
			return
		}
		cacheKeyVal = fmt.Sprintf("%s\n%s %d %d\n%s", workflowCacheFormat, exe, fi.Size(),
			fi.ModTime().UnixNano(), strings.Join(agents.WorkflowEngines(), ","))
	})
	return cacheKeyVal
}

// workflowCacheFile is the disk copy.
func (o *Orchestrator) workflowCacheFile() string {
	return filepath.Join(o.repo.CommonDir(), "codemachine", "cache", "workflow.gob")
}

// entryID is the id of name in fsys, "-" when it is absent; ok is false
// when it cannot be known.
func entryID(fsys entryIDer, name string) (string, bool) {
	id, err := fsys.EntryID(name)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "-", true
	case err != nil:
		return "", false
	}
	return id, true
}

// cachedDefinition returns the definition kept for fsys when every path it
// was read from is unchanged there, nil otherwise.
func (o *Orchestrator) cachedDefinition(fsys fs.FS) []byte {
	ids, ok := fsys.(entryIDer)
	key := cacheKey()
	if !ok || key == "" {
		return nil
	}
	o.workflowCache.mu.Lock()
	defer o.workflowCache.mu.Unlock()
	e := o.workflowCache.entry
	if e == nil {
		e = readWorkflowCache(o.workflowCacheFile(), key)
		if e == nil {
			return nil
		}
		o.workflowCache.entry = e
	}
	for i, p := range e.Paths {
		if id, ok := entryID(ids, p); !ok || id != e.IDs[i] {
			return nil
		}
	}
	return e.Definition
}

// readWorkflowCache reads workflow.gob; nil when it is missing, does not
// decode, or was written by another binary.
func readWorkflowCache(file, key string) *workflowCacheEntry {
	raw, err := fastread.ReadFile(file)
	if err != nil {
		return nil
	}
	e := decodeWorkflowCache(raw)
	if e == nil || e.Key != key {
		return nil
	}
	return e
}

// decodeWorkflowCache decodes what encode wrote; nil when raw is anything
// else (its checksum or its encoding does not match).
func decodeWorkflowCache(raw []byte) *workflowCacheEntry {
	if len(raw) < sha256.Size {
		return nil
	}
	sum, body := raw[:sha256.Size], raw[sha256.Size:]
	if got := sha256.Sum256(body); !bytes.Equal(sum, got[:]) {
		return nil
	}
	d := &bincode.Decoder{B: body}
	e := &workflowCacheEntry{Key: d.String(), Paths: d.Strings(), IDs: d.Strings(), Definition: d.Bytes()}
	if !d.Done() || len(e.Paths) != len(e.IDs) || len(e.Definition) == 0 {
		return nil
	}
	return e
}

// encode is the content of workflow.gob for e: the SHA-256 of its
// encoding, then the encoding.
func (e *workflowCacheEntry) encode() []byte {
	enc := &bincode.Encoder{B: make([]byte, sha256.Size, sha256.Size+len(e.Definition)+512)}
	enc.String(e.Key)
	enc.Strings(e.Paths)
	enc.Strings(e.IDs)
	enc.Bytes(e.Definition)
	sum := sha256.Sum256(enc.B[sha256.Size:])
	copy(enc.B, sum[:])
	return enc.B
}

// keepDefinition is workflow.LoadOptions.Parsed for a load from fsys: it
// keeps the definition with the ids the paths read have in fsys, in memory
// and on disk (best effort: a failure only costs the next load a parse).
func (o *Orchestrator) keepDefinition(fsys fs.FS) func([]byte, []string) {
	ids, ok := fsys.(entryIDer)
	key := cacheKey()
	if !ok || key == "" {
		return nil
	}
	return func(def []byte, read []string) {
		e := &workflowCacheEntry{Key: key, Paths: read, IDs: make([]string, len(read)), Definition: def}
		for i, p := range read {
			id, known := entryID(ids, p)
			if !known {
				return
			}
			e.IDs[i] = id
		}
		o.workflowCache.mu.Lock()
		defer o.workflowCache.mu.Unlock()
		o.workflowCache.entry = e
		writeCacheFile(o, o.workflowCacheFile(), "workflow-*.tmp", e.encode())
	}
}

// writeCacheFile replaces file by data atomically (a temporary file
// renamed over it: a concurrent reader sees the old content or the new,
// and of concurrent writers the last rename wins whole), best effort.
func writeCacheFile(o *Orchestrator, file, pattern string, data []byte) {
	if !localDirExists(o.repo) || os.MkdirAll(filepath.Dir(file), 0o755) != nil {
		return
	}
	tmp, err := os.CreateTemp(filepath.Dir(file), pattern)
	if err != nil {
		return
	}
	_, werr := tmp.Write(data)
	if cerr := tmp.Close(); werr != nil || cerr != nil || os.Rename(tmp.Name(), file) != nil {
		_ = os.Remove(tmp.Name())
	}
}
