package main

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"time"

	"lorastudio/nn"
)

// runBench reports the BLAS setup and measures single-precision matrix
// multiplication, the operation that dominates training time.
func runBench(args []string) int {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	size := fs.Int("n", 1024, "sgemm matrix size (n x n times n x n)")
	dur := fs.Duration("time", 2*time.Second, "how long to measure")
	if err := fs.Parse(args); err != nil {
		return 2
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
	fmt.Printf("threads:    %d\n", info.Threads)
	fmt.Printf("CPU flags:  %s\n", info.CPU)
	fmt.Printf("library:    %s\n", info.Config)

	n := *size
	rng := rand.New(rand.NewPCG(1, 1))
	a, b, c := make([]float32, n*n), make([]float32, n*n), make([]float32, n*n)
	for i := range a {
		a[i], b[i] = rng.Float32()-0.5, rng.Float32()-0.5
	}
	gemm := func() time.Duration {
		start := time.Now()
		nn.Sgemm(false, false, n, n, n, 1, a, n, b, n, 0, c, n)
		return time.Since(start)
	}
	for range 3 {
		gemm() // page in the buffers and start OpenBLAS's threads
	}
	var times []time.Duration
	for end := time.Now().Add(*dur); len(times) < 5 || time.Now().Before(end); {
		times = append(times, gemm())
	}
	slices.Sort(times)
	flops := 2 * float64(n) * float64(n) * float64(n)
	gflops := func(d time.Duration) float64 { return flops / d.Seconds() / 1e9 }
	median := times[len(times)/2]
	fmt.Printf("sgemm %dx%dx%d: %.1f GFLOP/s median (%v), %.1f GFLOP/s best (%v), %d runs\n",
		n, n, n, gflops(median), median.Round(time.Microsecond), gflops(times[0]), times[0].Round(time.Microsecond), len(times))
	return 0
}
