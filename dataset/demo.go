package dataset

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"lorastudio/assets"
	"lorastudio/atomicfile"
)

// ExtractDemo unpacks the bundled demo dataset into dir (created if
// needed) and returns the folder to open: dir/img, in kohya's layout.
// Files already present with the same content are left alone, so a second
// call is cheap; captions the user edited are kept.
func ExtractDemo(dir string) (string, error) {
	if err := Extract(assets.Demo(), dir); err != nil {
		return "", fmt.Errorf("demo dataset: %w", err)
	}
	return filepath.Join(dir, "img"), nil
}

// Extract copies every file of fsys under dir. Existing caption files are
// never replaced (they hold the user's edits); other existing files are
// replaced, atomically, only when their content differs.
func Extract(fsys fs.FS, dir string) error {
	return fs.WalkDir(fsys, ".", func(path string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		target := filepath.Join(dir, filepath.FromSlash(path))
		if e.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		data, err := fs.ReadFile(fsys, path)
		if err != nil {
			return err
		}
		old, err := os.ReadFile(target)
		if err == nil {
			if bytes.Equal(old, data) || isCaptionFile(fsys, path) {
				return nil
			}
		}
		return atomicfile.WriteBytes(target, data)
	})
}

// isCaptionFile reports whether path is a caption: a text file beside an
// image of the same name.
func isCaptionFile(fsys fs.FS, path string) bool {
	ext := filepath.Ext(path)
	if ext != ".txt" && ext != ".caption" {
		return false
	}
	stem := strings.TrimSuffix(path, ext)
	for _, ie := range imageExts {
		for _, e := range []string{ie, strings.ToUpper(ie)} {
			if _, err := fs.Stat(fsys, stem+e); err == nil {
				return true
			}
		}
	}
	return false
}
