package main

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"time"

	"lorastudio/nn"
	"lorastudio/sd"
)

// runBench reports the BLAS setup and times the kernels that dominate a
// training step on the shapes of SD 1.x at 512x512.
func runBench(args []string) int {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	size := fs.Int("n", 1024, "sgemm matrix size (n x n times n x n)")
	dur := fs.Duration("time", 2*time.Second, "how long to measure each kernel")
	envOnly := fs.Bool("env", false, "print only the OpenBLAS settings the studio runs with, as NAME=value (for scripts running test binaries)")
	writeModel := fs.String("write-model", "", "write a full-size SD 1.5-shaped model with random weights (fp16 diffusers folder) to this folder, to time train and generate without real weights")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *writeModel != "" {
		start := time.Now()
		if err := sd.WriteRandomModel(*writeModel, sd.SD15Config(), 1, "F16"); err != nil {
			fmt.Fprintf(os.Stderr, "lorastudio bench: %v\n", err)
			return 1
		}
		fmt.Printf("wrote a random SD 1.5-shaped model to %s in %v; its images are noise, its timings are real\n", *writeModel, time.Since(start).Round(time.Second))
		return 0
	}
	if *envOnly {
		info := nn.BLASInfo()
		fmt.Printf("OPENBLAS_CORETYPE=%s OPENBLAS_THREAD_TIMEOUT=%s\n", info.CoreName, info.ThreadTimeout)
		return 0
	}
	if *size < 1 || *size > 16384 {
		fmt.Fprintf(os.Stderr, "lorastudio bench: -n %d out of range 1..16384\n", *size)
		return 2
	}

	info := nn.BLASInfo()
	core := info.CoreName
	switch {
	case info.Restarted:
		core += fmt.Sprintf(" (OpenBLAS chose %s; lorastudio restarted with OPENBLAS_CORETYPE=%s)", info.RestartedFrom, info.CoreType)
	case info.CoreType != "":
		core += fmt.Sprintf(" (OPENBLAS_CORETYPE=%s set by the user)", info.CoreType)
	}
	fmt.Printf("BLAS core:  %s\n", core)
	fmt.Printf("threads:    %d (idle threads spin 2^%s cycles: OPENBLAS_THREAD_TIMEOUT)\n", info.Threads, info.ThreadTimeout)
	fmt.Printf("CPU flags:  %s\n", info.CPU)
	fmt.Printf("library:    %s\n", info.Config)

	rng := rand.New(rand.NewPCG(1, 1))
	random := func(n int) []float32 {
		x := make([]float32, n)
		for i := range x {
			x[i] = rng.Float32() - 0.5
		}
		return x
	}

	n := *size
	a, b, c := random(n*n), random(n*n), make([]float32, n*n)
	t := measure(*dur, func() { nn.Sgemm(false, false, n, n, n, 1, a, n, b, n, 0, c, n) })
	report(fmt.Sprintf("sgemm %dx%dx%d", n, n, n), t, 2*float64(n)*float64(n)*float64(n))

	// SD's most frequent large convolution: 320 channels at 64x64 latents.
	conv := nn.Conv2d{Cin: 320, Cout: 320, KH: 3, KW: 3, Stride: 1, PadTop: 1, PadBottom: 1, PadLeft: 1, PadRight: 1}
	var ws nn.Workspace
	x, w, bias := random(320*64*64), random(320*320*9), random(320)
	y := make([]float32, 320*64*64)
	t = measure(*dur, func() { conv.Forward(&ws, y, x, w, bias, 1, 64, 64) })
	report("conv2d 1x320x64x64 3x3 forward", t, 2*320*320*9*64*64)

	mean, rstd := make([]float32, 32), make([]float32, 32)
	gamma, beta := random(320), random(320)
	t = measure(*dur, func() { nn.GroupNormForward(y, mean, rstd, x, gamma, beta, 1, 320, 64*64, 32, 1e-5, false) })
	report("groupnorm 1x320x64x64 forward", t, 0)
	return 0
}

// measure runs fn a few times to warm up (page in buffers, start OpenBLAS's
// threads), then for about dur, and returns the sorted run times.
func measure(dur time.Duration, fn func()) []time.Duration {
	for range 2 {
		fn()
	}
	var times []time.Duration
	for end := time.Now().Add(dur); len(times) < 5 || time.Now().Before(end); {
		start := time.Now()
		fn()
		times = append(times, time.Since(start))
	}
	slices.Sort(times)
	return times
}

// report prints the median and best time, and GFLOP/s when flops > 0. The
// best run is the machine's capability; the median shows interference from
// other load.
func report(name string, times []time.Duration, flops float64) {
	median, best := times[len(times)/2], times[0]
	line := fmt.Sprintf("%-34s median %9v  best %9v", name+":", median.Round(time.Microsecond), best.Round(time.Microsecond))
	if flops > 0 {
		line += fmt.Sprintf("  %6.1f GFLOP/s median, %6.1f best", flops/median.Seconds()/1e9, flops/best.Seconds()/1e9)
	}
	fmt.Printf("%s  (%d runs)\n", line, len(times))
}
