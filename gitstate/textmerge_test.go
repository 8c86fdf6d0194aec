package gitstate

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestMergeText(t *testing.T) {
	_, r := newRepo(t, nil)
	base := []byte("one\ntwo\nthree\nfour\n")
	tests := []struct {
		name         string
		ours, theirs string
		want         string
		conflict     bool
	}{
		{"apart", "ONE\ntwo\nthree\nfour\n", "one\ntwo\nthree\nFOUR\n", "ONE\ntwo\nthree\nFOUR\n", false},
		{"same change", "one\nTWO\nthree\nfour\n", "one\nTWO\nthree\nfour\n", "one\nTWO\nthree\nfour\n", false},
		{"overlap", "one\nTWO\nthree\nfour\n", "one\n2\nthree\nfour\n", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := r.MergeText(t.Context(), base, []byte(tt.ours), []byte(tt.theirs))
			if tt.conflict {
				if !errors.Is(err, ErrTextConflict) {
					t.Fatalf("MergeText = %q, %v; want ErrTextConflict", got, err)
				}
				return
			}
			if err != nil || string(got) != tt.want {
				t.Fatalf("MergeText = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
	// The texts' files are gone afterwards.
	if entries, err := os.ReadDir(filepath.Join(r.LocalDir(), "tmp")); err != nil || len(entries) != 0 {
		t.Errorf("left in tmp: %v, %v", entries, err)
	}
}
