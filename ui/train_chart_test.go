package ui

import (
	"strings"
	"testing"
)

func TestNiceTicks(t *testing.T) {
	tests := []struct {
		min, max float64
		n        int
		want     []string
	}{
		{0, 1.6, 5, []string{"0", "0.5", "1.0", "1.5"}},
		{0, 300, 8, []string{"0", "50", "100", "150", "200", "250", "300"}},
		{0, 1.15e-4, 2, []string{"0", "1e-04"}},
	}
	for _, tt := range tests {
		var got []string
		for _, tk := range (niceTicks{n: tt.n}).Ticks(tt.min, tt.max) {
			got = append(got, tk.Label)
		}
		if len(got) != len(tt.want) {
			t.Errorf("ticks(%v, %v) = %q, want %q", tt.min, tt.max, got, tt.want)
			continue
		}
		for i := range got {
			if got[i] != tt.want[i] {
				t.Errorf("ticks(%v, %v) = %q, want %q", tt.min, tt.max, got, tt.want)
				break
			}
		}
	}
	var labels []string
	for _, tk := range (logTicks{}).Ticks(0.04, 0.3) {
		if tk.Label != "" {
			labels = append(labels, tk.Label)
		}
	}
	if want := "0.05 0.1 0.2"; strings.Join(labels, " ") != want {
		t.Errorf("log ticks over 0.04..0.3: %q, want %q", labels, want)
	}
}
