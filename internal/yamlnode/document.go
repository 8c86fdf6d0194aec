package yamlnode

import (
	"bytes"
	"errors"
	"io"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Documents decodes the first YAML document of data, and the second when
// there is one, which a format of one document reports. doc is nil when
// data holds no document at all (only blanks and comments). err is a syntax
// error of either document, as yaml.v3 reports it (see Syntax).
func Documents(data []byte) (doc, extra *yaml.Node, err error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var first yaml.Node
	if err := dec.Decode(&first); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil, nil
		}
		return nil, nil, err
	}
	var second yaml.Node
	switch err := dec.Decode(&second); {
	case errors.Is(err, io.EOF):
		return &first, nil, nil
	case err != nil:
		return nil, nil, err
	}
	return &first, &second, nil
}

// SyntaxError is a yaml.v3 syntax error taken apart: yaml.v3 gives its
// position only as a line in the text of the error, and no column.
type SyntaxError struct {
	// Line is the line yaml.v3 printed, 0 when it printed none. It is
	// 1-based for the scanner's problems and 0-based for the parser's
	// (see ParserProblem).
	Line int
	// Msg is the problem, without yaml.v3's "yaml: line N: " prefix.
	Msg string
}

// Syntax takes a yaml.v3 decoding error apart. An error without yaml.v3's
// "yaml: " prefix is kept whole as Msg.
func Syntax(err error) SyntaxError {
	msg, ok := strings.CutPrefix(err.Error(), "yaml: ")
	if !ok {
		return SyntaxError{Msg: err.Error()}
	}
	if rest, ok := strings.CutPrefix(msg, "line "); ok {
		if num, text, ok := strings.Cut(rest, ": "); ok {
			if line, err := strconv.Atoi(num); err == nil && line > 0 {
				return SyntaxError{Line: line, Msg: text}
			}
		}
	}
	return SyntaxError{Msg: msg}
}

// parserProblems are the messages of libyaml's parser, as opposed to its
// scanner; see yaml.v3's parserc.go.
var parserProblems = []string{
	"did not find expected <",
	"did not find expected node content",
	"did not find expected '-' indicator",
	"did not find expected key",
	"did not find expected ',' or",
	"found duplicate %",
	"found incompatible YAML document",
	"found undefined tag handle",
}

// ParserProblem reports whether the error comes from libyaml's parser,
// whose line yaml.v3 prints 0-based (it converts only the scanner's to
// 1-based).
func (e SyntaxError) ParserProblem() bool {
	for _, p := range parserProblems {
		if strings.HasPrefix(e.Msg, p) {
			return true
		}
	}
	return false
}
