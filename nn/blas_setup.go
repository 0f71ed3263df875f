package nn

/*
#cgo LDFLAGS: -lopenblas
char *openblas_get_corename(void);
char *openblas_get_config(void);
int openblas_get_num_threads(void);
*/
import "C"

import (
	"fmt"
	"os"
	"strings"
	"syscall"

	"golang.org/x/sys/cpu"
	"gonum.org/v1/netlib/blas/netlib"
	"gorgonia.org/gorgonia"
)

// Environment variables of the core-type re-execution. OpenBLAS reads
// coreTypeEnv once, when the library loads, so the only way to change its
// choice from inside the program is to start the program again.
const (
	coreTypeEnv = "OPENBLAS_CORETYPE"
	// reexecEnv marks a process started by EnsureBLAS (its value is the
	// core OpenBLAS chose before): it never re-executes again, whatever
	// OpenBLAS chose the second time.
	reexecEnv = "LORASTUDIO_BLAS_REEXEC"
	// threadTimeoutEnv is how long OpenBLAS's idle worker threads spin,
	// calling sched_yield, before they sleep: 2^n cycles, default n = 28
	// (a tenth of a second). A training step alternates matrix products
	// with our own kernels hundreds of times, and the spinning burnt 10% of
	// a 256 px step's CPU time, time the UI and the rest of the machine
	// could use. 2^16 cycles (tens of microseconds) still covers the gap
	// between back-to-back products: measured, the step takes as long as
	// with the default and 10% less CPU (2^4 was 3% slower).
	threadTimeoutEnv = "OPENBLAS_THREAD_TIMEOUT"
	threadTimeout    = "16"
)

// CPUFlags are the x86 features that decide which OpenBLAS kernels can run.
type CPUFlags struct {
	AVX2, FMA                             bool
	AVX512F, AVX512BW, AVX512DQ, AVX512VL bool
}

// String lists the flags present, lower case as in /proc/cpuinfo.
func (f CPUFlags) String() string {
	var s []string
	for _, x := range []struct {
		on   bool
		name string
	}{{f.AVX2, "avx2"}, {f.FMA, "fma"}, {f.AVX512F, "avx512f"}, {f.AVX512BW, "avx512bw"}, {f.AVX512DQ, "avx512dq"}, {f.AVX512VL, "avx512vl"}} {
		if x.on {
			s = append(s, x.name)
		}
	}
	if len(s) == 0 {
		return "none of avx2/avx512"
	}
	return strings.Join(s, " ")
}

// level is the best OpenBLAS kernel family the CPU (and OS, which x/sys/cpu
// checks through XGETBV) can run: 3 = AVX-512 (SkylakeX), 2 = AVX2 (Haswell),
// 0 = older.
func (f CPUFlags) level() int {
	switch {
	case f.AVX512F && f.AVX512BW && f.AVX512DQ && f.AVX512VL && f.AVX2 && f.FMA:
		return 3
	case f.AVX2 && f.FMA:
		return 2
	}
	return 0
}

func hostCPUFlags() CPUFlags {
	return CPUFlags{
		AVX2: cpu.X86.HasAVX2, FMA: cpu.X86.HasFMA,
		AVX512F: cpu.X86.HasAVX512F, AVX512BW: cpu.X86.HasAVX512BW,
		AVX512DQ: cpu.X86.HasAVX512DQ, AVX512VL: cpu.X86.HasAVX512VL,
	}
}

// coreLevel rates the x86-64 core names of OpenBLAS's DYNAMIC_ARCH builds by
// the kernel family they use (see CPUFlags.level). Unknown names report
// !known: an unknown name is more likely a newer core than a worse one.
func coreLevel(corename string) (level int, known bool) {
	switch strings.ToLower(corename) {
	case "prescott", "core2", "penryn", "dunnington", "nehalem", "atom",
		"opteron", "opteron_sse3", "barcelona", "bobcat":
		return 0, true
	case "sandybridge", "bulldozer", "piledriver", "steamroller", "excavator":
		return 1, true
	case "haswell", "zen":
		return 2, true
	case "skylakex", "cooperlake", "sapphirerapids":
		return 3, true
	}
	return 0, false
}

