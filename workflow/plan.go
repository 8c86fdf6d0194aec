package workflow

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/codemachine/codemachine/internal/lazyre"
	"github.com/codemachine/codemachine/internal/yamlnode"
)

var (
	// taskRE matches a top-level checklist item; group 2 is the box
	// character, group 3 the rest of the line.
	taskRE   = lazyre.New(`^([-*+])[ \t]+\[([ xX])\](?:[ \t]+(.*?))?[ \t]*$`)
	taskIDRE = lazyre.New(`^([A-Za-z0-9][A-Za-z0-9._-]*):(?:[ \t]+|$)`)
	afterRE  = lazyre.New(`(?i)\(\s*after\s*:([^()]*)\)\s*$`)
	// afterInTitleRE finds an "(after: ...)" that does not end the line,
	// which is then part of the title.
	afterInTitleRE = lazyre.New(`(?i)\(\s*after\s*:[^()]*\)`)
	// nearTaskRE matches what looks like a task but is not one: a bullet
	// (or a number, "1." or "1)", as an ordered list has) and a box of at
	// most two characters (no word between brackets, as "- [link](url)"
	// has), the box's own character aside from space and x. Tested only
	// on lines taskRE refused.
	nearTaskRE = lazyre.New(`^[ \t]*(?:[-*+]|[0-9]{1,9}[.)])[ \t]*\[[^\]a-wyzA-WYZ0-9]{0,2}\]`)
)

// nearTaskForm is what a plan's warning says a task looks like.
const nearTaskForm = `a task is "- [ ] ID: title" at the start of the line, a space after the bullet and after the box`

// taskMeta keeps the columns of a task's parts for messages.
type taskMeta struct {
	idCol     int
	afterCols []int
	// lossy: the id is the slug of a title with letters or digits that
	// the slug leaves out (see keepApart).
	lossy bool
	// afterInTitle is the column of an "(after: ...)" left in the title
	// (text follows it), 0 when there is none.
	afterInTitle int
	// afterEmpty is the column of an "(after: )" that names no task, 0
	// when there is none: it reads as a dependency and is none.
	afterEmpty int
}

// ParsePlan parses a plan.md. Tasks are the top-level checklist
// items ("- [ ]", "- [x]", also with "*" and "+" bullets) outside fenced
// code blocks; the lines indented under an item are its body. The Plan is
// returned even with errors, holding every task found.
func ParsePlan(file string, data []byte) (*Plan, error) {
	var errs Errors
	p := &Plan{File: file, Data: data}
	if at, ok := loneCRLines(file, data); ok {
		errs.Add(at, "%s", loneCRMessage)
		return p, errs
	}
	var metas []*taskMeta
	var cur *Task
	var body []string
	// next is the offset of the line after the current one.
	next := 0
	extend := func(text string) {
		if cur != nil && strings.TrimSpace(text) != "" {
			cur.end = next
		}
	}
	finish := func() {
		if cur != nil {
			cur.Body = dedent(body)
		}
		cur, body = nil, nil
	}
	var fence fenceState
	var conflict conflictScan
	lineNo := 0
	for off := 0; off < len(data); {
		lineNo++
		end := bytes.IndexByte(data[off:], '\n')
		next = len(data)
		if end >= 0 {
			next = off + end + 1
		} else {
			end = len(data) - off
		}
		text := strings.TrimSuffix(string(data[off:off+end]), "\r")
		start := off
		off = next
		if lineNo == 1 && strings.HasPrefix(text, "\uFEFF") {
			// A byte order mark some editors write is not text.
			text, start = text[len("\uFEFF"):], start+len("\uFEFF")
		}

		if fence.open {
			if fence.inBody && cur != nil {
				checkNUL(file, text, lineNo, &errs)
				body = append(body, text)
				extend(text)
			}
			fence.closeOn(text)
			continue
		}
		conflict.line(text, lineNo)
		if m := taskRE().FindStringSubmatchIndex(text); m != nil {
			finish()
			checkControls(file, text, lineNo, &errs)
			t, meta := parseTaskLine(file, text, lineNo, m, &errs)
			p.warnAfter(t, meta)
			t.Box = start + m[4]
			t.start, t.end = start, next
			p.Tasks = append(p.Tasks, t)
			metas = append(metas, meta)
			cur = t
			continue
		}
		indented := strings.HasPrefix(text, " ") || strings.HasPrefix(text, "\t")
		if cur != nil && indented {
			if m := taskRE().FindStringSubmatch(strings.TrimLeft(text, " \t")); m != nil && taskIDRE().MatchString(m[3]) {
				p.Warnings.Add(Pos{File: file, Line: lineNo, Col: 1},
					"this indented item is part of task %s's body, not a task of its own; %s", cur.ID, nearTaskForm)
			}
		} else if nearTaskRE().MatchString(text) {
			p.Warnings.Add(Pos{File: file, Line: lineNo, Col: 1}, "not a task, though it looks like one; %s", nearTaskForm)
		}
		if cur != nil && (indented || strings.TrimSpace(text) == "") {
			checkNUL(file, text, lineNo, &errs)
			body = append(body, text)
			extend(text)
			fence.openOn(text, true)
			continue
		}
		finish()
		fence.openOn(text, false)
	}
	finish()
	keepApart(p.Tasks, metas)
	if conflict.found > 0 {
		errs.Add(Pos{File: file, Line: conflict.found, Col: 1}, "%s", yamlnode.ConflictMessage)
	}
	checkBinary(file, data, &errs)
	p.index()
	p.checkDeps(metas, &errs)
	return p, errs.Err()
}

