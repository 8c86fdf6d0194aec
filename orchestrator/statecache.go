package orchestrator

import (
	"crypto/sha256"
	"sync"

	"github.com/codemachine/codemachine/gitstate"
)

// stateCacheSize bounds the parsed states kept: the scheduler needs the
// tip's and the one before (units based on it), a few more spare it
// re-parsing when the user commits meanwhile.
const stateCacheSize = 8

// stateCache remembers parsed state.yaml contents by the SHA-256 of their
// bytes. state.yaml grows with every task of a plan, and each landing
// reads the tip's state twice (its rebase and the reload after it): with
// the state that the landing wrote remembered, a plan of 500 tasks does
// not parse 500 records on every landing. Cached states are shared and
// must not be modified (applyRecord copies).
type stateCache struct {
	mu    sync.Mutex
	m     map[[32]byte]*gitstate.State
	order [][32]byte
}

func (c *stateCache) get(data []byte) *gitstate.State {
	key := sha256.Sum256(data)
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.m[key]
}

// put remembers that data parses to s.
func (c *stateCache) put(data []byte, s *gitstate.State) {
	key := sha256.Sum256(data)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[[32]byte]*gitstate.State{}
	}
	if _, ok := c.m[key]; ok {
		return
	}
	if len(c.order) == stateCacheSize {
		delete(c.m, c.order[0])
		c.order = c.order[1:]
	}
	c.m[key] = s
	c.order = append(c.order, key)
}

// marshalState writes s as state.yaml, remembering the result so that
// reading it back from the commit that lands it costs no parse.
func (o *Orchestrator) marshalState(s *gitstate.State) []byte {
	data := s.Marshal()
	o.states.put(data, s)
	return data
}
