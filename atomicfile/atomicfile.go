// Package atomicfile replaces files so that a crash, a full disk or a
// concurrent reader never sees a torn file: the content goes to a temporary
// file in the same folder, which is synced and renamed over the target.
// Captions, settings, LoRA files, resume states and caches are all written
// this way.
package atomicfile

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// Write replaces path with what write produces. An existing file's
// permission bits are kept; a new file gets 0644. When write fails, path is
// untouched and the temporary file removed.
func Write(path string, write func(io.Writer) error) error {
	return WritePerm(path, 0o644, write)
}

// WritePerm is Write giving a new file the permission bits perm (0600 for
// a private file). The file has them from the moment it appears at path:
// the temporary file is private until it is chmodded just before the rename.
func WritePerm(path string, perm os.FileMode, write func(io.Writer) error) (err error) {
	dir := filepath.Dir(path)
	if st, err := os.Stat(path); err == nil {
		perm = st.Mode().Perm()
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
			err = fmt.Errorf("write %s: %w", path, err)
		}
	}()
	bw := bufio.NewWriterSize(tmp, 1<<20)
	if err = write(bw); err != nil {
		return err
	}
	if err = bw.Flush(); err != nil {
		return err
	}
	if err = tmp.Chmod(perm); err != nil {
		return err
	}
	if err = tmp.Sync(); err != nil {
		return err
	}
	if err = tmp.Close(); err != nil {
		return err
	}
	if err = os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	// The rename is durable only once the folder entry is synced; a failure
	// here still leaves a complete file.
	if d, derr := os.Open(dir); derr == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// WriteBytes replaces path with data (see Write).
func WriteBytes(path string, data []byte) error {
	return Write(path, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
}