// checkBinary reports the first NUL byte of a plan when no task's check
// did: a plan is Markdown, and a file with a NUL byte is not text (git
// takes it for binary), though its bytes may happen to hold no task line
// (a binary saved over plan.md read as a plan of no tasks).
func checkBinary(file string, data []byte, errs *Errors) {
	i := bytes.IndexByte(data, 0)
	if i < 0 {
		return
	}
	line := 1 + bytes.Count(data[:i], []byte{'\n'})
	for _, e := range *errs {
		if e.Pos.File == file && e.Pos.Line == line {
			return // the task's own message says it
		}
	}
	lineStart := bytes.LastIndexByte(data[:i], '\n') + 1
	errs.Add(Pos{File: file, Line: line, Col: utf8.RuneCount(data[lineStart:i]) + 1},
		"a NUL byte: a plan is a Markdown text file, and this one is not text (saved over by a binary file?)")
}

// checkNUL reports a NUL byte in a line of a task: its title and body
// reach commands as environment variables (CODEMACHINE_TASK_TITLE,
// CODEMACHINE_TASK_BODY) and the step commit's message, none of which
// can hold one, so the task could only fail once started.
func checkNUL(file, text string, line int, errs *Errors) {
	if i := strings.IndexByte(text, 0); i >= 0 {
		errs.Add(Pos{File: file, Line: line, Col: utf8.RuneCountInString(text[:i]) + 1},
			"a NUL byte in a task: its title and body are given to commands as environment variables, which cannot hold one")
	}
}

// checkControls reports a control character in a task's line (a tab
// aside): its title is printed by status and run as it is, where an
// escape sequence would drive the terminal, and is the step commit's
// subject. So is a byte that is not UTF-8 (a plan saved in Latin-1): the
// subject git would record, and the title an agent and --json get, would
// not be the text of the plan.
func checkControls(file, text string, line int, errs *Errors) {
	for i, r := range text {
		if r == 0 {
			checkNUL(file, text, line, errs)
			return
		}
		if r == utf8.RuneError && !strings.HasPrefix(text[i:], "\uFFFD") {
			errs.Add(Pos{File: file, Line: line, Col: utf8.RuneCountInString(text[:i]) + 1},
				"a byte that is not UTF-8 (0x%02X) in a task: save the plan as UTF-8", text[i])
			return
		}
		if r < 0x20 && r != '\t' || r == 0x7f || r >= 0x80 && r <= 0x9f {
			errs.Add(Pos{File: file, Line: line, Col: utf8.RuneCountInString(text[:i]) + 1},
				"a control character (U+%04X) in a task: its title is printed to your terminal and is its commit's subject", r)
			return
		}
	}
}

