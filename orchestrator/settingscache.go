package orchestrator

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/codemachine/codemachine/internal/fastread"
	"github.com/codemachine/codemachine/workflow"
)

// Status keeps the steps' settings (engine, model, effort, replay and the
// fingerprint before when:) between processes, in memory and in
// .git/codemachine/cache/settings.txt, by settingsKey: resolving every
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

// settingsCacheEntry is what settings.txt holds.
type settingsCacheEntry struct {
	Key   string
	Steps []settingsCacheStep
}

// settingsCacheStep is one step's stepSettings.
type settingsCacheStep struct {
	ID, Engine, Model, Effort string
	Replay                    bool
	Fingerprint               string
}

// The file is lines: the key, then a line per step of its fields
// separated by tabs (ID, Engine, Model, Effort, Replay as 0 or 1,
// Fingerprint). A fresh process decodes that in a few microseconds where
// encoding/json took a tenth of a millisecond. Settings with a tab or a
// line break in a field are not kept.

// encode is e as the file holds it; ok is false when a field cannot be
// written so.
func (e *settingsCacheEntry) encode() (data []byte, ok bool) {
	var b strings.Builder
	b.WriteString(e.Key)
	b.WriteByte('\n')
	for _, s := range e.Steps {
		replay := "0"
		if s.Replay {
			replay = "1"
		}
		for i, f := range []string{s.ID, s.Engine, s.Model, s.Effort, replay, s.Fingerprint} {
			if strings.ContainsAny(f, "\t\n") {
				return nil, false
			}
			if i > 0 {
				b.WriteByte('\t')
			}
			b.WriteString(f)
		}
		b.WriteByte('\n')
	}
	return []byte(b.String()), true
}

// parseSettingsCache decodes the file's content when it holds key; nil
// when it holds another key or is not a whole file of the format.
func parseSettingsCache(data []byte, key string) *settingsCacheEntry {
	text := string(data)
	first, rest, ok := strings.Cut(text, "\n")
	if !ok || first != key || key == "" {
		return nil
	}
	e := &settingsCacheEntry{Key: key}
	for rest != "" {
		var line string
		if line, rest, ok = strings.Cut(rest, "\n"); !ok {
			return nil // cut short
		}
		f := strings.Split(line, "\t")
		if len(f) != 6 || f[0] == "" || f[5] == "" || (f[4] != "0" && f[4] != "1") {
			return nil
		}
		e.Steps = append(e.Steps, settingsCacheStep{ID: f[0], Engine: f[1], Model: f[2], Effort: f[3],
			Replay: f[4] == "1", Fingerprint: f[5]})
	}
	return e
}

// settingsCacheFile is the disk copy.
func (o *Orchestrator) settingsCacheFile() string {
	return filepath.Join(o.repo.CommonDir(), "codemachine", "cache", "settings.txt") // LocalDir would create it
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

// readSettingsCache reads the file; nil when it is missing, does not
// decode or holds another key.
func readSettingsCache(file, key string) *settingsCacheEntry {
	raw, err := fastread.ReadFile(file)
	if err != nil {
		return nil
	}
	return parseSettingsCache(raw, key)
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
	data, ok := e.encode()
	if !ok {
		return
	}
	o.settingsCache.mu.Lock()
	defer o.settingsCache.mu.Unlock()
	o.settingsCache.entry = e
	writeCacheFile(o, o.settingsCacheFile(), "settings-*.tmp", data)
}
