package yamlnode

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

// value decodes src and returns the value node of its key "v".
func value(t *testing.T, src string) *yaml.Node {
	t.Helper()
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(src), &doc); err != nil {
		t.Fatalf("%q: %v", src, err)
	}
	m := doc.Content[0]
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == "v" {
			return m.Content[i+1]
		}
	}
	t.Fatalf("%q has no key v", src)
	return nil
}

func TestKindDescribeValue(t *testing.T) {
	tests := []struct{ src, kind, describe, value string }{
		{"v: {a: 1}", "a mapping", "a mapping", "a mapping"},
		{"v: [1]", "a list", "a list", "a list"},
		{"v: many", "a string", `a string ("many")`, `"many"`},
		{"v: '3'", "a string", `a string ("3")`, `"3"`},
		{"v: 3", "a number", `a number ("3")`, `"3"`},
		{"v: 2.5", "a number", `a number ("2.5")`, `"2.5"`},
		{"v: true", "a boolean", `a boolean ("true")`, `"true"`},
		{"v: ~", "nothing", "nothing", "nothing"},
		{"v:", "nothing", "nothing", "nothing"},
		{"a: &x 1\nv: *x", "an alias", "an alias", "an alias"},
	}
	for _, tt := range tests {
		n := value(t, tt.src)
		if got := Kind(n); got != tt.kind {
			t.Errorf("Kind(%q) = %q, want %q", tt.src, got, tt.kind)
		}
		if got := Describe(n); got != tt.describe {
			t.Errorf("Describe(%q) = %q, want %q", tt.src, got, tt.describe)
		}
		if got := Value(n); got != tt.value {
			t.Errorf("Value(%q) = %q, want %q", tt.src, got, tt.value)
		}
	}
	if got := Kind(&yaml.Node{Kind: yaml.DocumentNode}); got != "a document" {
		t.Errorf("Kind(document) = %q", got)
	}
}

func TestResolve(t *testing.T) {
	n := value(t, "a: &x [1]\nv: *x")
	if got := Resolve(n); got.Kind != yaml.SequenceNode {
		t.Errorf("Resolve followed the alias to %s, want the list", Kind(got))
	}
	chain := &yaml.Node{Kind: yaml.AliasNode, Alias: n}
	if got := Resolve(chain); got.Kind != yaml.SequenceNode {
		t.Errorf("Resolve followed the chain to %s, want the list", Kind(got))
	}
	plain := value(t, "v: 1")
	if Resolve(plain) != plain {
		t.Error("Resolve changed a node that is no alias")
	}
	// A cycle cannot come from the decoder; the bound still ends it.
	loop := &yaml.Node{Kind: yaml.AliasNode}
	loop.Alias = loop
	if Resolve(loop) != loop {
		t.Error("Resolve of a cycle did not stop at the bound")
	}
}

func TestEntries(t *testing.T) {
	n := value(t, "v: {a: 1, b: 2, a: 3, [x]: 4, <<: {c: 5}, a: 6}")
	var keys []string
	var repeats []int // the column of the earlier key, 0 when none
	for e := range Entries(n) {
		keys = append(keys, e.Key.Value)
		col := 0
		if e.Repeats != nil {
			col = e.Repeats.Column
		}
		repeats = append(repeats, col)
	}
	wantKeys := []string{"a", "b", "a", "", "<<", "a"}
	wantRepeats := []int{0, 0, 5, 0, 0, 5}
	if strings.Join(keys, ",") != strings.Join(wantKeys, ",") {
		t.Errorf("keys %q, want %q", keys, wantKeys)
	}
	for i := range wantRepeats {
		if repeats[i] != wantRepeats[i] {
			t.Errorf("entry %d repeats the key at column %d, want %d", i, repeats[i], wantRepeats[i])
		}
	}
	count := 0
	for range Entries(n) {
		count++
		break
	}
	if count != 1 {
		t.Error("Entries went on after the loop stopped")
	}
}