// fenceState tracks fenced code blocks, whose lines are never tasks.
type fenceState struct {
	open   bool
	inBody bool // opened inside a task body: its lines belong to the body
	char   byte
	n      int
}

func (f *fenceState) openOn(text string, inBody bool) {
	c, n, _ := fenceRun(text)
	if n >= 3 {
		*f = fenceState{open: true, inBody: inBody, char: c, n: n}
	}
}

func (f *fenceState) closeOn(text string) {
	c, n, rest := fenceRun(text)
	if n >= f.n && c == f.char && strings.TrimSpace(rest) == "" {
		*f = fenceState{}
	}
}

// fenceRun returns the run of ` or ~ that starts a line after indentation.
func fenceRun(text string) (c byte, n int, rest string) {
	t := strings.TrimLeft(text, " \t")
	if t == "" || (t[0] != '`' && t[0] != '~') {
		return 0, 0, ""
	}
	c = t[0]
	for n < len(t) && t[n] == c {
		n++
	}
	return c, n, t[n:]
}

// warnAfter adds the warnings about task t's "(after: ...)": one left in
// the title, and one that names no task. Both read as dependencies and are
// none.
func (p *Plan) warnAfter(t *Task, meta *taskMeta) {
	if meta.afterInTitle > 0 {
		p.Warnings.Add(Pos{File: p.File, Line: t.Line, Col: meta.afterInTitle},
			"(after: ...) is part of task %s's title, not its dependencies, unless it ends the line", t.ID)
	}
	if meta.afterEmpty > 0 {
		p.Warnings.Add(Pos{File: p.File, Line: t.Line, Col: meta.afterEmpty},
			"(after: ) names no task: task %s has no dependencies; name the tasks it comes after, or remove it", t.ID)
	}
}

// parseTaskLine reads the id, title and dependencies of a checklist item;
// m is taskRE's submatch index on text.
func parseTaskLine(file, text string, line int, m []int, errs *Errors) (*Task, *taskMeta) {
	t := &Task{Line: line, Done: text[m[4]] != ' '}
	meta := &taskMeta{}
	pos := func(byteOff int) Pos {
		return Pos{File: file, Line: line, Col: utf8.RuneCountInString(text[:byteOff]) + 1}
	}
	if m[6] < 0 {
		errs.Add(pos(m[4]), "task has an empty title")
		t.ID = fmt.Sprintf("task-%d", line)
		meta.idCol = utf8.RuneCountInString(text[:m[4]]) + 1
		return t, meta
	}
	titleStart := m[6]
	rest := text[m[6]:m[7]]
	meta.idCol = titleStart
	if id := taskIDRE().FindStringSubmatchIndex(rest); id != nil {
		t.ID = rest[id[2]:id[3]]
		if msg := checkTaskID(t.ID); msg != "" {
			// Its failed work and its review branch are refs named after
			// it: git would refuse them, and the work would be lost.
			errs.Add(pos(titleStart), "task id %q %s", t.ID, msg)
		}
		rest = rest[id[1]:]
		titleStart += id[1]
	}
	if a := afterRE().FindStringSubmatchIndex(rest); a != nil {
		list := rest[a[2]:a[3]]
		for i := 0; i < len(list); {
			for i < len(list) && isDepSep(list[i]) {
				i++
			}
			j := i
			for j < len(list) && !isDepSep(list[j]) {
				j++
			}
			if j > i {
				t.After = append(t.After, list[i:j])
				meta.afterCols = append(meta.afterCols, titleStart+a[2]+i)
			}
			i = j
		}
		if len(meta.afterCols) == 0 {
			meta.afterEmpty = pos(titleStart + a[0]).Col
		}
		rest = rest[:a[0]]
	}
	t.Title = strings.TrimSpace(rest)
	if t.Title == "" {
		errs.Add(pos(titleStart), "task has an empty title")
	}
	if a := afterInTitleRE().FindStringIndex(rest); a != nil {
		meta.afterInTitle = pos(titleStart + a[0]).Col
	}
	if t.ID == "" {
		t.ID = slug(t.Title)
		if t.ID == "" {
			t.ID = titleID(t.Title)
		} else {
			meta.lossy = slugDrops(t.Title)
		}
	}
	// Columns become positions only when reported; keep them as runes.
	meta.idCol = utf8.RuneCountInString(text[:meta.idCol]) + 1
	for i, c := range meta.afterCols {
		meta.afterCols[i] = utf8.RuneCountInString(text[:c]) + 1
	}
	return t, meta
}

