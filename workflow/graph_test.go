package workflow

import (
	"strings"
	"testing"
)

func mustGraph(t *testing.T, yaml string) (*Workflow, *Graph) {
	t.Helper()
	w, err := ParseWorkflow("w.yaml", []byte("version: 1\nsteps:\n"+yaml), testEngines)
	if err != nil {
		t.Fatal(err)
	}
	g, err := w.Graph()
	if err != nil {
		t.Fatal(err)
	}
	return w, g
}

func ids(steps []*Step) string {
	var out []string
	for _, s := range steps {
		out = append(out, s.ID)
	}
	return strings.Join(out, ",")
}

func TestGraphExample(t *testing.T) {
	// The example: implicit edges through outputs -> inputs and
	// the foreach plan, explicit ones through needs.
	_, g := mustGraph(t, `
  - id: fmt
    run: gofmt -w .
    needs: [implement]
  - id: review
    agent: reviewer
    needs: [implement]
  - id: implement
    agent: coder
    foreach: .codemachine/plan.md
    inputs: [.codemachine/architecture.md]
  - id: plan
    agent: planner
    inputs: [.codemachine/spec.md, .codemachine/architecture.md]
    outputs: [.codemachine/plan.md]
  - id: architecture
    agent: architect
    inputs: [.codemachine/spec.md]
    outputs: [.codemachine/architecture.md]
`)
	if got := ids(g.Order()); got != "architecture,plan,implement,fmt,review" {
		t.Errorf("Order = %s", got)
	}
	tests := []struct {
		id, up, down, allUp, allDown string
	}{
		{"architecture", "", "implement,plan", "", "fmt,implement,plan,review"},
		{"plan", "architecture", "implement", "architecture", "fmt,implement,review"},
		{"implement", "architecture,plan", "fmt,review", "architecture,plan", "fmt,review"},
		{"fmt", "implement", "", "architecture,implement,plan", ""},
		{"nope", "", "", "", ""},
	}
	for _, tt := range tests {
		j := func(s []string) string { return strings.Join(s, ",") }
		if got := j(g.Upstream(tt.id)); got != tt.up {
			t.Errorf("Upstream(%s) = %s, want %s", tt.id, got, tt.up)
		}
		if got := j(g.Downstream(tt.id)); got != tt.down {
			t.Errorf("Downstream(%s) = %s, want %s", tt.id, got, tt.down)
		}
		if got := j(g.AllUpstream(tt.id)); got != tt.allUp {
			t.Errorf("AllUpstream(%s) = %s, want %s", tt.id, got, tt.allUp)
		}
		if got := j(g.AllDownstream(tt.id)); got != tt.allDown {
			t.Errorf("AllDownstream(%s) = %s, want %s", tt.id, got, tt.allDown)
		}
	}
	if g.Step("plan") == nil || g.Step("plan").ID != "plan" || g.Step("nope") != nil {
		t.Error("Step lookup")
	}
}

func TestGraphOrderTies(t *testing.T) {
	_, g := mustGraph(t, `
  - {id: d, run: x, needs: [b]}
  - {id: c, run: x}
  - {id: b, run: x}
  - {id: a, run: x, needs: [c]}
`)
	// c and b are ready first; c comes first in the file. Placing c
	// readies a, but b still comes before it in the file; placing b
	// readies d, which comes first of all.
	if got := ids(g.Order()); got != "c,b,d,a" {
		t.Errorf("Order = %s, want c,b,d,a", got)
	}
}

func TestGraphSelfOutputs(t *testing.T) {
	// A step that reads what it writes (a file it updates in place) does
	// not depend on itself.
	_, g := mustGraph(t, `
  - id: changelog
    run: ./bump.sh
    inputs: [CHANGELOG.md]
    outputs: [CHANGELOG.md]
`)
	if up := g.Upstream("changelog"); len(up) != 0 {
		t.Errorf("Upstream = %v", up)
	}
}

func TestGraphCycles(t *testing.T) {
	tests := []struct {
		name, yaml, want string
	}{
		{"needs", "  - {id: a, run: x, needs: [b]}\n  - {id: b, run: x, needs: [a]}\n",
			"w.yaml:4:29: cycle: a -> b -> a"},
		{"three through outputs", `  - id: a
    run: x
    inputs: [c.txt]
    outputs: [a.txt]
  - id: b
    run: x
    inputs: [a.txt]
    outputs: [b.txt]
  - id: c
    run: x
    inputs: ["*.txt"]
    outputs: [c.txt]
`, "w.yaml:9:14: cycle: a -> b -> c -> a\nw.yaml:13:14: cycle: a -> c -> a"},
		{"foreach reads its own downstream", `  - id: plan
    run: x
    inputs: [notes.md]
    outputs: [plan.md]
  - id: implement
    run: x
    foreach: plan.md
    outputs: [notes.md]
`, "w.yaml:9:14: cycle: plan -> implement -> plan"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w, err := ParseWorkflow("w.yaml", []byte("version: 1\nsteps:\n"+tt.yaml), testEngines)
			if err != nil {
				t.Fatal(err)
			}
			g, err := w.Graph()
			if err == nil || err.Error() != tt.want {
				t.Fatalf("Graph error:\n got: %v\nwant: %s", err, tt.want)
			}
			if len(g.Order()) != len(w.Steps) {
				t.Errorf("Order has %d steps, want all %d", len(g.Order()), len(w.Steps))
			}
		})
	}
}

func TestGlobsOverlap(t *testing.T) {
	tests := []struct {
		a, b string
		want bool
	}{
		{"a.md", "a.md", true},
		{"a.md", "b.md", false},
		{".codemachine/spec.md", ".codemachine/architecture.md", false},
		{"docs/*.md", "docs/intro.md", true},
		{"docs/*.md", "docs/intro.txt", false},
		{"docs/*.md", "src/intro.md", false},
		{"src/**", "src/a/b/c.go", true},
		{"src/**/*.go", "src/main.go", true},
		{"src/**/*.go", "src/a/b/main.go", true},
		{"src/**/*.go", "src/a/b/main.rs", false},
		{"**/*.go", "cmd/x/main.go", true},
		{"src/*.go", "src/a/main.go", false},
		{"src/gen_*.go", "src/*.go", true},
		{"*.md", "*.txt", false},
		{"a*", "*b", true},
		{"src", "src/main.go", true},
		{"src", "src/**/*.go", true},
		{"src", "srcs/main.go", false},
		{"build/{a,b}.txt", "build/a.txt", true},
		{"build/{a,b}.txt", "build/c.md", false},
		{"**", "anything/at/all", true},
		{"**/x/**", "**/y/**", true},
		{"a/**/z", "a/b/c", true}, // c may be a directory holding z
		{"a/**/z.go", "a/b/c.txt", false},
		{".codemachine", ".codemachine/plan.md", true},
	}
	for _, tt := range tests {
		if got := globsOverlap(tt.a, tt.b); got != tt.want {
			t.Errorf("globsOverlap(%q, %q) = %v, want %v", tt.a, tt.b, got, tt.want)
		}
		if got := globsOverlap(tt.b, tt.a); got != tt.want {
			t.Errorf("globsOverlap(%q, %q) = %v, want %v (not symmetric)", tt.b, tt.a, got, tt.want)
		}
	}
}
