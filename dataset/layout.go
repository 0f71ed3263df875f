package dataset

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"lorastudio/atomicfile"
)

// ParseFolderName splits a kohya folder name `<repeats>_<class tokens>`
// ("10_sks dog" -> 10, "sks dog"). As in sd-scripts, everything after the
// first underscore is the class tokens, which may be empty. Names whose
// prefix is not a decimal number are not kohya folders.
func ParseFolderName(name string) (repeats int, classTokens string, ok bool) {
	num, class, found := strings.Cut(name, "_")
	if !found || num == "" {
		return 0, "", false
	}
	for _, r := range num {
		if r < '0' || r > '9' {
			return 0, "", false
		}
	}
	n, err := strconv.Atoi(num)
	if err != nil {
		return 0, "", false
	}
	return n, class, true
}

// FolderName is the kohya folder name for repeats and class tokens.
func FolderName(repeats int, classTokens string) string {
	return strconv.Itoa(repeats) + "_" + classTokens
}

// Transfer says how Reorganize brings files into the new layout.
type Transfer int

const (
	// Copy leaves the original files in place.
	Copy Transfer = iota
	// Move renames the files into the new layout (copying and deleting
	// when the destination is on another file system).
	Move
)

// folderTarget is the kohya folder name a Folder reorganizes into.
func folderTarget(f *Folder) string {
	class := f.ClassTokens
	if class == "" && !f.Kohya {
		class = f.Name
		if f.Rel == "." {
			class = "concept"
		}
	}
	return FolderName(max(f.Repeats, 1), sanitizeName(class))
}

// sanitizeName removes characters a folder name cannot hold.
func sanitizeName(s string) string {
	s = strings.Map(func(r rune) rune {
		if r < 32 || strings.ContainsRune(`/\:*?"<>|`, r) {
			return '_'
		}
		return r
	}, s)
	return strings.TrimSpace(s)
}

// Reorganize writes the dataset in kohya's layout under dest: one folder
// `dest/img/<repeats>_<class tokens>/` per concept, from each Folder's
// current Repeats and ClassTokens (a plain folder's name stands in for
// missing class tokens), with every image and its caption file. Images
// keep their names; a name already taken gets a numeric suffix. With Move,
// the originals are removed once copied. The dataset in memory is not
// changed; open the returned image root to work on the new layout. Flush
// a Saver first when moving: a pending save names the old path.
func (d *Dataset) Reorganize(ctx context.Context, dest string, mode Transfer) (string, error) {
	dest, err := filepath.Abs(dest)
	if err != nil {
		return "", fmt.Errorf("reorganize: %w", err)
	}
	imgRoot := filepath.Join(dest, "img")
	taken := map[string]bool{}
	for _, im := range d.Images {
		if err := ctx.Err(); err != nil {
			return "", fmt.Errorf("reorganize: %w", err)
		}
		dir := filepath.Join(imgRoot, folderTarget(im.Folder))
		if dir == im.Folder.Dir {
			if mode == Move {
				continue // already where it belongs
			}
			return "", fmt.Errorf("reorganize: %s is already in the destination layout; copying would duplicate it", im.Rel)
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return "", fmt.Errorf("reorganize: %w", err)
		}
		target := uniqueName(dir, filepath.Base(im.Path), taken)
		taken[target] = true
		if err := transferFile(im.Path, target, mode); err != nil {
			return "", fmt.Errorf("reorganize %s: %w", im.Rel, err)
		}
		capTarget := CaptionPathFor(target, d.CaptionExt)
		switch {
		case im.CaptionLocked:
			// A protected caption travels byte for byte.
			if err := transferFile(im.CaptionPath, capTarget, mode); err != nil {
				return "", fmt.Errorf("reorganize %s: %w", im.CaptionPath, err)
			}
		case im.HasCaption || len(im.Tags) > 0:
			// The caption as edited in memory, saved or not.
			if err := atomicfile.WriteBytes(capTarget, []byte(im.captionFile())); err != nil {
				return "", fmt.Errorf("reorganize: %w", err)
			}
			if mode == Move {
				if err := os.Remove(im.CaptionPath); err != nil && !errors.Is(err, os.ErrNotExist) {
					return "", fmt.Errorf("reorganize: %w", err)
				}
			}
		}
		// An image without caption gets none, so kohya's class-token
		// fallback still applies.
	}
	return imgRoot, nil
}

