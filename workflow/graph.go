package workflow

import (
	"fmt"
	"slices"
	"strings"
)

// Graph is the step DAG: explicit edges from needs, implicit ones where a
// step reads (inputs, or its foreach plan) what another step writes
// (outputs). Build it with Workflow.Graph.
type Graph struct {
	steps []*Step          // file order
	index map[string]int   // id -> file order
	up    map[string][]dep // direct dependencies, in the order found
	down  map[string][]string
	order []*Step
	pos   map[string]int // id -> index in order
}

// dep is one dependency of a step, with where it was declared, so that a
// cycle is reported at the declaration that closes it.
type dep struct {
	id string
	at Pos
}

// Graph builds the step graph. A step never depends on itself through its
// own outputs. Cycles are reported as Errors at the declaration that closes
// them ("cycle: a -> b -> a", in the order the steps would run); the Graph
// is returned even then, with Order falling back to file order for the
// steps on a cycle.
func (w *Workflow) Graph() (*Graph, error) {
	g := w.graphSteps()
	seen := map[[2]string]bool{}
	add := func(s *Step, on string, at Pos) {
		key := [2]string{s.ID, on}
		if on == s.ID || seen[key] {
			return
		}
		if _, ok := g.index[on]; !ok {
			return // unknown step: reported by ParseWorkflow
		}
		seen[key] = true
		g.up[s.ID] = append(g.up[s.ID], dep{id: on, at: at})
		g.down[on] = append(g.down[on], s.ID)
	}
	outputs := make([][]globPat, len(g.steps))
	for i, s := range g.steps {
		for _, o := range s.Outputs {
			outputs[i] = append(outputs[i], compileGlob(o))
		}
	}
	for _, s := range g.steps {
		for i, n := range s.Needs {
			add(s, n, posAt(s.at.needs, i, s.Pos))
		}
		for _, c := range []struct {
			cond *Condition
			at   Pos
		}{{s.When, s.at.when.Pos}, {s.Until, s.at.until.Pos}} {
			if c.cond != nil {
				for _, id := range c.cond.Steps {
					add(s, id, cmpOr(c.at, s.Pos))
				}
			}
		}
		reads, readAt := stepReads(s)
		for j, producer := range g.steps {
			if producer == s {
				continue
			}
		next:
			for k, r := range reads {
				for _, o := range outputs[j] {
					if r.overlaps(o) {
						add(s, producer.ID, readAt[k])
						break next
					}
				}
			}
		}
	}
	return g, g.finish()
}

// graphSteps is the graph of w's steps, without edges yet.
func (w *Workflow) graphSteps() *Graph {
	g := &Graph{
		index: make(map[string]int, len(w.Steps)),
		up:    make(map[string][]dep, len(w.Steps)),
		down:  make(map[string][]string, len(w.Steps)),
	}
	for _, s := range w.Steps {
		if _, dup := g.index[s.ID]; s.ID == "" || dup {
			continue // reported by ParseWorkflow
		}
		g.index[s.ID] = len(g.steps)
		g.steps = append(g.steps, s)
	}
	return g
}

// graphFrom is the graph of w with the edges up, as an earlier Graph of
// the same workflow found them (Graph.edges), without working them out
// again (comparing every step's reads with every other's outputs is most
// of the cost of a graph); its cycles are found again.
func (w *Workflow) graphFrom(up map[string][]dep) (*Graph, error) {
	g := w.graphSteps()
	for _, s := range g.steps {
		for _, d := range up[s.ID] {
			g.up[s.ID] = append(g.up[s.ID], d)
			g.down[d.id] = append(g.down[d.id], s.ID)
		}
	}
	return g, g.finish()
}

// edges are the graph's edges, for graphFrom.
func (g *Graph) edges() map[string][]dep { return g.up }

// finish orders the graph once its edges are known, and returns its
// cycles.
func (g *Graph) finish() error {
	for id := range g.down {
		slices.SortFunc(g.down[id], func(a, b string) int { return g.index[a] - g.index[b] })
	}
	errs := g.cycles()
	g.order = g.topo()
	g.pos = make(map[string]int, len(g.order))
	for i, s := range g.order {
		g.pos[s.ID] = i
	}
	return errs.Err()
}

func posAt(ps []Pos, i int, fallback Pos) Pos {
	if i < len(ps) {
		return ps[i]
	}
	return fallback
}

func cmpOr(p, fallback Pos) Pos {
	if p == (Pos{}) {
		return fallback
	}
	return p
}

// maxCycleShown is how many names of a cycle cyclePath shows at each end.
const maxCycleShown = 5

// cyclePath words a cycle (its names in order, the first again at the
// end) as "a -> b -> a"; a long one shows its ends and how many it has
// ("T0 -> T1 -> ... -> T99999 -> T0 (100000 tasks)"), so that its error
// stays a line one can read.
func cyclePath(names []string, what string) string {
	if len(names) <= 2*maxCycleShown+1 {
		return strings.Join(names, " -> ")
	}
	return fmt.Sprintf("%s -> ... -> %s (%d %s)", strings.Join(names[:maxCycleShown], " -> "),
		strings.Join(names[len(names)-maxCycleShown:], " -> "), len(names)-1, what)
}