func isDepSep(c byte) bool { return c == ',' || c == ' ' || c == '\t' }

// slug makes an id from a title: lowercase ASCII letters and digits, other
// runs turned into "-", at most 60 characters.
func slug(title string) string {
	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(title) {
		if r < utf8.RuneSelf && (unicode.IsLetter(r) || unicode.IsDigit(r)) {
			if dash && b.Len() > 0 {
				b.WriteByte('-')
			}
			dash = false
			b.WriteRune(r)
			if b.Len() >= 60 {
				break
			}
			continue
		}
		dash = true
	}
	return strings.TrimRight(b.String(), "-")
}

// slugDrops reports whether title has a letter, digit or combining mark
// (an accent) that slug leaves out: one that is not ASCII.
func slugDrops(title string) bool {
	for _, r := range title {
		if r >= utf8.RuneSelf && (unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.IsMark(r)) {
			return true
		}
	}
	return false
}

// keepApart gives the tasks whose slug another task's id shares, and whose
// title has letters the slug left out, their title's hash after the slug:
// "API を追加" and "API を削除" both slug to "api", and are different
// tasks ("api-" and each one's hash), where two titles that differ only in
// what a slug keeps ("Same", "same") stay a duplicate. Only ids that
// collide change, so every plan valid before keeps its ids; a task whose
// title is ASCII keeps its slug.
func keepApart(tasks []*Task, metas []*taskMeta) {
	n := make(map[string]int, len(tasks))
	for _, t := range tasks {
		n[t.ID]++
	}
	for i, t := range tasks {
		if metas[i].lossy && n[t.ID] > 1 {
			// Of the title in lower case, as the slug is: "Café" and
			// "café" are the same task twice, as "Same" and "same" are.
			t.ID += "-" + strings.TrimPrefix(titleID(strings.ToLower(t.Title)), "task-")
		}
	}
}

// titleID is the id of a task whose title gives no slug (no ASCII letter
// or digit: a title in Japanese, Greek, Cyrillic, or only punctuation):
// "task-" and the start of the title's SHA-256. Like a slug it follows the
// title, not the task's line, so that adding, deleting or reordering the
// tasks around it leaves its id, under which its record, commits and refs
// are kept, where it was.
func titleID(title string) string {
	sum := sha256.Sum256([]byte(title))
	return "task-" + hex.EncodeToString(sum[:4])
}

// dedent removes the indentation common to the non-blank lines and the
// trailing blank lines.
func dedent(lines []string) string {
	for len(lines) > 0 && strings.TrimSpace(lines[len(lines)-1]) == "" {
		lines = lines[:len(lines)-1]
	}
	if len(lines) == 0 {
		return ""
	}
	prefix, first := "", true
	for _, l := range lines {
		if strings.TrimSpace(l) == "" {
			continue
		}
		ind := l[:len(l)-len(strings.TrimLeft(l, " \t"))]
		if first {
			prefix, first = ind, false
			continue
		}
		n := 0
		for n < len(prefix) && n < len(ind) && prefix[n] == ind[n] {
			n++
		}
		prefix = prefix[:n]
	}
	out := make([]string, len(lines))
	for i, l := range lines {
		if strings.TrimSpace(l) == "" {
			continue
		}
		out[i] = strings.TrimPrefix(l, prefix)
	}
	return strings.Join(out, "\n")
}

func (p *Plan) index() {
	p.byID = make(map[string]*Task, len(p.Tasks))
	for _, t := range p.Tasks {
		if _, dup := p.byID[t.ID]; !dup {
			p.byID[t.ID] = t
		}
	}
}

