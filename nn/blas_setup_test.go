package nn

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
)

func TestBetterCoreType(t *testing.T) {
	avx512 := CPUFlags{AVX2: true, FMA: true, AVX512F: true, AVX512BW: true, AVX512DQ: true, AVX512VL: true}
	avx2 := CPUFlags{AVX2: true, FMA: true}
	xeonPhi := CPUFlags{AVX2: true, FMA: true, AVX512F: true} // AVX-512F without BW/DQ/VL: no SkylakeX kernels
	cases := []struct {
		name  string
		core  string
		flags CPUFlags
		env   map[string]string
		want  string
		fixed bool // a library built for one core, without DYNAMIC_ARCH
	}{
		{"prescott on avx512", "Prescott", avx512, nil, "SkylakeX", false},
		{"core2 on avx512", "Core2", avx512, nil, "SkylakeX", false},
		{"nehalem on avx512", "Nehalem", avx512, nil, "SkylakeX", false},
		{"sandybridge on avx512", "Sandybridge", avx512, nil, "SkylakeX", false},
		{"haswell on avx512", "Haswell", avx512, nil, "SkylakeX", false},
		{"skylakex on avx512", "SkylakeX", avx512, nil, "", false},
		{"cooperlake on avx512", "Cooperlake", avx512, nil, "", false},
		{"sapphirerapids on avx512", "SapphireRapids", avx512, nil, "", false},
		{"prescott on avx2", "Prescott", avx2, nil, "Haswell", false},
		{"sandybridge on avx2", "Sandybridge", avx2, nil, "Haswell", false},
		{"haswell on avx2", "Haswell", avx2, nil, "", false},
		{"zen on avx2", "Zen", avx2, nil, "", false},
		{"prescott on avx512f only", "Prescott", xeonPhi, nil, "Haswell", false},
		{"prescott on old cpu", "Prescott", CPUFlags{}, nil, "", false},
		{"lower-case name", "prescott", avx512, nil, "SkylakeX", false},
		{"unknown core", "Zen7", avx512, nil, "", false},
		{"empty core", "", avx512, nil, "", false},
		{"user set core type", "Prescott", avx512, map[string]string{coreTypeEnv: "Prescott"}, "", false},
		{"user set other core type", "Haswell", avx512, map[string]string{coreTypeEnv: "Haswell"}, "", false},
		{"already restarted", "Prescott", avx512, map[string]string{reexecEnv: "Prescott"}, "", false},
		{"single-core build", "Prescott", avx512, nil, "", true},
	}
	for _, c := range cases {
		env := func(k string) string { return c.env[k] }
		config := "OpenBLAS 0.3.21 NO_LAPACKE DYNAMIC_ARCH NO_AFFINITY " + c.core + " MAX_THREADS=64"
		if c.fixed {
			config = "OpenBLAS 0.3.21 NO_AFFINITY " + c.core + " MAX_THREADS=64"
		}
		if got := betterCoreType(c.core, config, c.flags, env); got != c.want {
			t.Errorf("%s: betterCoreType(%q, %v) = %q, want %q", c.name, c.core, c.flags, got, c.want)
		}
	}
}

func TestBLASRestartEnv(t *testing.T) {
	avx512 := CPUFlags{AVX2: true, FMA: true, AVX512F: true, AVX512BW: true, AVX512DQ: true, AVX512VL: true}
	config := "OpenBLAS 0.3.21 DYNAMIC_ARCH NO_AFFINITY Prescott MAX_THREADS=64"
	cases := []struct {
		name string
		core string
		env  map[string]string
		want string
	}{
		{"wrong core, spinning threads", "Prescott", nil, "OPENBLAS_CORETYPE=SkylakeX OPENBLAS_THREAD_TIMEOUT=16"},
		{"right core, spinning threads", "SkylakeX", nil, "OPENBLAS_THREAD_TIMEOUT=16"},
		{"user's timeout kept", "Prescott", map[string]string{threadTimeoutEnv: "20"}, "OPENBLAS_CORETYPE=SkylakeX"},
		{"all set", "SkylakeX", map[string]string{threadTimeoutEnv: "8"}, ""},
		{"user's core, default timeout", "Prescott", map[string]string{coreTypeEnv: "Prescott"}, "OPENBLAS_THREAD_TIMEOUT=16"},
		{"already restarted", "Prescott", map[string]string{reexecEnv: "Prescott"}, ""},
	}
	for _, c := range cases {
		got := strings.Join(blasRestartEnv(c.core, config, avx512, func(k string) string { return c.env[k] }), " ")
		if got != c.want {
			t.Errorf("%s: %q, want %q", c.name, got, c.want)
		}
	}
}

func TestBLASInfo(t *testing.T) {
	info := BLASInfo()
	if info.CoreName == "" || info.Threads < 1 || info.Config == "" {
		t.Errorf("BLASInfo() = %+v: want a core name, a config and at least one thread", info)
	}
}

// TestEnsureBLASRestart runs this test binary as a child that calls
// EnsureBLAS, once with OPENBLAS_CORETYPE unset and once with a user choice:
// the first must end on a core as good as the CPU allows, the second must keep
// the user's core.
func TestEnsureBLASRestart(t *testing.T) {
	if os.Getenv("NN_ENSURE_BLAS_CHILD") != "" {
		EnsureBLAS()
		info := BLASInfo()
		fmt.Printf("core=%s restarted=%v from=%s timeout=%s\n", info.CoreName, info.Restarted, info.RestartedFrom, info.ThreadTimeout)
		return
	}
	exe, err := os.Executable()
	if err != nil {
		t.Skip(err)
	}
	run := func(coreType string) string {
		cmd := exec.Command(exe, "-test.run=^TestEnsureBLASRestart$")
		cmd.Env = []string{"NN_ENSURE_BLAS_CHILD=1"}
		for _, kv := range os.Environ() {
			if !strings.HasPrefix(kv, coreTypeEnv+"=") && !strings.HasPrefix(kv, reexecEnv+"=") && !strings.HasPrefix(kv, threadTimeoutEnv+"=") {
				cmd.Env = append(cmd.Env, kv)
			}
		}
		if coreType != "" {
			cmd.Env = append(cmd.Env, coreTypeEnv+"="+coreType)
		}
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("child: %v\n%s", err, out)
		}
		for line := range strings.Lines(string(out)) {
			if strings.HasPrefix(line, "core=") {
				return strings.TrimSpace(line)
			}
		}
		t.Fatalf("child printed no core:\n%s", out)
		return ""
	}

	got := run("")
	var core string
	fmt.Sscanf(got, "core=%s", &core)
	if want := betterCoreType(core, BLASInfo().Config, hostCPUFlags(), func(string) string { return "" }); want != "" {
		t.Errorf("after EnsureBLAS: %s, still worse than the CPU allows (want %s)", got, want)
	}
	if !strings.HasSuffix(got, "timeout="+threadTimeout) {
		t.Errorf("after EnsureBLAS: %s, want OpenBLAS's idle threads set to sleep", got)
	}
	t.Logf("automatic: %s (cpu: %s)", got, hostCPUFlags())

	if got := run("Prescott"); !strings.HasPrefix(got, "core=Prescott restarted=false") {
		t.Errorf("with OPENBLAS_CORETYPE=Prescott: %s, want the user's core kept", got)
	}
}
