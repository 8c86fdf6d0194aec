package yamlnode

import (
	"bytes"
	"encoding/base64"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
)

// StrNode is a string scalar. Invalid UTF-8, the one thing the encoder
// refuses in a scalar, is replaced by U+FFFD: a format that must keep every
// byte uses BytesNode.
func StrNode(s string) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: strings.ToValidUTF8(s, "\uFFFD")}
}

// IntNode is a whole number, in decimal.
func IntNode(v int64) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!int", Value: strconv.FormatInt(v, 10)}
}

// FloatNode is a number in decimal notation with as many digits as it
// takes to read back the same float64.
func FloatNode(v float64) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!float", Value: strconv.FormatFloat(v, 'f', -1, 64)}
}

// BoolNode is true or false.
func BoolNode(v bool) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!bool", Value: strconv.FormatBool(v)}
}

// TimeNode is a timestamp in RFC 3339 (to the second, in t's zone).
func TimeNode(t time.Time) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!timestamp", Value: t.Format(time.RFC3339)}
}

// BytesNode is the scalar that holds b exactly: a literal block for text
// where that keeps every byte, a double-quoted string with escapes where it
// would not (CR, a leading tab, Unicode line breaks), and base64 !!binary
// (read back with Binary) for bytes that are not UTF-8.
func BytesNode(b []byte) *yaml.Node {
	if !utf8.Valid(b) {
		enc := base64.StdEncoding.EncodeToString(b)
		var lines strings.Builder
		for len(enc) > 76 {
			lines.WriteString(enc[:76] + "\n")
			enc = enc[76:]
		}
		lines.WriteString(enc + "\n")
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!binary", Value: lines.String(), Style: yaml.LiteralStyle}
	}
	n := &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: string(b)}
	switch {
	case len(b) == 0:
	case bytes.ContainsAny(b, "\r\u0085\u2028\u2029\ufeff"):
		// YAML reads these as line breaks (or a BOM) and would not give
		// them back from a literal block; escapes keep them.
		n.Style = yaml.DoubleQuotedStyle
	case b[0] == '\t':
		// The encoder writes no indentation indicator for a literal
		// block whose first line starts with a tab, and the decoder then
		// rejects the tab as indentation.
		n.Style = yaml.DoubleQuotedStyle
	case bytes.IndexByte(b, '\n') >= 0:
		// The encoder falls back to double quotes by itself where a
		// literal block cannot hold the text (trailing blanks, control
		// characters).
		n.Style = yaml.LiteralStyle
	}
	return n
}

// Add appends key: val to mapping m.
func Add(m *yaml.Node, key string, val *yaml.Node) {
	m.Content = append(m.Content, StrNode(key), val)
}

// Encode renders a node tree as YAML indented by two spaces, the layout of
// every file codemachine writes. The encoder fails only on a malformed tree
// or invalid UTF-8; its error is returned as it is, for the caller to say
// what it was writing.
func Encode(n *yaml.Node) ([]byte, error) {
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(n); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
