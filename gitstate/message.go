package gitstate

import (
	"errors"
	"strings"

	"github.com/codemachine/codemachine/internal/lazyre"
)

// The trailer keys of a step commit.
const (
	TrailerStep        = "Codemachine-Step"
	TrailerTask        = "Codemachine-Task"
	TrailerEngine      = "Codemachine-Engine"
	TrailerModel       = "Codemachine-Model"
	TrailerSession     = "Codemachine-Session"
	TrailerTokensIn    = "Codemachine-Tokens-In"
	TrailerTokensOut   = "Codemachine-Tokens-Out"
	TrailerCostUSD     = "Codemachine-Cost-USD"
	TrailerDuration    = "Codemachine-Duration"
	TrailerAttempts    = "Codemachine-Attempts"
	TrailerFingerprint = "Codemachine-Fingerprint"
	TrailerRun         = "Codemachine-Run"
	// TrailerIteration is the run of an until: loop a commit is (1, 2, ...).
	TrailerIteration = "Codemachine-Iteration"
	// TrailerBy says who did an agent step: "agent" (the agent alone) or
	// "person in <engine>'s UI" (an interactive step, codemachine open).
	TrailerBy = "Codemachine-By"
	// TrailerReview records a review's verdict and who gave it:
	// "approved by reviewer agent NAME", "rejected by Alice", ...
	TrailerReview = "Codemachine-Review"
	// TrailerReviewRound numbers a reviewer agent's rejections of one
	// step (or task) in a row, on the commits of their feedback.
	TrailerReviewRound = "Codemachine-Review-Round"
	// TrailerReviewEngine and the four after it record a reviewer agent's
	// run on the commit that carries its verdict (the landed commit, a
	// rejection's feedback commit, or the review commit a person takes
	// over): its engine, model, tokens and cost, as a step commit's own
	// trailers record the step's.
	TrailerReviewEngine    = "Codemachine-Review-Engine"
	TrailerReviewModel     = "Codemachine-Review-Model"
	TrailerReviewTokensIn  = "Codemachine-Review-Tokens-In"
	TrailerReviewTokensOut = "Codemachine-Review-Tokens-Out"
	TrailerReviewCostUSD   = "Codemachine-Review-Cost-USD"
)

// Message is a commit message: a one-line subject, a free-form body and a
// trailer block.
type Message struct {
	Subject  string
	Body     string
	Trailers []Trailer
}

// dividerLine is what git interpret-trailers takes for the start of a patch
// ("---" followed by white space or the end of the line): everything after
// it would be ignored when git looks for trailers.
var dividerLine = lazyre.New(`^---(\s|$)`)

// String renders the message the way git interpret-trailers writes one:
// subject, blank line, body, blank line, trailer block. Values are folded
// onto one line. A body line that git would take for a patch divider
// ("---") gets one leading space, which Markdown renders the same, so that
// git still finds the trailers.
func (m Message) String() string {
	var b strings.Builder
	b.WriteString(escapeDivider(oneLineText(m.Subject)))
	b.WriteString("\n")
	if body := strings.Trim(m.Body, "\n"); strings.TrimSpace(body) != "" {
		b.WriteString("\n")
		for line := range strings.SplitSeq(body, "\n") {
			b.WriteString(escapeDivider(strings.TrimRight(line, " \t\r")))
			b.WriteString("\n")
		}
	}
	if len(m.Trailers) > 0 {
		b.WriteString("\n")
		for _, t := range m.Trailers {
			b.WriteString(trailerKey(t.Key))
			b.WriteString(": ")
			b.WriteString(oneLineText(t.Value))
			b.WriteString("\n")
		}
	}
	return b.String()
}

func escapeDivider(line string) string {
	if dividerLine().MatchString(line) {
		return " " + line
	}
	return line
}

// oneLineText joins the lines of s with single spaces.
func oneLineText(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// trailerKey keeps only the characters git accepts in a trailer key.
func trailerKey(k string) string {
	k = strings.Map(func(r rune) rune {
		if r == '-' || r >= '0' && r <= '9' || r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' {
			return r
		}
		return '-'
	}, strings.TrimSpace(k))
	if k == "" {
		return "X"
	}
	return k
}

// Get returns the value of the first trailer named key (compared without
// regard to case, as git does), "" when there is none.
func (m Message) Get(key string) string {
	for _, t := range m.Trailers {
		if strings.EqualFold(t.Key, key) {
			return t.Value
		}
	}
	return ""
}

// ParseMessage splits a commit message into subject (its first paragraph,
// joined onto one line), body, and trailers: the last paragraph, when it is
// not the subject and every line is "Key: value" (lines starting with white
// space continue the previous value, as in git). Comment-free, carriage
// return-free messages are what codemachine writes; others parse as well as
// they can. Only an empty message is an error.
func ParseMessage(msg string) (Message, error) {
	msg = strings.ReplaceAll(msg, "\r\n", "\n")
	if strings.TrimSpace(msg) == "" {
		return Message{}, errors.New("empty commit message")
	}
	paras := splitParagraphs(msg)
	var m Message
	m.Subject = oneLineText(strings.Join(paras[0], "\n"))
	paras = paras[1:]
	if len(paras) > 0 {
		if ts, ok := parseTrailers(paras[len(paras)-1]); ok {
			m.Trailers = ts
			paras = paras[:len(paras)-1]
		}
	}
	var body []string
	for _, p := range paras {
		body = append(body, strings.Join(p, "\n"))
	}
	m.Body = strings.Join(body, "\n\n")
	return m, nil
}

// splitParagraphs splits text at blank lines; runs of blank lines count as
// one separator and leading ones are dropped.
func splitParagraphs(s string) [][]string {
	var paras [][]string
	var cur []string
	for line := range strings.SplitSeq(strings.TrimRight(s, "\n"), "\n") {
		if strings.TrimSpace(line) == "" {
			if cur != nil {
				paras = append(paras, cur)
				cur = nil
			}
			continue
		}
		cur = append(cur, line)
	}
	if cur != nil {
		paras = append(paras, cur)
	}
	return paras
}

func parseTrailers(lines []string) ([]Trailer, bool) {
	var ts []Trailer
	for _, line := range lines {
		if (line[0] == ' ' || line[0] == '\t') && len(ts) > 0 {
			ts[len(ts)-1].Value += " " + strings.TrimSpace(line)
			continue
		}
		key, value, ok := splitTrailer(line)
		if !ok {
			return nil, false
		}
		ts = append(ts, Trailer{Key: key, Value: strings.TrimSpace(value)})
	}
	return ts, len(ts) > 0
}

// splitTrailer splits a "Key: value" line as git recognizes one: the key
// is letters, digits and dashes, starting with a letter or a digit, and is
// followed by a colon and at most one space that is not the value's. It
// matches what the pattern ^([A-Za-z0-9][A-Za-z0-9-]*): ?(.*)$ matches
// (TestSplitTrailerAsPattern), without a regular expression: a log parses
// the trailers of every commit it shows, and the pattern was most of it.
func splitTrailer(line string) (key, value string, ok bool) {
	i := 0
	for i < len(line) && (isAlnum(line[i]) || i > 0 && line[i] == '-') {
		i++
	}
	if i == 0 || i == len(line) || line[i] != ':' {
		return "", "", false
	}
	value = strings.TrimPrefix(line[i+1:], " ")
	if strings.IndexByte(value, '\n') >= 0 {
		return "", "", false // the pattern's . and $ stop at a newline
	}
	return line[:i], value, true
}

func isAlnum(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z'
}
