package main

import (
	"bytes"
	"strings"

	"github.com/charmbracelet/x/ansi"

	"github.com/codemachine/codemachine/orchestrator"
)

// table lays out rows of cells in columns two spaces apart, each as wide
// as its widest cell in terminal columns: escape sequences (colors) take
// none and a CJK character or an emoji two, where text/tabwriter counts
// bytes of the one and runes of the other. The last cell of a row is not
// padded, so no line ends in spaces.
type table struct {
	rows [][]string
}

// cell is text read from the repository (a commit's subject or trailers,
// state.yaml's records), made fit for a cell: what would drive the
// terminal removed (orchestrator.Printable), and on one line (its line
// breaks and tabs spaces), so that a crafted value can neither rewrite the
// screen nor break the table.
func cell(s string) string {
	return strings.TrimSpace(lineBreaks.Replace(orchestrator.Printable(s)))
}

var lineBreaks = strings.NewReplacer("\r\n", " ", "\n", " ", "\r", " ", "\t", " ")

// cells is each of values made a cell, joined by sep.
func cells(values []string, sep string) string {
	out := make([]string, len(values))
	for i, v := range values {
		out[i] = cell(v)
	}
	return strings.Join(out, sep)
}

// add appends a row.
func (t *table) add(cells ...string) {
	t.rows = append(t.rows, cells)
}

// bytes renders the table, a line per row.
func (t *table) bytes() []byte {
	var widths []int
	for _, row := range t.rows {
		for i, c := range row {
			if i == len(widths) {
				widths = append(widths, 0)
			}
			widths[i] = max(widths[i], cellWidth(c))
		}
	}
	var b bytes.Buffer
	for _, row := range t.rows {
		var line strings.Builder
		for i, c := range row {
			line.WriteString(c)
			if i < len(row)-1 {
				line.WriteString(strings.Repeat(" ", widths[i]-cellWidth(c)+2))
			}
		}
		b.WriteString(strings.TrimRight(line.String(), " "))
		b.WriteByte('\n')
	}
	return b.Bytes()
}

// cellWidth is c's width in terminal columns: its length when it is
// printable ASCII, as most cells are (ids, states, hashes, numbers), else
// what ansi.StringWidth counts. That one steps through c by grapheme
// clusters, which for a status of a hundred steps was about 1% of its CPU
// time.
func cellWidth(c string) int {
	for i := 0; i < len(c); i++ {
		if c[i] < 0x20 || c[i] > 0x7e {
			return ansi.StringWidth(c)
		}
	}
	return len(c)
}
