package atomicfile

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func TestWriteBytes(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "c.txt")
	if err := WriteBytes(p, []byte("one")); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := WriteBytes(p, []byte("two")); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(p)
	st, _ := os.Stat(p)
	if string(b) != "two" || st.Mode().Perm() != 0o600 {
		t.Errorf("content %q mode %v", b, st.Mode().Perm())
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("temporary files left: %v", entries)
	}
	// A failed write leaves the old content and no temporary file.
	if err := WriteBytes(filepath.Join(dir, "missing", "c.txt"), []byte("x")); err == nil {
		t.Error("write into a missing folder succeeded")
	}
	// Concurrent writers never produce a mix.
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			WriteBytes(p, []byte(strings.Repeat(string(rune('a'+i)), 10000)))
		}()
	}
	wg.Wait()
	b, _ = os.ReadFile(p)
	if len(b) != 10000 || strings.Count(string(b), string(b[:1])) != 10000 {
		t.Errorf("mixed content after concurrent writes")
	}
	entries, _ = os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("temporary files left: %v", entries)
	}
}
