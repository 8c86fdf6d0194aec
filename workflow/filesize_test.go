package workflow

import (
	"strings"
	"testing"
)

func TestParseSize(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
		bad  bool
	}{
		{"1000", 1000, false},
		{"10MB", 10_000_000, false},
		{"10 MB", 10_000_000, false},
		{"1.5KB", 1500, false},
		{"512KiB", 512 << 10, false},
		{"2GiB", 2 << 30, false},
		{"7B", 7, false},
		{"0", 0, true},
		{"-3MB", 0, true},
		{"ten", 0, true},
		{"10XB", 0, true},
		{"", 0, true},
	} {
		got, err := ParseSize(tc.in)
		if (err != nil) != tc.bad || got != tc.want {
			t.Errorf("ParseSize(%q) = %d, %v", tc.in, got, err)
		}
	}
}

func TestMaxFileSize(t *testing.T) {
	for _, tc := range []struct {
		name, yaml string
		limit      int64
		allow      []string
		err        string
	}{
		{"default", "", DefaultMaxFileSize, nil, ""},
		{"workflow", "max_file_size: 1MB\n", 1_000_000, nil, ""},
		{"step overrides", "max_file_size: {limit: 1MB, allow: [a/**]}\nSTEP    max_file_size: {limit: 2KB, allow: b.bin}\n", 2000, []string{"a/**", "b.bin"}, ""},
		{"bad size", "max_file_size: lots\n", 0, nil, `wf.yaml:2:16: max_file_size: want a positive size such as 10MB, 512KiB or 1000 (bytes), got "lots"`},
		{"unknown key", "max_file_size: {limt: 1MB}\n", 0, nil, "wf.yaml:2:17: unknown key \"limt\" in max_file_size"},
		{"step bad", "STEP    max_file_size: {limit: []}\n", 0, nil, `wf.yaml:5:28: step "a": max_file_size: limit: want a string, got a list`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			top, step, _ := strings.Cut(tc.yaml, "STEP")
			src := "version: 1\n" + top + "steps:\n  - id: a\n    run: 'true'\n" + step
			w, err := ParseWorkflow("wf.yaml", []byte(src), []string{"shell"})
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := w.MaxFileSizeFor(w.Steps[0])
			if got.Limit != tc.limit || strings.Join(got.Allow, ",") != strings.Join(tc.allow, ",") {
				t.Errorf("MaxFileSizeFor = %+v", got)
			}
		})
	}
}
