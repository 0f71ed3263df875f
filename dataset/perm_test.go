package dataset

import (
	"bytes"
	"context"
	"errors"
	"image/color"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Permission tests need a user the kernel checks permissions for; root
// bypasses them. As root the test re-runs itself as "nobody" on a copy of
// the test binary in a world-readable folder.

const permDirEnv = "LORASTUDIO_PERM_TEST_DIR"

// permDir returns a fresh folder every user can enter; in the re-run it
// is the folder the outer test prepared.
func permDir(t *testing.T) string {
	if d := os.Getenv(permDirEnv); d != "" {
		return d
	}
	d, err := os.MkdirTemp("", "lorastudio-perm-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		filepath.Walk(d, func(p string, _ os.FileInfo, _ error) error { os.Chmod(p, 0o755); return nil })
		os.RemoveAll(d)
	})
	if err := os.Chmod(d, 0o777); err != nil {
		t.Fatal(err)
	}
	return d
}

// asUnprivileged runs the calling test body as nobody when the process is
// root, and reports whether the caller should run the body itself.
func asUnprivileged(t *testing.T, dir string) bool {
	if os.Getenv(permDirEnv) != "" || os.Geteuid() != 0 {
		return true
	}
	exe, err := os.Executable()
	if err != nil {
		t.Skip("cannot find the test binary:", err)
	}
	bin := filepath.Join(dir, "dataset.test")
	if err := copyExecutable(exe, bin); err != nil {
		t.Skip("cannot copy the test binary:", err)
	}
	cmd := exec.Command(bin, "-test.run=^"+t.Name()+"$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), permDirEnv+"="+dir, "HOME="+dir, "XDG_CACHE_HOME="+dir)
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Skip("cannot run as nobody:", err)
	}
	if err != nil {
		t.Fatalf("as nobody:\n%s", out)
	}
	if !bytes.Contains(out, []byte("--- PASS: "+t.Name())) {
		t.Fatalf("as nobody, no PASS:\n%s", out)
	}
	return false
}

func copyExecutable(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// The outer (root) run of each test creates root-owned files nobody may
// not read or write; the inner run checks what the scan makes of them.

func TestUnreadableFile(t *testing.T) {
	dir := permDir(t)
	data := filepath.Join(dir, "data")
	if os.Getenv(permDirEnv) == "" {
		writeFile(t, data, "good.png", encodePNG(t, solid(4, 4, color.White)))
		p := writeFile(t, data, "secret.png", encodePNG(t, solid(4, 4, color.Black)))
		writeFile(t, data, "private/hidden.png", encodePNG(t, solid(4, 4, color.Black)))
		os.Chmod(data, 0o755)
		if err := os.Chmod(p, 0o000); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(filepath.Join(data, "private"), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if !asUnprivileged(t, dir) {
		return
	}
	d := mustOpen(t, data, Options{})
	if len(d.Images) != 2 {
		t.Fatalf("%d images", len(d.Images))
	}
	im := byRel(t, d, "secret.png")
	if !hasProblem(im, Unreadable, Error) {
		t.Errorf("problems %v", im.Problems)
	}
	if g := byRel(t, d, "good.png"); !g.Trainable() {
		t.Errorf("good file: %v", g.Problems)
	}
	if len(d.SkippedDirs) != 1 || !strings.Contains(d.SkippedDirs[0], "private") {
		t.Errorf("skipped folders %q", d.SkippedDirs)
	}
	var b strings.Builder
	d.Summary().WriteText(&b)
	for _, want := range []string{"secret.png: error: unreadable", "skipped folder:"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("summary lacks %q:\n%s", want, b.String())
		}
	}
}

func TestReadOnlyFolderKeepsEdits(t *testing.T) {
	dir := permDir(t)
	data := filepath.Join(dir, "ro")
	if os.Getenv(permDirEnv) == "" {
		writeFile(t, data, "a.png", encodePNG(t, solid(4, 4, color.White)))
		writeFile(t, data, "a.txt", []byte("old"))
		if err := os.Chmod(data, 0o555); err != nil {
			t.Fatal(err)
		}
	}
	if !asUnprivileged(t, dir) {
		return
	}
	d := mustOpen(t, data, Options{})
	im := d.Images[0]
	var states []SaveState
	saver := NewSaver(time.Millisecond, func(_ string, st SaveStatus) { states = append(states, st.State) })
	im.Tags = []string{"new", "tags"}
	saver.Queue(im)
	err := saver.Flush()
	if err == nil {
		t.Fatal("saving into a read-only folder reported success")
	}
	if st := saver.Status(im.CaptionPath); st.State != Failed || st.Err == nil {
		t.Errorf("status %+v", st)
	}
	if !slices.Equal(saver.Unsaved(), []string{im.CaptionPath}) {
		t.Errorf("unsaved = %v", saver.Unsaved())
	}
	if got := im.Caption(); got != "new, tags" {
		t.Errorf("edit lost in memory: %q", got)
	}
	if b, _ := os.ReadFile(im.CaptionPath); string(b) != "old" {
		t.Errorf("caption file = %q", b)
	}
	saver.Close()
	if !slices.Contains(states, Failed) {
		t.Errorf("no Failed notification: %v", states)
	}
	// Thumbnails of a read-only dataset still work: the cache is elsewhere.
	th, err := NewThumbnailer(ThumbOptions{Dir: filepath.Join(dir, "thumbs")})
	if err != nil {
		t.Fatal(err)
	}
	if err := th.Run(context.Background(), d.Images, func(r Thumb) {
		if r.Err != nil {
			t.Error(r.Err)
		}
	}); err != nil {
		t.Fatal(err)
	}
}