// uniqueName returns dir/name, or dir/stem_N.ext when that is taken on
// disk or by an earlier file of the same run.
func uniqueName(dir, name string, taken map[string]bool) string {
	ext := filepath.Ext(name)
	stem := strings.TrimSuffix(name, ext)
	p := filepath.Join(dir, name)
	for n := 2; ; n++ {
		_, err := os.Lstat(p)
		if !taken[p] && errors.Is(err, os.ErrNotExist) {
			return p
		}
		p = filepath.Join(dir, fmt.Sprintf("%s_%d%s", stem, n, ext))
	}
}

// transferFile copies or moves src to dst (dst must not exist).
func transferFile(src, dst string, mode Transfer) error {
	if mode == Move {
		if err := os.Rename(src, dst); err == nil {
			return nil
		}
	}
	if err := copyFile(src, dst); err != nil {
		return err
	}
	if mode == Move {
		return os.Remove(src)
	}
	return nil
}

// copyFile copies src to a new file dst through a temporary name, so an
// interrupted copy leaves no partial file under the final name.
func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	st, err := in.Stat()
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(dst), "."+filepath.Base(dst)+".*.tmp")
	if err != nil {
		return err
	}
	name := tmp.Name()
	_, err = io.Copy(tmp, in)
	if err == nil {
		err = tmp.Chmod(st.Mode().Perm())
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(name, dst)
	}
	if err != nil {
		os.Remove(name)
		return err
	}
	return os.Chtimes(dst, st.ModTime(), st.ModTime())
}

// RenameFolder renames a folder on disk to `<repeats>_<class tokens>` and
// updates the dataset's paths (and re-sorts Images, so indices change). It
// fails if the new name exists. Flush a Saver first: a pending save names
// the old path.
func (d *Dataset) RenameFolder(f *Folder, repeats int, classTokens string) error {
	if repeats < 1 {
		return fmt.Errorf("rename folder %s: repeats must be at least 1, not %d", f.Rel, repeats)
	}
	if f.Rel == "." {
		return fmt.Errorf("rename folder: the dataset root %s cannot be renamed from inside; use Reorganize", f.Dir)
	}
	name := FolderName(repeats, sanitizeName(classTokens))
	newDir := filepath.Join(filepath.Dir(f.Dir), name)
	if newDir == f.Dir {
		f.Repeats, f.ClassTokens, f.Kohya = repeats, classTokens, true
		return nil
	}
	if _, err := os.Lstat(newDir); err == nil {
		return fmt.Errorf("rename folder %s: %s already exists", f.Rel, newDir)
	}
	if err := os.Rename(f.Dir, newDir); err != nil {
		return fmt.Errorf("rename folder %s: %w", f.Rel, err)
	}
	oldDir := f.Dir
	fix := func(p string) string {
		if p == oldDir || strings.HasPrefix(p, oldDir+string(filepath.Separator)) {
			return newDir + p[len(oldDir):]
		}
		return p
	}
	for _, g := range d.Folders {
		g.Dir = fix(g.Dir)
		rel, _ := filepath.Rel(d.Root, g.Dir)
		g.Rel = filepath.ToSlash(rel)
	}
	f.Name, f.Repeats, f.ClassTokens, f.Kohya = name, repeats, classTokens, true
	for _, im := range d.Images {
		im.Path = fix(im.Path)
		im.CaptionPath = fix(im.CaptionPath)
		rel, _ := filepath.Rel(d.Root, im.Path)
		im.Rel = filepath.ToSlash(rel)
	}
	d.sort()
	return nil
}
