package benchmetrics

import (
	"os"
	"strings"
	"testing"
	"time"
)

func TestStatusBytes(t *testing.T) {
	const status = "Name:\tbench.test\nVmPeak:\t 2048000 kB\nVmHWM:\t  123456 kB\nVmRSS:\t    1024 kB\nThreads:\t4\nVmBad:\t12 pages\n"
	for _, c := range []struct {
		key  string
		want int64
	}{
		{"VmHWM", 123456 << 10},
		{"VmRSS", 1 << 20},
		{"VmPeak", 2048000 << 10},
		{"VmSwap", 0},
		{"Threads", 0},
		{"VmBad", 0},
		{"Vm", 0},
	} {
		if got := statusBytes(strings.NewReader(status), c.key); got != c.want {
			t.Errorf("statusBytes(%s) = %d, want %d", c.key, got, c.want)
		}
	}
}

func TestLiveProcess(t *testing.T) {
	start := CPUTime()
	for deadline := time.Now().Add(20 * time.Millisecond); time.Now().Before(deadline); {
	}
	if end := CPUTime(); end <= start {
		t.Errorf("CPU time did not advance over 20 ms of spinning: %v -> %v", start, end)
	}
	if _, err := os.Stat("/proc/self/status"); err != nil {
		t.Skip("no /proc/self/status:", err)
	}
	rss, peak := RSS(), PeakRSS()
	if rss <= 0 || peak < rss {
		t.Errorf("RSS %d, PeakRSS %d: want 0 < RSS <= PeakRSS", rss, peak)
	}
}
