// Package dataset reads a training folder the way kohya's sd-scripts does and
// keeps it editable: images, caption files (tags), per-folder repeats and
// class tokens, aspect-ratio buckets, thumbnails and atomic caption saves.
//
// # Layout
//
// Open scans a root folder recursively. Any folder named `<repeats>_<class
// tokens>` (kohya's `img/10_dog/` convention) is one concept with that many
// repeats; any other folder holding images is a concept with one repeat.
// Reorganize copies or moves a dataset into the kohya layout on request.
//
// # Captions
//
// An image's caption is `<basename><ext>` beside it (ext ".txt" by default,
// ".caption" as an option). Its first line is split on commas into tags,
// whitespace trimmed. A missing caption is an empty tag list; the folder's
// class tokens serve as a hint, as kohya falls back to them. A caption file
// that is not valid UTF-8 is reported and never overwritten. Captions are
// written atomically (temporary file in the same folder, fsync, rename) by a
// Saver, which debounces edits per file and reports unsaved and failed files.
// The package never writes image files.
//
// # Problems
//
// A file that cannot be used, or can be used only after conversion, carries
// Problems naming the issue: errors (empty, truncated, not an image, too many
// pixels, unreadable) make it untrainable; warnings (grayscale, 16-bit,
// CMYK, alpha channel, extension mismatch) are converted at load time.
// Scanning reads every file once for its SHA-256 (exact duplicates) and
// decodes only headers (image.DecodeConfig), never full images.
//
// # Training arithmetic and pixels
//
// Bucketer and PlanBuckets reproduce sd-scripts' aspect-ratio bucketing
// (make_bucket_resolutions, BucketManager.select_bucket) and its batches
// per epoch; LoadForTraining returns the pixels training sees for an
// image in its bucket. Summary, TagFrequency and DatasetDirs give the
// numbers kohya prints and stores (ss_tag_frequency, ss_dataset_dirs).
//
// # Thumbnails and the demo
//
// A Thumbnailer decodes with a bounded pool of workers, caches JPEG
// thumbnails under the user cache folder and delivers each through a
// callback as it is ready. ExtractDemo unpacks the bundled demo dataset.
//
// # Concurrency
//
// A Dataset, its Images and Folders are owned by one goroutine (the UI's):
// only that goroutine edits tags or folder settings. Saver and Thumbnailer
// work on their own goroutines with copies of what they need, and deliver
// results through callbacks that may run on any goroutine.
package dataset

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"
)

// DefaultMaxPixels is the pixel count above which an image is refused; it
// guards against decompression bombs and images no CPU run should decode.
const DefaultMaxPixels = 100_000_000

// DefaultCaptionExt is kohya's default caption extension.
const DefaultCaptionExt = ".txt"

// imageExts are the extensions sd-scripts accepts, compared in lower case.
var imageExts = []string{".png", ".jpg", ".jpeg", ".webp", ".bmp"}

// IsImageFile reports whether name has an image extension the studio
// imports (png, jpg, jpeg, webp, bmp in any letter case).
func IsImageFile(name string) bool {
	return slices.Contains(imageExts, strings.ToLower(filepath.Ext(name)))
}

// Options control Open.
type Options struct {
	// CaptionExt is the caption extension, ".txt" (default) or ".caption".
	// A value without the leading dot gets one.
	CaptionExt string
	// MaxPixels refuses larger images; 0 means DefaultMaxPixels.
	MaxPixels int
	// Workers bounds the files inspected at once; 0 picks a default.
	Workers int
	// Progress, when set, is called after each inspected file with the
	// number done and the total. It may be called from several goroutines
	// but never concurrently.
	Progress func(done, total int)
}

func (o Options) withDefaults() Options {
	if o.CaptionExt == "" {
		o.CaptionExt = DefaultCaptionExt
	}
	if !strings.HasPrefix(o.CaptionExt, ".") {
		o.CaptionExt = "." + o.CaptionExt
	}
	if o.MaxPixels <= 0 {
		o.MaxPixels = DefaultMaxPixels
	}
	if o.Workers <= 0 {
		// Inspection is half I/O, half SHA-256: a few more workers than
		// cores keeps both busy.
		o.Workers = max(4, 2*runtime.NumCPU())
	}
	return o
}

// Dataset is a scanned training folder.
type Dataset struct {
	// Root is the absolute path of the opened folder.
	Root string
	// CaptionExt is the caption extension in use, with its dot.
	CaptionExt string
	// MaxPixels is the pixel limit the scan applied.
	MaxPixels int
	// Folders are the folders that hold images, sorted by Rel.
	Folders []*Folder
	// Images are all image files, sorted by Rel.
	Images []*Image
	// SkippedDirs are subfolders that could not be read, with the reason;
	// their images are missing from the dataset.
	SkippedDirs []string
}

