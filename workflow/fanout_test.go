package workflow

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"testing/fstest"
)

func TestParseItems(t *testing.T) {
	tests := []struct {
		name string
		data string
		want []string // id|title|json
		errs []string
	}{
		{"json with ids", `[{"id": "users", "name": "Users"}, {"id": 7}]`,
			[]string{`users|Users|{"id":"users","name":"Users"}`, `7|7|{"id":7}`}, nil},
		{"yaml by position", "- name: a\n- title: B\n  x: [1, 2]\n- plain\n",
			[]string{`1|a|{"name":"a"}`, `2|B|{"title":"B","x":[1,2]}`, `3|3|"plain"`}, nil},
		{"title on one line, without escapes", "- {id: a, title: \"Users\\n\\tand \\e]0;x\\a roles \\e[31m\"}\n",
			[]string{`a|Users and ]0;x roles [31m|{"id":"a","title":"Users\n\tand \u001b]0;x\u0007 roles \u001b[31m"}`}, nil},
		{"empty file", "", nil, nil},
		{"empty list", "[]", nil, nil},
		{"not a list", "a: 1\n", nil, []string{"f.yaml:1:1: want a list of items, got a mapping"}},
		{"duplicate id", "- id: a\n- id: a\n", nil, []string{`f.yaml:2:3: item 2: duplicate id "a" (first at line 1)`}},
		{"bad id", "- id: 'a b'\n", nil, []string{`f.yaml:1:3: item 1: id "a b" has a character a git ref cannot hold (space, ~ ^ : ? * [ \)`}},
		{"id of a wrong type", "- id: [1]\n", nil, []string{`f.yaml:1:3: item 1: id: want a string or a number`}},
		{"syntax error", "[1, 2\n", nil, []string{"f.yaml:"}},
		{"key repeated in an item", "- id: a\n- id: b\n  title: x\n  deps:\n    - {on: a, on: c}\n", nil, []string{`f.yaml:5:15: item 2: duplicate key "on" (first at line 5)`}},
		{"key repeated in a JSON item", "[{\"id\": \"a\"},\n {\"id\": \"b\", \"id\": \"c\"}]\n", nil, []string{`f.yaml:2:14: item 2: duplicate key "id" (first at line 2)`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tasks, err := ParseItems("f.yaml", []byte(tt.data))
			if tt.errs != nil {
				if err == nil {
					t.Fatalf("no error, want %v", tt.errs)
				}
				for _, want := range tt.errs {
					if !strings.Contains(err.Error(), want) {
						t.Errorf("error %q does not contain %q", err, want)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, tk := range tasks {
				got = append(got, tk.ID+"|"+tk.Title+"|"+tk.Item.EnvValue())
			}
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}

func TestGlobItems(t *testing.T) {
	fsys := fstest.MapFS{
		"legacy/b.cbl":     {Data: []byte("b")},
		"legacy/a/x.cbl":   {Data: []byte("x")},
		"legacy/notes.txt": {Data: []byte("n")},
		"other/c.cbl":      {Data: []byte("c")},
	}
	tasks, err := GlobItems(fsys, "legacy/**/*.cbl")
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, tk := range tasks {
		ids = append(ids, tk.ID)
		if tk.Item.Path != tk.ID || tk.Item.Hash == "" || tk.Item.TemplateValue().(FileItem).Path != tk.ID {
			t.Errorf("task %s: item %+v", tk.ID, tk.Item)
		}
	}
	if got := strings.Join(ids, ","); got != "legacy/a/x.cbl,legacy/b.cbl" {
		t.Errorf("ids %s", got)
	}
	fsys["legacy/bad name.cbl"] = &fstest.MapFile{Data: []byte("?")}
	if _, err := GlobItems(fsys, "legacy/**/*.cbl"); err == nil || !strings.Contains(err.Error(), "legacy/bad name.cbl: cannot be a task") {
		t.Errorf("bad path: err %v", err)
	}
	// A name that is not UTF-8 could not keep its record in state.yaml; it
	// is shown quoted, as is one with a control character.
	for _, name := range []string{"legacy/caf\xe9.cbl", "legacy/a\x1b[2J.cbl"} {
		if msg := checkTaskID(name); msg == "" {
			t.Errorf("checkTaskID(%q) accepts it", name)
		}
		if got := shownPath(name); got != strconv.Quote(name) {
			t.Errorf("shownPath(%q) = %s, want it quoted", name, got)
		}
	}
}

// An item's fingerprint covers its content: editing one file changes
// exactly its task's.
func TestTaskFingerprintCoversItem(t *testing.T) {
	a := &Task{ID: "a.cbl", Title: "a.cbl", Item: &Item{Path: "a.cbl", Hash: "1"}}
	a2 := &Task{ID: "a.cbl", Title: "a.cbl", Item: &Item{Path: "a.cbl", Hash: "2"}}
	plan := &Task{ID: "a.cbl", Title: "a.cbl"}
	fps := map[string]bool{}
	for _, tk := range []*Task{a, a2, plan} {
		fps[TaskFingerprint("step", tk)] = true
	}
	if len(fps) != 3 {
		t.Errorf("fingerprints collide: %v", fps)
	}
	if TaskFingerprint("step", a) == TaskFingerprint("other", a) {
		t.Error("the step's fingerprint is not covered")
	}
}

func TestParseFanout(t *testing.T) {
	tests := []struct {
		foreach string
		want    string // glob|items, or an error
	}{
		{`{glob: "src/**/*.c"}`, "src/**/*.c|"},
		{`{items: ./list.json}`, "|list.json"},
		{`{glob: "*.c", items: x.json}`, "6:14: foreach: has both glob and items; keep one"},
		{`{}`, "6:14: foreach: want a plan file, {glob: PATTERN} or {items: FILE}"},
		{`{items: "*.json"}`, `6:22: foreach items: "*.json" is a glob`},
		{`{glob: "/abs/*"}`, `6:21: foreach glob: "/abs/*" is absolute`},
		{`{glob: [a]}`, `6:21: foreach glob: want a string`},
		{`{each: x}`, `6:15: unknown key "each" in foreach`},
	}
	for _, tt := range tests {
		t.Run(tt.foreach, func(t *testing.T) {
			src := "version: 1\nname: t\nsteps:\n  - id: s\n    run: 'true'\n    foreach: " + tt.foreach + "\n"
			wf, err := ParseWorkflow("w.yaml", []byte(src), testEngines)
			if strings.Contains(tt.want, ":") && !strings.Contains(tt.want, "|") {
				if err == nil || !strings.Contains(err.Error(), "w.yaml:"+tt.want) {
					t.Fatalf("err %v, want w.yaml:%s", err, tt.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			e := wf.Steps[0].Each
			if got := e.Glob + "|" + e.Items; got != tt.want {
				t.Errorf("got %s want %s", got, tt.want)
			}
		})
	}
}

// A fan-out step is due while a task's item has no record of its current
// fingerprint, and waits for the step that writes its items file.
func TestFanoutDue(t *testing.T) {
	fsys := fstest.MapFS{
		WorkflowFile: {Data: []byte("version: 1\nname: t\nsteps:\n  - id: list\n    run: 'true'\n    outputs: [items.json]\n  - id: each\n    run: 'true'\n    foreach: {items: items.json}\n")},
	}
	p, err := LoadProject(fsys, testEngines)
	if err != nil {
		t.Fatal(err)
	}
	due := DueSteps(p, map[string]string{}, map[string]Record{})
	if due["each"] != "waits for list" {
		t.Errorf("each: %q", due["each"])
	}
	due = DueSteps(p, map[string]string{"list": "x"}, map[string]Record{"list": {Fingerprint: "x", Seq: 1}})
	if due["each"] != "items.json not written yet" {
		t.Errorf("each before the file: %q", due["each"])
	}
	fsys["items.json"] = &fstest.MapFile{Data: []byte(`[{"id": "a"}, {"id": "b"}]`)}
	p, _ = LoadProject(fsys, testEngines)
	p.Fanouts["each"].Tasks[0].Done = true
	due = DueSteps(p, map[string]string{"list": "x"}, map[string]Record{"list": {Fingerprint: "x", Seq: 1}})
	if due["each"] != "1 task to do" {
		t.Errorf("each: %q", due["each"])
	}
	p.Fanouts["each"].Tasks[1].Done = true
	due = DueSteps(p, map[string]string{"list": "x"}, map[string]Record{"list": {Fingerprint: "x", Seq: 1}})
	if _, ok := due["each"]; ok {
		t.Errorf("each due when every task is done: %q", due["each"])
	}
}

// TestParseItemsYAMLUnclosed: a .yaml items file whose flow list or
// mapping is left open was placed where yaml.v3 says the construct began,
// 1:1 for a file that is one list, as if nowhere; it is placed at the end,
// where the bracket is missing, as a .json file's is.
func TestParseItemsYAMLUnclosed(t *testing.T) {
	for _, tc := range []struct{ data, want string }{
		{"[1, 2", "f.yaml:1:6: invalid YAML: did not find expected ',' or ']' (is a bracket left open?)"},
		{"# items\n\n[1, 2\n\n", "f.yaml:3:6: invalid YAML: did not find expected ',' or ']' (is a bracket left open?)"},
		{"[{id: a}, {id: b\n", "f.yaml:1:17: invalid YAML: did not find expected ',' or '}' (is a bracket left open?)"},
		{"- [1,\n   2\n", "f.yaml:2:5: invalid YAML: did not find expected ',' or ']' (is a bracket left open?)"},
		// Ending after a comma, libyaml asks for the next item instead.
		{"[1, 2,", "f.yaml:1:7: invalid YAML: did not find expected node content (is a bracket left open?)"},
		{"- {id: 1,\n   title: a,\n", "f.yaml:2:13: invalid YAML: did not find expected node content (is a bracket left open?)"},
	} {
		_, err := ParseItems("f.yaml", []byte(tc.data))
		if err == nil || err.Error() != tc.want {
			t.Errorf("ParseItems(%q) = %v, want %q", tc.data, err, tc.want)
		}
	}
}

// TestParseItemsYAMLWrongBracket: a flow list closed with the wrong
// bracket was placed at 1:1 (yaml.v3 gives no line on the first), or at
// the line after; it is placed at the bracket, and the hint says so.
func TestParseItemsYAMLWrongBracket(t *testing.T) {
	for _, tc := range []struct{ data, want string }{
		{"[1, 2}", "f.yaml:1:6: invalid YAML: did not find expected ',' or ']' (a list opened with [ is closed with ], not })"},
		{"- a\n- [1, 2}\n- c\n", "f.yaml:2:8: invalid YAML: did not find expected ',' or ']' (a list opened with [ is closed with ], not })"},
		{"- {id: a, tags: [x, y}}\n", "f.yaml:1:22: invalid YAML: did not find expected ',' or ']' (a list opened with [ is closed with ], not })"},
	} {
		_, err := ParseItems("f.yaml", []byte(tc.data))
		if err == nil || err.Error() != tc.want {
			t.Errorf("ParseItems(%q) = %v, want %q", tc.data, err, tc.want)
		}
	}
}

// TestParseItemsJSON: a .json items file that does not parse is placed
// where encoding/json finds the mistake: at the end for a bracket left
// open (YAML names the line the list began on), at the character in
// question otherwise; a merge conflict says so, even where YAML reads
// both sides as one string.
func TestParseItemsJSON(t *testing.T) {
	for _, tc := range []struct{ data, want string }{
		{"[{\"id\": \"a\"},\n {\"id\": \"b\"}\n", "f.json:2:13: invalid JSON: unexpected end of JSON input (is a bracket or quote left open?)"},
		{"[\n  {\"id\": \"a\"}\n  {\"id\": \"b\"}\n]\n", "f.json:3:3: invalid JSON: invalid character '{' after array element"},
		{"[\n {\"id\": \"a\"},\n {\"x\": @}\n]\n", "f.json:3:8: invalid JSON: invalid character '@' looking for beginning of value"},
		{"<<<<<<< HEAD\n[1]\n=======\n[2]\n>>>>>>> theirs\n", "f.json:1:1: unresolved merge conflict"},
		// The wrong bracket as the last character is not one left open.
		{"[1, 2}", "f.json:1:6: invalid JSON: invalid character '}' after array element"},
	} {
		_, err := ParseItems("f.json", []byte(tc.data))
		if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("ParseItems(%q) = %v, want %q", tc.data, err, tc.want)
		}
	}
	// YAML's flow style, which is not JSON, is still read.
	if tasks, err := ParseItems("f.json", []byte("[{id: a}, {id: b}]")); err != nil || len(tasks) != 2 {
		t.Errorf("flow YAML in a .json file: %d tasks, %v", len(tasks), err)
	}
}

// TestParseItemsYAMLConflict: a YAML list at the top level reads
// conflict markers at column 0 into its items' text, and parses: the
// conflict is still refused, at its first marker. Markers inside items
// (not at a line's start) are their text.
func TestParseItemsYAMLConflict(t *testing.T) {
	data := "- a\n<<<<<<< HEAD\n- b\n=======\n- c\n>>>>>>> theirs\n"
	want := "f.yaml:2:1: unresolved merge conflict: keep what the <<<<<<< ... >>>>>>> block should say, remove the markers and commit"
	if _, err := ParseItems("f.yaml", []byte(data)); err == nil || err.Error() != want {
		t.Errorf("ParseItems = %v, want %s", err, want)
	}
	if tasks, err := ParseItems("f.yaml", []byte("- '<<<<<<< HEAD'\n- =======\n- '>>>>>>> theirs'\n")); err != nil || len(tasks) != 3 {
		t.Errorf("markers as items: %d tasks, %v", len(tasks), err)
	}
}

// TestParseItemsAliasBomb: an item whose aliases expand to billions of
// values ("billion laughs") is refused at once, in words of its own
// rather than yaml.v3's with its "yaml: " prefix.
func TestParseItemsAliasBomb(t *testing.T) {
	data := "- [&a0 [x, x, x, x, x, x, x, x, x, x]"
	for i := 1; i < 9; i++ {
		data += fmt.Sprintf(", &a%d [%s]", i, strings.TrimSuffix(strings.Repeat(fmt.Sprintf("*a%d, ", i-1), 10), ", "))
	}
	data += "]\n"
	_, err := ParseItems("f.yaml", []byte(data))
	want := "f.yaml:1:3: item 1: its aliases expand to too much (excessive aliasing): write the value out, or alias less of it"
	if err == nil || err.Error() != want {
		t.Errorf("ParseItems(alias bomb) = %v, want %q", err, want)
	}
}
