package orchestrator

import (
	"crypto/sha256"
	"sync"

	"github.com/codemachine/codemachine/gitstate"
	"github.com/codemachine/codemachine/workflow"
)

// contentCacheSize bounds the parsed files kept per kind: the scheduler
// needs the tip's and the ones its running units started from; a few more
// spare it re-parsing when the user commits meanwhile.
const contentCacheSize = 8

// contentCache remembers what files parse to, by the SHA-256 of their name
// and bytes. state.yaml gains a record per task and plan.md a line, and
// each landing reads both back from the tip it has just written: with what
// it wrote remembered, a plan of 500 tasks does not parse 500 records and
// 500 tasks on every landing. Cached values are shared and must not be
// modified (applyRecord copies a state; Plan.SetDone copies the text).
type contentCache[T any] struct {
	mu    sync.Mutex
	m     map[[32]byte]T
	order [][32]byte
}

func contentKey(name string, data []byte) [32]byte {
	h := sha256.New()
	h.Write([]byte(name))
	h.Write([]byte{0})
	h.Write(data)
	var key [32]byte
	h.Sum(key[:0])
	return key
}

func (c *contentCache[T]) get(name string, data []byte) (T, bool) {
	key := contentKey(name, data)
	c.mu.Lock()
	defer c.mu.Unlock()
	v, ok := c.m[key]
	return v, ok
}

// put remembers that the file name with content data parses to v.
func (c *contentCache[T]) put(name string, data []byte, v T) {
	key := contentKey(name, data)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[[32]byte]T{}
	}
	if _, ok := c.m[key]; ok {
		return
	}
	if len(c.order) == contentCacheSize {
		delete(c.m, c.order[0])
		c.order = c.order[1:]
	}
	c.m[key] = v
	c.order = append(c.order, key)
}

// marshalState writes s as state.yaml, remembering the result so that
// reading it back from the commit that lands it costs no parse.
func (o *Orchestrator) marshalState(s *gitstate.State) []byte {
	data := s.Marshal()
	o.states.put(workflow.StateFile, data, s)
	return data
}

// rememberPlans keeps the plans of a loaded snapshot, which are what the
// units started from it tick and what a landing on its commit rebases onto.
func (o *Orchestrator) rememberPlans(p *workflow.Project) {
	for file, plan := range p.Plans {
		o.plans.put(file, plan.Data, plan)
	}
}

// tick checks the task's box in a plan, changing that one byte; ok is false
// when the task is gone or already checked (the agent ticked it). It is
// tickTask with the parsed plan taken from o.plans when known.
func (o *Orchestrator) tick(file string, data []byte, id string) ([]byte, bool) {
	plan, ok := o.plans.get(file, data)
	if !ok {
		var err error
		if plan, err = workflow.ParsePlan(file, data); err != nil {
			return nil, false
		}
		o.plans.put(file, data, plan)
	}
	return tickPlan(plan, id)
}
