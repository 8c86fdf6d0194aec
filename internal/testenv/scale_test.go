package testenv

import (
	"testing"
	"time"
)

func TestScale(t *testing.T) {
	for _, tc := range []struct {
		env  string
		want time.Duration
	}{
		{"", 2 * time.Second},
		{"3", 6 * time.Second},
		{"0.5", time.Second},
		{"0", 2 * time.Second},
		{"-4", 2 * time.Second},
		{"slow", 2 * time.Second},
	} {
		t.Setenv(ScaleEnv, tc.env)
		if got := Scale(2 * time.Second); got != tc.want {
			t.Errorf("%s=%q: Scale(2s) = %v, want %v", ScaleEnv, tc.env, got, tc.want)
		}
	}
}