func TestText(t *testing.T) {
	for src, want := range map[string]string{"v: x": "x", "v: 4": "4", "v: true": "true", "v: ''": ""} {
		if got, ok := Text(value(t, src)); !ok || got != want {
			t.Errorf("Text(%q) = %q, %v; want %q", src, got, ok, want)
		}
	}
	for _, src := range []string{"v: ~", "v: [x]", "v: {a: 1}"} {
		if _, ok := Text(value(t, src)); ok {
			t.Errorf("Text(%q) read a text", src)
		}
	}
}

func TestInt(t *testing.T) {
	for src, want := range map[string]int64{"v: 42": 42, "v: -7": -7, "v: 0x2a": 42, "v: 0o52": 42, "v: 1_000": 1000} {
		if got, err := Int(value(t, src)); err != nil || got != want {
			t.Errorf("Int(%q) = %d, %v; want %d", src, got, err, want)
		}
	}
	for src, want := range map[string]error{
		"v: '42'":                 ErrType,
		"v: 4.2":                  ErrType,
		"v: ~":                    ErrType,
		"v: [1]":                  ErrType,
		"v: 18446744073709551615": ErrRange,
	} {
		if _, err := Int(value(t, src)); !errors.Is(err, want) {
			t.Errorf("Int(%q) error %v, want %v", src, err, want)
		}
	}
}

func TestFloat(t *testing.T) {
	for src, want := range map[string]float64{"v: 2.5": 2.5, "v: 3": 3, "v: -1e3": -1000} {
		if got, ok := Float(value(t, src)); !ok || got != want {
			t.Errorf("Float(%q) = %v, %v; want %v", src, got, ok, want)
		}
	}
	if got, ok := Float(value(t, "v: .inf")); !ok || !math.IsInf(got, 1) {
		t.Errorf("Float(.inf) = %v, %v", got, ok)
	}
	for _, src := range []string{"v: '2.5'", "v: ~", "v: true", "v: !!float abc"} {
		if _, ok := Float(value(t, src)); ok {
			t.Errorf("Float(%q) read a number", src)
		}
	}
}

func TestBool(t *testing.T) {
	for src, want := range map[string]bool{"v: true": true, "v: False": false} {
		if got, ok := Bool(value(t, src)); !ok || got != want {
			t.Errorf("Bool(%q) = %v, %v; want %v", src, got, ok, want)
		}
	}
	for _, src := range []string{"v: yes", "v: 1", "v: 'true'", "v: ~"} {
		if _, ok := Bool(value(t, src)); ok {
			t.Errorf("Bool(%q) read a boolean", src)
		}
	}
}

func TestDocuments(t *testing.T) {
	doc, extra, err := Documents([]byte("# nothing\n"))
	if doc != nil || extra != nil || err != nil {
		t.Errorf("no document: %v %v %v", doc, extra, err)
	}
	doc, extra, err = Documents([]byte("a: 1\n"))
	if err != nil || extra != nil || doc == nil || doc.Content[0].Kind != yaml.MappingNode {
		t.Errorf("one document: %v %v %v", doc, extra, err)
	}
	doc, extra, err = Documents([]byte("a: 1\n---\nb: 2\n"))
	if err != nil || doc == nil || extra == nil || extra.Content[0].Line != 3 {
		t.Errorf("two documents: %v %v %v", doc, extra, err)
	}
	if _, _, err = Documents([]byte("a: 1\n---\nb: [\n")); err == nil {
		t.Error("a syntax error in the second document went unreported")
	}
	if _, _, err = Documents([]byte("a: [\n")); err == nil {
		t.Error("a syntax error in the first document went unreported")
	}
}

func TestSyntax(t *testing.T) {
	tests := []struct {
		src    string
		line   int
		msg    string
		parser bool
	}{
		{"a: 'open\n", 2, "found unexpected end of stream", false},
		{"a: 1\n\tb: 2\n", 2, "found a tab character that violates indentation", false},
		{"a: {\n", 1, "did not find expected node content", true},
	}
	for _, tt := range tests {
		_, _, err := Documents([]byte(tt.src))
		if err == nil {
			t.Fatalf("%q: no error", tt.src)
		}
		got := Syntax(err)
		if got.Line != tt.line || got.Msg != tt.msg || got.ParserProblem() != tt.parser {
			t.Errorf("Syntax(%q) = %+v (parser problem %v), want line %d %q (%v)", err, got, got.ParserProblem(), tt.line, tt.msg, tt.parser)
		}
	}
	if got := Syntax(errors.New("yaml: control characters are not allowed")); got != (SyntaxError{Msg: "control characters are not allowed"}) {
		t.Errorf("no line: %+v", got)
	}
	if got := Syntax(errors.New("not from yaml")); got != (SyntaxError{Msg: "not from yaml"}) {
		t.Errorf("foreign error: %+v", got)
	}
}