// Folder is one concept: a folder of images with its repeats and class
// tokens. Repeats and ClassTokens may be edited in memory; RenameFolder
// applies them to the folder name on disk, Reorganize to a new layout.
type Folder struct {
	// Dir is the absolute path.
	Dir string
	// Rel is Dir relative to the dataset root, slash-separated; "." is
	// the root itself.
	Rel string
	// Name is the folder's base name, as kohya's ss_tag_frequency and
	// ss_dataset_dirs key it.
	Name string
	// Repeats is how often each image is seen per epoch.
	Repeats int
	// ClassTokens are the tokens after the repeats in a kohya folder name;
	// kohya uses them as the caption of images without a caption file.
	ClassTokens string
	// Kohya reports whether Name follows `<repeats>_<class tokens>`.
	Kohya bool
	// Images is the number of image files in the folder.
	Images int
}

// Image is one image file and its caption.
type Image struct {
	// Path is the absolute path of the image file.
	Path string
	// Rel is Path relative to the dataset root, slash-separated.
	Rel string
	// Folder is the concept the image belongs to.
	Folder *Folder
	// Format is the decoded format ("jpeg", "png", "webp", "bmp"), empty
	// when the content is not a readable image.
	Format string
	// Width and Height are the displayed size, after EXIF orientation.
	Width, Height int
	// Orientation is the EXIF orientation (1..8; 1 when absent).
	Orientation int
	// Bytes is the file size and ModTime its modification time.
	Bytes   int64
	ModTime time.Time
	// Hash is the SHA-256 of the file content; zero when unreadable.
	Hash [32]byte
	// Tags is the caption's first line split on commas.
	Tags []string
	// CaptionPath is where the caption lives (or would be written).
	CaptionPath string
	// HasCaption reports whether the caption file existed at scan time.
	HasCaption bool
	// CaptionLocked is set when the caption file must not be overwritten
	// (not UTF-8, unreadable); edits then stay in memory.
	CaptionLocked bool
	// Problems lists what is wrong with the file, most severe first.
	Problems []Problem

	// captionTail keeps lines after the first so a save does not drop them.
	captionTail string
	// crlf remembers Windows line endings so a save keeps them.
	crlf bool
}

// Trainable reports whether the image has no error problem.
func (im *Image) Trainable() bool {
	for _, p := range im.Problems {
		if p.Severity == Error {
			return false
		}
	}
	return true
}

// Caption is the tags joined the way they are saved.
func (im *Image) Caption() string { return FormatCaption(im.Tags) }

// HashHex is Hash in hexadecimal, empty when the file was unreadable.
func (im *Image) HashHex() string {
	if im.Hash == ([32]byte{}) {
		return ""
	}
	return hex.EncodeToString(im.Hash[:])
}

// TrainingCaption is what kohya trains on: the caption, or the folder's
// class tokens when the image has no tags.
func (im *Image) TrainingCaption() string {
	if len(im.Tags) == 0 && im.Folder != nil {
		return im.Folder.ClassTokens
	}
	return im.Caption()
}

// addProblem records p, errors before warnings.
func (im *Image) addProblem(p Problem) {
	im.Problems = append(im.Problems, p)
	slices.SortStableFunc(im.Problems, func(a, b Problem) int { return int(b.Severity) - int(a.Severity) })
}

// ErrNoImages is returned by Open when the folder holds no image file.
var ErrNoImages = errors.New("no image files (png, jpg, jpeg, webp, bmp)")