// cycles finds the dependency cycles by a depth-first search in file order.
func (g *Graph) cycles() Errors {
	const (
		unseen = iota
		onStack
		done
	)
	var errs Errors
	state := make(map[string]int, len(g.steps))
	var stack []string
	var visit func(id string)
	visit = func(id string) {
		state[id] = onStack
		stack = append(stack, id)
		for _, d := range g.up[id] {
			switch state[d.id] {
			case unseen:
				visit(d.id)
			case onStack:
				// Each step on stack[i:] depends on the next, and id
				// on d.id: print them in the order they would run.
				i := slices.Index(stack, d.id)
				names := []string{d.id}
				for k := len(stack) - 1; k > i; k-- {
					names = append(names, stack[k])
				}
				names = append(names, d.id)
				errs.Add(d.at, "cycle: %s", cyclePath(names, "steps"))
			}
		}
		stack = stack[:len(stack)-1]
		state[id] = done
	}
	for _, s := range g.steps {
		if state[s.ID] == unseen {
			visit(s.ID)
		}
	}
	return errs
}

// topo orders the steps so that every step comes after its dependencies,
// taking the earliest step in file order whenever there is a choice. Steps
// on a cycle are appended in file order.
func (g *Graph) topo() []*Step {
	pending := make([]int, len(g.steps))
	for i, s := range g.steps {
		pending[i] = len(g.up[s.ID])
	}
	placed := make([]bool, len(g.steps))
	order := make([]*Step, 0, len(g.steps))
	// ready is kept sorted by file order; graphs are small enough that
	// insertion into a slice beats a heap.
	var ready []int
	for i, n := range pending {
		if n == 0 {
			ready = append(ready, i)
		}
	}
	for len(ready) > 0 {
		i := ready[0]
		ready = ready[1:]
		placed[i] = true
		order = append(order, g.steps[i])
		for _, d := range g.down[g.steps[i].ID] {
			j := g.index[d]
			if pending[j]--; pending[j] == 0 {
				at, _ := slices.BinarySearch(ready, j)
				ready = slices.Insert(ready, at, j)
			}
		}
	}
	for i, s := range g.steps {
		if !placed[i] {
			order = append(order, s)
		}
	}
	return order
}

// Order returns every step, each after the steps it depends on, ties
// broken by file order.
func (g *Graph) Order() []*Step {
	return slices.Clone(g.order)
}

// Step returns the step with the given id, or nil.
func (g *Graph) Step(id string) *Step {
	if i, ok := g.index[id]; ok {
		return g.steps[i]
	}
	return nil
}

// Upstream returns the ids of the steps id directly depends on, sorted.
func (g *Graph) Upstream(id string) []string {
	var out []string
	for _, d := range g.up[id] {
		out = append(out, d.id)
	}
	slices.Sort(out)
	return out
}

// Downstream returns the ids of the steps that directly depend on id,
// sorted.
func (g *Graph) Downstream(id string) []string {
	out := slices.Clone(g.down[id])
	slices.Sort(out)
	return out
}

// AllUpstream returns the ids of every step id depends on, directly or
// through others, sorted.
func (g *Graph) AllUpstream(id string) []string {
	return g.reach(id, func(s string) []string { return g.Upstream(s) })
}

// AllDownstream returns the ids of every step that depends on id, directly
// or through others, sorted: what a rollback of id invalidates.
func (g *Graph) AllDownstream(id string) []string {
	return g.reach(id, func(s string) []string { return g.down[s] })
}

func (g *Graph) reach(id string, next func(string) []string) []string {
	seen := map[string]bool{id: true}
	queue := []string{id}
	var out []string
	for len(queue) > 0 {
		cur := queue[0]
		queue = queue[1:]
		for _, n := range next(cur) {
			if !seen[n] {
				seen[n] = true
				out = append(out, n)
				queue = append(queue, n)
			}
		}
	}
	slices.Sort(out)
	return out
}

// stepReads are the globs a step reads (inputs, its foreach plan, glob or
// items file, the literal paths its when: reads) with their positions: a
// step that outputs one of them runs before it.
func stepReads(s *Step) ([]globPat, []Pos) {
	reads := make([]globPat, 0, len(s.Inputs)+1)
	readAt := make([]Pos, 0, len(s.Inputs)+1)
	for i, in := range s.Inputs {
		reads = append(reads, compileGlob(in))
		readAt = append(readAt, posAt(s.at.inputs, i, s.Pos))
	}
	if s.Foreach != "" {
		reads = append(reads, compileGlob(s.Foreach))
		readAt = append(readAt, cmpOr(s.at.foreach, s.Pos))
	}
	if s.Each != nil {
		reads = append(reads, compileGlob(s.Each.Source()))
		readAt = append(readAt, cmpOr(s.at.foreach, s.Pos))
	}
	if s.When != nil {
		for _, f := range s.When.Files {
			reads = append(reads, compileGlob(f))
			readAt = append(readAt, cmpOr(s.at.when.Pos, s.Pos))
		}
	}
	return reads, readAt
}
