package trainer

import (
	"fmt"
	"math"
)

// polynomialEndLR is the learning rate the polynomial schedule decays to
// (transformers' get_polynomial_decay_schedule_with_warmup lr_end).
const polynomialEndLR = 1e-7

// Schedule is a learning-rate schedule as transformers' get_scheduler (and
// diffusers', which sd-scripts calls) defines it: the rate of an optimizer
// step is its base rate times Factor(step), where step counts the steps
// already taken (0 for the first), as torch's LambdaLR applies it.
type Schedule struct {
	Name    string
	Warmup  int     // warmup steps
	Total   int     // training steps
	Cycles  int     // cosine_with_restarts: hard restarts
	Power   float64 // polynomial: exponent
	InitLR  float64 // polynomial: the optimizer's default rate (learning_rate)
	factors func(step int) float64
}

// NewSchedule builds the named schedule: constant, constant_with_warmup,
// cosine, cosine_with_restarts, linear or polynomial.
func NewSchedule(name string, warmup, total, cycles int, power, initLR float64) (*Schedule, error) {
	if warmup < 0 || total < 0 {
		return nil, fmt.Errorf("lr schedule %s: %d warmup and %d total steps", name, warmup, total)
	}
	s := &Schedule{Name: name, Warmup: warmup, Total: total, Cycles: cycles, Power: power, InitLR: initLR}
	w := float64(warmup)
	warm := func(step int) (float64, bool) {
		if step < warmup {
			return float64(step) / math.Max(1, w), true
		}
		return 0, false
	}
	progress := func(step int) float64 {
		return float64(step-warmup) / math.Max(1, float64(total-warmup))
	}
	switch name {
	case "constant":
		if warmup != 0 {
			return nil, fmt.Errorf("lr schedule constant: no warmup allowed (%d steps); use constant_with_warmup", warmup)
		}
		s.factors = func(int) float64 { return 1 }
	case "constant_with_warmup":
		s.factors = func(step int) float64 {
			if f, ok := warm(step); ok {
				return f
			}
			return 1
		}
	case "linear":
		s.factors = func(step int) float64 {
			if f, ok := warm(step); ok {
				return f
			}
			return math.Max(0, float64(total-step)/math.Max(1, float64(total-warmup)))
		}
	case "cosine":
		// transformers' default num_cycles 0.5: half a cosine wave to zero.
		s.factors = func(step int) float64 {
			if f, ok := warm(step); ok {
				return f
			}
			return math.Max(0, 0.5*(1+math.Cos(math.Pi*0.5*2*progress(step))))
		}
	case "cosine_with_restarts":
		if cycles < 1 {
			return nil, fmt.Errorf("lr schedule cosine_with_restarts: %d cycles", cycles)
		}
		s.factors = func(step int) float64 {
			if f, ok := warm(step); ok {
				return f
			}
			p := progress(step)
			if p >= 1 {
				return 0
			}
			return math.Max(0, 0.5*(1+math.Cos(math.Pi*math.Mod(float64(cycles)*p, 1))))
		}
	case "polynomial":
		if !(initLR > polynomialEndLR) {
			return nil, fmt.Errorf("lr schedule polynomial: learning rate %v must be above the end rate %v", initLR, polynomialEndLR)
		}
		s.factors = func(step int) float64 {
			if f, ok := warm(step); ok {
				return f
			}
			if step > total {
				return polynomialEndLR / initLR
			}
			lrRange := initLR - polynomialEndLR
			decaySteps := math.Max(1, float64(total-warmup))
			remaining := 1 - float64(step-warmup)/decaySteps
			return (lrRange*math.Pow(remaining, power) + polynomialEndLR) / initLR
		}
	default:
		return nil, fmt.Errorf("lr schedule %q: want one of %v", name, Schedulers)
	}
	return s, nil
}

// Factor is the multiplier of the base learning rate for the step with
// index step (0-based).
func (s *Schedule) Factor(step int) float64 { return s.factors(step) }

// Schedule builds c's schedule for a run of total optimizer steps.
func (c *Config) Schedule(total int) (*Schedule, error) {
	return NewSchedule(c.LRScheduler, c.LRWarmup.StepsOf(total), total, c.LRSchedulerCycles, c.LRSchedulerPower, c.LearningRate)
}
