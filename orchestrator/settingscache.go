package orchestrator

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"

	"github.com/codemachine/codemachine/workflow"
)

// Status keeps the steps' settings (engine, model, effort, replay and the
// fingerprint before when:) between processes, in memory and in
// .git/codemachine/cache/settings.json, by settingsKey: resolving every
// step's inputs through the commit's trees and hashing each step's
// definition was about a fifth of a status's own CPU time on a 100-step
// workflow, and a status asked again at the same tip finds the same
// answers. Runs neither read nor write it: their tip moves with every step,
// and a file written per step would cost each step an inode.
//
// Everything a step's settings depend on is in the key: the commit's root
// tree (the workflow, the agents, the inputs and the pins of uses:), the
// commits of the git sources the definition was read at (a source without
// a pin follows its ref), the overrides and their environment variables,
// and the binary (cacheKey: the fingerprint's code and the engines). A
// file with another key, or that does not decode, or that lacks a step, is
// ignored and the settings worked out.

// settingsCacheFormat changes whenever what the file holds does.
const settingsCacheFormat = "codemachine settings cache 1"

// settingsCache is the entry kept last.
type settingsCache struct {
	mu    sync.Mutex
	entry *settingsCacheEntry
}

// settingsCacheEntry is the content of settings.json.
type settingsCacheEntry struct {
	Key   string              `json:"key"`
	Steps []settingsCacheStep `json:"steps"`
}

// settingsCacheStep is one step's stepSettings.
type settingsCacheStep struct {
	ID          string `json:"id"`
	Engine      string `json:"engine,omitempty"`
	Model       string `json:"model,omitempty"`
	Effort      string `json:"effort,omitempty"`
	Replay      bool   `json:"replay,omitempty"`
	Fingerprint string `json:"fingerprint"`
}

// settingsCacheFile is the disk copy.
func (o *Orchestrator) settingsCacheFile() string {
	return filepath.Join(o.repo.LocalDir(), "cache", "settings.json")
}

// settingsKey identifies what the settings of snap's steps depend on; ""
// when it cannot be known (then nothing is kept).
func (o *Orchestrator) settingsKey(snap *snapshot, ov Overrides) string {
	th, ok := snap.fsys.(workflow.TreeHasher)
	bin := cacheKey()
	if !ok || bin == "" {
		return ""
	}
	root, err := th.TreeHash(".")
	if err != nil {
		return ""
	}
	var sources []string
	for _, s := range snap.project.Workflow.Steps {
		if s.Source != nil && s.Source.Commit != "" {
			sources = append(sources, s.Source.Label+"\x00"+s.Source.Commit)
		}
	}
	slices.Sort(sources)
	sources = slices.Compact(sources)
	h := sha256.New()
	for _, part := range append([]string{settingsCacheFormat, bin, root, ov.Engine, ov.Model,
		o.getenv("CODEMACHINE_ENGINE"), o.getenv("CODEMACHINE_MODEL")}, sources...) {
		// Length-prefixed: no two different lists hash alike.
		fmt.Fprintf(h, "%d:%s\n", len(part), part)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// cachedSettings returns the settings kept under key by step id; nil when
// none are.
func (o *Orchestrator) cachedSettings(key string) map[string]*stepSettings {
	if key == "" {
		return nil
	}
	o.settingsCache.mu.Lock()
	defer o.settingsCache.mu.Unlock()
	e := o.settingsCache.entry
	if e == nil || e.Key != key {
		e = readSettingsCache(o.settingsCacheFile(), key)
		if e == nil {
			return nil
		}
		o.settingsCache.entry = e
	}
	out := make(map[string]*stepSettings, len(e.Steps))
	for _, s := range e.Steps {
		out[s.ID] = &stepSettings{engine: s.Engine, model: s.Model, effort: s.Effort, replay: s.Replay,
			fingerprint: s.Fingerprint}
	}
	return out
}

// readSettingsCache reads settings.json; nil when it is missing, does not
// decode or holds another key.
func readSettingsCache(file, key string) *settingsCacheEntry {
	raw, err := os.ReadFile(file)
	if err != nil {
		return nil
	}
	var e settingsCacheEntry
	if json.Unmarshal(raw, &e) != nil || e.Key != key {
		return nil
	}
	for _, s := range e.Steps {
		if s.ID == "" || s.Fingerprint == "" {
			return nil
		}
	}
	return &e
}

// keepSettings keeps the settings of every step under key, in memory and
// on disk (best effort: a failure only costs the next status the work).
func (o *Orchestrator) keepSettings(key string, steps []*workflow.Step, settings map[string]*stepSettings) {
	if key == "" {
		return
	}
	e := &settingsCacheEntry{Key: key, Steps: make([]settingsCacheStep, 0, len(steps))}
	for _, step := range steps {
		st := settings[step.ID]
		e.Steps = append(e.Steps, settingsCacheStep{ID: step.ID, Engine: st.engine, Model: st.model,
			Effort: st.effort, Replay: st.replay, Fingerprint: st.fingerprint})
	}
	var buf bytes.Buffer
	if json.NewEncoder(&buf).Encode(e) != nil {
		return
	}
	o.settingsCache.mu.Lock()
	defer o.settingsCache.mu.Unlock()
	o.settingsCache.entry = e
	writeCacheFile(o, o.settingsCacheFile(), "settings-*.tmp", buf.Bytes())
}