// Open scans dir recursively and returns the dataset. Per-file trouble is
// recorded in each Image's Problems; Open itself fails only when dir cannot
// be read, holds no image file, or ctx is cancelled.
func Open(ctx context.Context, dir string, opts Options) (*Dataset, error) {
	opts = opts.withDefaults()
	root, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("open dataset %s: %w", dir, err)
	}
	st, err := os.Stat(root)
	if err != nil {
		return nil, fmt.Errorf("open dataset: %w", err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("open dataset %s: not a folder", root)
	}
	d := &Dataset{Root: root, CaptionExt: opts.CaptionExt, MaxPixels: opts.MaxPixels}

	folders := map[string]*Folder{}
	err = filepath.WalkDir(root, func(path string, e fs.DirEntry, err error) error {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return ctxErr
		}
		if err != nil {
			// An unreadable subfolder is reported, the rest still imports.
			if path != root {
				d.SkippedDirs = append(d.SkippedDirs, err.Error())
				return fs.SkipDir
			}
			return err
		}
		name := e.Name()
		if path != root && strings.HasPrefix(name, ".") {
			if e.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		if e.IsDir() || !IsImageFile(name) {
			return nil
		}
		if !e.Type().IsRegular() && e.Type()&fs.ModeSymlink == 0 {
			return nil
		}
		parent := filepath.Dir(path)
		f := folders[parent]
		if f == nil {
			f = newFolder(root, parent)
			folders[parent] = f
			d.Folders = append(d.Folders, f)
		}
		f.Images++
		rel, _ := filepath.Rel(root, path)
		d.Images = append(d.Images, &Image{Path: path, Rel: filepath.ToSlash(rel), Folder: f, Orientation: 1})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("open dataset %s: %w", root, err)
	}
	if len(d.Images) == 0 {
		if len(d.SkippedDirs) > 0 {
			return nil, fmt.Errorf("open dataset %s: %w; unreadable: %s", root, ErrNoImages, strings.Join(d.SkippedDirs, "; "))
		}
		return nil, fmt.Errorf("open dataset %s: %w", root, ErrNoImages)
	}
	d.sort()
	if err := d.inspectAll(ctx, opts); err != nil {
		return nil, fmt.Errorf("open dataset %s: %w", root, err)
	}
	d.markSharedCaptions()
	return d, nil
}

// sort orders folders and images by relative path. Callers holding image
// indices must refresh them after a call that re-sorts (RenameFolder).
func (d *Dataset) sort() {
	slices.SortFunc(d.Folders, func(a, b *Folder) int { return strings.Compare(a.Rel, b.Rel) })
	slices.SortFunc(d.Images, func(a, b *Image) int { return strings.Compare(a.Rel, b.Rel) })
}

// newFolder describes the folder dir under root from its name.
func newFolder(root, dir string) *Folder {
	rel, _ := filepath.Rel(root, dir)
	f := &Folder{Dir: dir, Rel: filepath.ToSlash(rel), Name: filepath.Base(dir), Repeats: 1}
	if repeats, class, ok := ParseFolderName(f.Name); ok {
		f.Repeats, f.ClassTokens, f.Kohya = repeats, class, true
	}
	return f
}

// inspectAll probes every image with a bounded pool of workers.
func (d *Dataset) inspectAll(ctx context.Context, opts Options) error {
	jobs := make(chan *Image)
	var wg sync.WaitGroup
	var mu sync.Mutex
	done := 0
	for range min(opts.Workers, len(d.Images)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 0, 1<<20)
			for im := range jobs {
				buf = inspectImage(im, d.MaxPixels, buf)
				d.readCaptionOf(im)
				if opts.Progress != nil {
					mu.Lock()
					done++
					opts.Progress(done, len(d.Images))
					mu.Unlock()
				}
			}
		}()
	}
	var err error
feed:
	for _, im := range d.Images {
		select {
		case jobs <- im:
		case <-ctx.Done():
			err = ctx.Err()
			break feed
		}
	}
	close(jobs)
	wg.Wait()
	return err
}

// readCaptionOf loads im's caption file into Tags.
func (d *Dataset) readCaptionOf(im *Image) {
	im.CaptionPath = CaptionPathFor(im.Path, d.CaptionExt)
	c, err := ReadCaption(im.CaptionPath)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return
	case errors.Is(err, ErrCaptionEncoding):
		im.HasCaption, im.CaptionLocked = true, true
		im.addProblem(Problem{Severity: Error, Kind: CaptionNotUTF8, Detail: fmt.Sprintf("%s is not valid UTF-8; it is never overwritten", filepath.Base(im.CaptionPath))})
		return
	case err != nil:
		im.CaptionLocked = true
		im.addProblem(Problem{Severity: Error, Kind: CaptionUnreadable, Detail: err.Error()})
		return
	}
	im.HasCaption = true
	im.Tags, im.captionTail, im.crlf = c.Tags, c.Tail, c.CRLF
}

// markSharedCaptions warns about images whose caption file is the same
// path (a.jpg and a.png both use a.txt): an edit of one changes the other.
func (d *Dataset) markSharedCaptions() {
	byCaption := map[string][]*Image{}
	for _, im := range d.Images {
		byCaption[im.CaptionPath] = append(byCaption[im.CaptionPath], im)
	}
	for _, ims := range byCaption {
		if len(ims) < 2 {
			continue
		}
		for _, im := range ims {
			var others []string
			for _, o := range ims {
				if o != im {
					others = append(others, filepath.Base(o.Path))
				}
			}
			im.addProblem(Problem{Severity: Warning, Kind: SharedCaption,
				Detail: fmt.Sprintf("caption %s is shared with %s", filepath.Base(im.CaptionPath), strings.Join(others, ", "))})
		}
	}
}

// CaptionPathFor is the caption file of the image at path: its name with
// the image extension replaced by ext, in the same folder.
func CaptionPathFor(path, ext string) string {
	return strings.TrimSuffix(path, filepath.Ext(path)) + ext
}

// Index returns the position of the image with the given absolute path, or
// -1.
func (d *Dataset) Index(path string) int {
	i, ok := slices.BinarySearchFunc(d.Images, path, func(im *Image, p string) int { return strings.Compare(im.Path, p) })
	if ok {
		return i
	}
	// Paths sort like Rel except across separators; fall back to a scan.
	for i, im := range d.Images {
		if im.Path == path {
			return i
		}
	}
	return -1
}

// Trainable returns the images without error problems.
func (d *Dataset) Trainable() []*Image {
	var out []*Image
	for _, im := range d.Images {
		if im.Trainable() {
			out = append(out, im)
		}
	}
	return out
}

// hashKey is a short stable hash used for cache file names.
func hashKey(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}
