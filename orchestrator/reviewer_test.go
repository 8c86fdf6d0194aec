package orchestrator

import (
	"flag"
	"os"
	"path/filepath"
	"testing"
)

var updateGolden = flag.Bool("update", false, "rewrite the golden files under testdata")

// TestReviewBriefGolden pins what a reviewer agent is told: its own body,
// what the step was asked, the diff, and the verdict's format.
func TestReviewBriefGolden(t *testing.T) {
	tests := []struct {
		name string
		data reviewBriefData
	}{
		{"agent-step", reviewBriefData{
			Body:  "You review Go code.\n",
			Key:   "impl/T2",
			Asked: "Implement the parser.\n\nTask T2: parse numbers.\n",
			Diff: "diff --git a/num.go b/num.go\nnew file mode 100644\n--- /dev/null\n+++ b/num.go\n@@ -0,0 +1 @@\n" +
				"+package num\n",
			Round: 2, Rounds: 3,
		}},
		{"run-step-no-change", reviewBriefData{
			Body: "You review changes.", Key: "gen", Asked: "The step ran the command:\n\n    make gen\n",
			Round: 1, Rounds: 1,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := reviewBrief(tt.data)
			file := filepath.Join("testdata", "review-brief-"+tt.name+".golden")
			if *updateGolden {
				if err := os.WriteFile(file, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			if got != string(want) {
				t.Fatalf("%s differs (go test -update rewrites it):\n--- got ---\n%s\n--- want ---\n%s", file, got, want)
			}
		})
	}
}