// checkDeps reports duplicate ids, unknown and self dependencies, and
// cycles.
func (p *Plan) checkDeps(metas []*taskMeta, errs *Errors) {
	ids := make([]string, 0, len(p.Tasks))
	for i, t := range p.Tasks {
		if first := p.byID[t.ID]; first != t {
			errs.Add(Pos{File: p.File, Line: t.Line, Col: metas[i].idCol},
				"duplicate task id %q (first at line %d)", t.ID, first.Line)
			continue
		}
		ids = append(ids, t.ID)
	}
	for i, t := range p.Tasks {
		for j, dep := range t.After {
			at := Pos{File: p.File, Line: t.Line, Col: metas[i].afterCols[j]}
			switch {
			case dep == t.ID:
				errs.Add(at, "task %q depends on itself", t.ID)
			case p.byID[dep] == nil:
				errs.Add(at, "task %q depends on unknown task %q%s", t.ID, dep, suggest(dep, ids))
			}
		}
	}
	// Depth-first search in plan order; a dependency on a task still on
	// the stack closes a cycle, reported at that dependency.
	const (
		unseen = iota
		onStack
		done
	)
	state := make(map[*Task]int, len(p.Tasks))
	metaOf := make(map[*Task]*taskMeta, len(p.Tasks))
	for i, t := range p.Tasks {
		metaOf[t] = metas[i]
	}
	var stack []*Task
	var visit func(t *Task)
	visit = func(t *Task) {
		state[t] = onStack
		stack = append(stack, t)
		for j, dep := range t.After {
			d := p.byID[dep]
			if d == nil || d == t {
				continue
			}
			switch state[d] {
			case unseen:
				visit(d)
			case onStack:
				i := slices.Index(stack, d)
				// stack[i:] each depend on the next; print in the
				// order the tasks would have to run.
				names := []string{d.ID}
				for k := len(stack) - 1; k > i; k-- {
					names = append(names, stack[k].ID)
				}
				names = append(names, d.ID)
				errs.Add(Pos{File: p.File, Line: t.Line, Col: metaOf[t].afterCols[j]},
					"dependency cycle: %s", cyclePath(names, "tasks"))
			}
		}
		stack = stack[:len(stack)-1]
		state[t] = done
	}
	for _, t := range p.Tasks {
		if state[t] == unseen && p.byID[t.ID] == t {
			visit(t)
		}
	}
}

// Task returns the task with the given id (the first one, should the plan
// repeat an id), or nil.
func (p *Plan) Task(id string) *Task {
	if p.byID != nil {
		return p.byID[id]
	}
	for _, t := range p.Tasks {
		if t.ID == id {
			return t
		}
	}
	return nil
}

// SetDone returns the plan's content with the task's box ticked (done) or
// cleared. Exactly one byte differs from Data, none when the box already
// has that state, so the user's formatting is kept; the Plan itself is not
// changed.
func (p *Plan) SetDone(id string, done bool) ([]byte, error) {
	t := p.Task(id)
	if t == nil {
		return nil, fmt.Errorf("%s: %w %q", p.File, ErrUnknownTask, id)
	}
	if t.Box < 0 || t.Box >= len(p.Data) || !strings.ContainsRune(" xX", rune(p.Data[t.Box])) {
		return nil, fmt.Errorf("%s: task %q: box offset %d does not point at a checkbox", p.File, id, t.Box)
	}
	out := bytes.Clone(p.Data)
	if done == (out[t.Box] != ' ') {
		return out, nil
	}
	if done {
		out[t.Box] = 'x'
	} else {
		out[t.Box] = ' '
	}
	return out, nil
}

// Runnable returns the unchecked tasks whose dependencies are all checked,
// in plan order. A dependency on a task that does not exist is never
// satisfied (the plan has an error then).
func (p *Plan) Runnable() []*Task {
	var out []*Task
	for _, t := range p.Tasks {
		if t.Done || p.Task(t.ID) != t {
			continue
		}
		ready := true
		for _, dep := range t.After {
			if d := p.Task(dep); d == nil || !d.Done || d == t {
				ready = false
				break
			}
		}
		if ready {
			out = append(out, t)
		}
	}
	return out
}
