package worker

import (
	"testing"

	"github.com/codemachine/codemachine/gitstate"
)

// TestCheckIDRoundTrip: an ID CheckID accepts reads back from a claim's
// trailer as itself, and every ID it refuses would read back as another
// (or as none), which is what made such a worker wait for itself.
func TestCheckIDRoundTrip(t *testing.T) {
	for _, id := range []string{"ci-runner-3", "ci runner 3", "host.example-42-a1b2c3", "Ω", "a ", " a", "a  b", "a\tb", "a\nb", " ", "a\x1b[31m"} {
		msg := gitstate.Message{Subject: "claim", Trailers: []gitstate.Trailer{{Key: gitstate.TrailerWorker, Value: id}}}
		parsed, err := gitstate.ParseMessage(msg.String())
		if err != nil {
			t.Fatal(err)
		}
		kept := parsed.Get(gitstate.TrailerWorker) == id
		err = CheckID(id)
		switch {
		case err == nil && !kept:
			t.Errorf("CheckID(%q) accepts an ID that reads back as %q", id, parsed.Get(gitstate.TrailerWorker))
		case err != nil && kept && id != "a\x1b[31m":
			t.Errorf("CheckID(%q) = %v, but the trailer keeps it", id, err)
		}
	}
	if err := CheckID(""); err != nil {
		t.Errorf("CheckID(\"\") (the default ID) = %v", err)
	}
	if CheckID("a\x1b[31m") == nil {
		t.Error("CheckID accepts an ID with an escape sequence")
	}
}
