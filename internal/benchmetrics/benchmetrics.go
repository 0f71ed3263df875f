// Package benchmetrics reads the figures the benchmarks report besides wall
// time. The benchmarks run on a shared VM, where the neighbours stretch wall
// time but inflate the process's own CPU time least, and the issues set
// targets for peak resident memory.
package benchmetrics

import (
	"bufio"
	"io"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// CPUTime is the user plus system CPU time of this process so far, or 0
// when the system does not report it.
func CPUTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// PeakRSS is the highest resident set size of this process so far (VmHWM),
// in bytes, or 0 when unknown.
func PeakRSS() int64 { return procStatus("VmHWM") }

// RSS is the current resident set size of this process (VmRSS), in bytes,
// or 0 when unknown.
func RSS() int64 { return procStatus("VmRSS") }

func procStatus(key string) int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	return statusBytes(f, key)
}

// statusBytes finds the line "key:  N kB" in a /proc/<pid>/status listing
// and returns N kB in bytes, or 0 when the line is missing or malformed.
func statusBytes(r io.Reader, key string) int64 {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		v, ok := strings.CutPrefix(sc.Text(), key+":")
		if !ok {
			continue
		}
		kb, ok := strings.CutSuffix(strings.TrimSpace(v), "kB")
		if !ok {
			return 0
		}
		n, err := strconv.ParseInt(strings.TrimSpace(kb), 10, 64)
		if err != nil || n < 0 {
			return 0
		}
		return n << 10
	}
	return 0
}
