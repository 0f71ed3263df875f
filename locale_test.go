package main

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestNoLocaleErrorOnCUTF8 runs this test binary with the C.UTF-8 locale
// of Debian and containers: Fyne's init must not log that it cannot parse
// the locale (internal/localefix runs first).
func TestNoLocaleErrorOnCUTF8(t *testing.T) {
	if os.Getenv("LORASTUDIO_LOCALE_CHILD") != "" {
		return
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^TestNoLocaleErrorOnCUTF8$")
	cmd.Env = []string{"LORASTUDIO_LOCALE_CHILD=1", "LANG=C.UTF-8", "PATH=" + os.Getenv("PATH")}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	if strings.Contains(string(out), "locale") {
		t.Errorf("start-up with LANG=C.UTF-8 printed:\n%s", out)
	}
}