func TestBuildAndEncode(t *testing.T) {
	m := &yaml.Node{Kind: yaml.MappingNode}
	Add(m, "s", StrNode("true"))
	Add(m, "bad", StrNode("a\xffb"))
	Add(m, "i", IntNode(-3))
	Add(m, "f", FloatNode(0.05))
	Add(m, "b", BoolNode(true))
	Add(m, "t", TimeNode(time.Date(2026, 11, 24, 10, 15, 0, 0, time.UTC)))
	Add(m, "list", &yaml.Node{Kind: yaml.SequenceNode, Content: []*yaml.Node{IntNode(1)}})
	out, err := Encode(m)
	if err != nil {
		t.Fatal(err)
	}
	want := "s: \"true\"\nbad: a\uFFFDb\ni: -3\nf: 0.05\nb: true\nt: 2026-11-24T10:15:00Z\nlist:\n  - 1\n"
	if string(out) != want {
		t.Errorf("Encode:\n%s\nwant\n%s", out, want)
	}
	if _, err := Encode(&yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: "\xff"}); err == nil {
		t.Error("Encode took invalid UTF-8")
	}
}

// TestBytesNode checks that what BytesNode writes reads back byte for byte,
// for the contents that defeat a plain literal block.
func TestBytesNode(t *testing.T) {
	for _, b := range [][]byte{
		nil, []byte("plain"), []byte("two\nlines\n"), []byte("crlf\r\nline\r\n"), []byte("\tleading tab\n"),
		[]byte("trailing blanks  \nx"), []byte("nel\u0085ls\u2028ps\u2029bom\ufeff"), []byte("ctrl\x1b[0m\n"),
		{0xff, 0xfe, 0, 1, 2}, bytes.Repeat([]byte{0x80}, 200), []byte("null"), []byte("- dash"),
	} {
		m := &yaml.Node{Kind: yaml.MappingNode}
		Add(m, "v", BytesNode(b))
		out, err := Encode(m)
		if err != nil {
			t.Fatalf("%q: %v", b, err)
		}
		n := value(t, string(out))
		got := []byte(n.Value)
		if n.Tag == "!!binary" {
			if got, err = Binary(n); err != nil {
				t.Fatalf("%q: %v\n%s", b, err, out)
			}
		}
		if !bytes.Equal(got, b) {
			t.Errorf("%q came back as %q from\n%s", b, got, out)
		}
	}
	if _, err := Binary(&yaml.Node{Kind: yaml.ScalarNode, Tag: "!!binary", Value: "not base64!"}); err == nil {
		t.Error("Binary took text that is not base64")
	}
}

// TestRepeated: the first key written twice, at any depth, in document
// order; a merge key may repeat, and aliases are not followed.
func TestRepeated(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"a: 1\nb: 2\n", ""},
		{"a: 1\nb: {c: 1, c: 2}\na: 3\n", "2:11 first 2:5"},
		{"- x: 1\n- y: [{z: 1}, {z: 2, z: 3}]\n", "2:22 first 2:16"},
		{"base: &b {k: 1}\nuse:\n  <<: *b\n  <<: *b\n", ""},
	} {
		var doc yaml.Node
		if err := yaml.Unmarshal([]byte(tc.in), &doc); err != nil {
			t.Fatal(err)
		}
		got := ""
		if again, first := Repeated(&doc); again != nil {
			got = fmt.Sprintf("%d:%d first %d:%d", again.Line, again.Column, first.Line, first.Column)
		}
		if got != tc.want {
			t.Errorf("Repeated(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
