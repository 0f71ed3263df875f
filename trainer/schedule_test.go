package trainer

import (
	"math"
	"testing"
)

// The expected factors are worked out by hand from transformers'
// optimization.py formulas, for 10 warmup steps out of 100.
func TestScheduleFactors(t *testing.T) {
	type point struct {
		step int
		want float64
	}
	tests := []struct {
		name   string
		warmup int
		cycles int
		power  float64
		points []point
	}{
		{"constant", 0, 1, 1, []point{{0, 1}, {50, 1}, {100, 1}, {1000, 1}}},
		{"constant_with_warmup", 10, 1, 1, []point{{0, 0}, {1, 0.1}, {5, 0.5}, {10, 1}, {99, 1}, {500, 1}}},
		{"linear", 10, 1, 1, []point{{0, 0}, {5, 0.5}, {10, 1}, {55, 0.5}, {91, 0.1}, {100, 0}, {120, 0}}},
		// Past the end transformers' cosine rises again (progress is not clamped).
		{"cosine", 10, 1, 1, []point{{0, 0}, {5, 0.5}, {10, 1}, {40, 0.75}, {55, 0.5}, {70, 0.25}, {100, 0}, {150, 0.5 * (1 + math.Cos(math.Pi*140/90))}}},
		{"cosine_with_restarts", 10, 3, 1, []point{{5, 0.5}, {10, 1}, {16, 0.5 * (1 + math.Cos(0.2*math.Pi))}, {25, 0.5}, {85, 0.5}, {100, 0}, {130, 0}}},
		// polynomial, power 2, lr_init 1e-3, lr_end 1e-7:
		// (lr_range * remaining^2 + lr_end) / lr_init.
		{"polynomial", 10, 1, 2, []point{{5, 0.5}, {10, 1}, {55, (0.0009999*0.25 + 1e-7) / 1e-3}, {100, 1e-4}, {150, 1e-4}}},
		{"polynomial", 0, 1, 1, []point{{0, 1}, {50, (0.0009999*0.5 + 1e-7) / 1e-3}}},
	}
	for _, tt := range tests {
		s, err := NewSchedule(tt.name, tt.warmup, 100, tt.cycles, tt.power, 1e-3)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		for _, p := range tt.points {
			if got := s.Factor(p.step); math.Abs(got-p.want) > 1e-12 {
				t.Errorf("%s(warmup %d) step %d: %.15g, want %.15g", tt.name, tt.warmup, p.step, got, p.want)
			}
		}
	}
}

func TestScheduleErrors(t *testing.T) {
	tests := []struct {
		name           string
		warmup, cycles int
		initLR         float64
	}{
		{"constant", 5, 1, 1e-4},  // sd-scripts refuses warmup for constant
		{"adafactor", 0, 1, 1e-4}, // unknown
		{"cosine_with_restarts", 0, 0, 1e-4},
		{"polynomial", 0, 1, 1e-8}, // below lr_end
		{"linear", -1, 1, 1e-4},
	}
	for _, tt := range tests {
		if _, err := NewSchedule(tt.name, tt.warmup, 100, tt.cycles, 1, tt.initLR); err == nil {
			t.Errorf("%s warmup %d cycles %d lr %v: no error", tt.name, tt.warmup, tt.cycles, tt.initLR)
		}
	}
}

func TestConfigSchedule(t *testing.T) {
	c := Defaults() // cosine, 10% warmup
	s, err := c.Schedule(1600)
	if err != nil {
		t.Fatal(err)
	}
	if s.Warmup != 160 || s.Factor(0) != 0 || s.Factor(160) != 1 {
		t.Errorf("warmup %d, factor(0) %v, factor(160) %v", s.Warmup, s.Factor(0), s.Factor(160))
	}
	c.LRWarmup = Warmup{Ratio: 0.15}
	if s, _ := c.Schedule(99); s.Warmup != 14 { // int(0.15*99) = int(14.85)
		t.Errorf("ratio warmup of 99 steps: %d, want 14", s.Warmup)
	}
}