// betterCoreType decides whether OpenBLAS must be restarted with another core
// type: it returns the OPENBLAS_CORETYPE value to use, or "" to keep the
// current core. config is openblas_get_config(); env looks up an environment
// variable.
func betterCoreType(corename, config string, flags CPUFlags, env func(string) string) string {
	if env(coreTypeEnv) != "" || env(reexecEnv) != "" {
		return "" // the user's choice, or our own previous attempt
	}
	if !strings.Contains(config, "DYNAMIC_ARCH") {
		return "" // a library built for one core ignores OPENBLAS_CORETYPE
	}
	have, known := coreLevel(corename)
	if !known {
		return ""
	}
	switch want := flags.level(); {
	case want <= have:
		return ""
	case want == 3:
		return "SkylakeX"
	case want == 2:
		return "Haswell"
	}
	return ""
}

// EnsureBLAS makes OpenBLAS use the best kernels this CPU has, with worker
// threads that sleep when idle, and makes gorgonia use OpenBLAS. Debian's
// OpenBLAS falls back to its SSE3 "Prescott" kernels on CPU models it does
// not know (seen: an AVX-512 Xeon, 6x slower sgemm). OpenBLAS reads its
// settings from the environment when it loads, so when the library chose a
// worse core than the CPU supports, or the idle threads would spin (see
// threadTimeoutEnv), EnsureBLAS re-executes the program with the variables
// set; it never overrides a variable the user set. Call it first thing in
// main: the re-execution discards all process state. It returns normally
// when no restart is needed or the restart failed (reported on stderr: the
// program still works, slower).
func EnsureBLAS() {
	core := C.GoString(C.openblas_get_corename())
	config := C.GoString(C.openblas_get_config())
	if add := blasRestartEnv(core, config, hostCPUFlags(), os.Getenv); len(add) > 0 {
		env := append(os.Environ(), append(add, reexecEnv+"="+core)...)
		err := syscall.Exec("/proc/self/exe", os.Args, env)
		fmt.Fprintf(os.Stderr, "lorastudio: OpenBLAS chose %s kernels on a CPU with %s; restarting with %s failed: %v\n",
			core, hostCPUFlags(), strings.Join(add, " "), err)
	}
	gorgonia.Use(netlib.Implementation{})
}

// blasRestartEnv returns the variables ("NAME=value") EnsureBLAS must start
// the program again with, none when it runs as it should.
func blasRestartEnv(corename, config string, flags CPUFlags, env func(string) string) []string {
	if env(reexecEnv) != "" {
		return nil
	}
	var add []string
	if want := betterCoreType(corename, config, flags, env); want != "" {
		add = append(add, coreTypeEnv+"="+want)
	}
	if env(threadTimeoutEnv) == "" {
		add = append(add, threadTimeoutEnv+"="+threadTimeout)
	}
	return add
}

// BLASState describes the BLAS library in use.
type BLASState struct {
	CoreName string   // OpenBLAS kernel family, e.g. "SkylakeX"
	Config   string   // openblas_get_config(): version and build options
	Threads  int      // OpenBLAS worker threads
	CPU      CPUFlags // what the CPU supports
	// CoreType is OPENBLAS_CORETYPE as this process saw it; Restarted tells
	// whether EnsureBLAS set it, replacing the core named in RestartedFrom.
	CoreType      string
	Restarted     bool
	RestartedFrom string
	// ThreadTimeout is OPENBLAS_THREAD_TIMEOUT as this process saw it.
	ThreadTimeout string
}

// BLASInfo reports the BLAS library in use.
func BLASInfo() BLASState {
	core := C.GoString(C.openblas_get_corename())
	from := os.Getenv(reexecEnv)
	if strings.EqualFold(from, core) {
		from = "" // restarted for the thread setting only
	}
	return BLASState{
		CoreName:      core,
		Config:        strings.TrimSpace(C.GoString(C.openblas_get_config())),
		Threads:       int(C.openblas_get_num_threads()),
		CPU:           hostCPUFlags(),
		CoreType:      os.Getenv(coreTypeEnv),
		Restarted:     from != "",
		RestartedFrom: from,
		ThreadTimeout: os.Getenv(threadTimeoutEnv),
	}
}
