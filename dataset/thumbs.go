package dataset

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	"image/jpeg"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/disintegration/imaging"
)

// DefaultThumbSize is the longest side of a thumbnail in pixels.
const DefaultThumbSize = 192

// ThumbOptions configure a Thumbnailer.
type ThumbOptions struct {
	// Size is the longest side; 0 means DefaultThumbSize.
	Size int
	// Dir is the disk cache; empty means DefaultThumbDir().
	Dir string
	// Workers bounds the images decoded at once; 0 means one per core.
	Workers int
	// MaxPixels refuses larger images; 0 means DefaultMaxPixels.
	MaxPixels int
}

// DefaultThumbDir is lorastudio/thumbs under the user cache directory.
func DefaultThumbDir() (string, error) {
	dir, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("thumbnail cache: %w", err)
	}
	return filepath.Join(dir, "lorastudio", "thumbs"), nil
}

// Thumb is one delivered thumbnail.
type Thumb struct {
	// Index is the image's position in the slice given to Run.
	Index int
	// Path is the image file.
	Path string
	// Image is the thumbnail, nil when Err is set.
	Image image.Image
	// Cached reports a disk-cache hit.
	Cached bool
	Err    error
	// Done counts the thumbnails delivered so far, this one included, of
	// Total: enough for a progress bar.
	Done, Total int
}

// Thumbnailer makes thumbnails with a bounded pool of workers and caches
// them on disk as JPEG, keyed by path, file size, modification time and
// thumbnail size, so an edited image gets a new thumbnail.
type Thumbnailer struct {
	opts ThumbOptions
}

// NewThumbnailer creates the cache folder and returns a Thumbnailer.
func NewThumbnailer(o ThumbOptions) (*Thumbnailer, error) {
	if o.Size <= 0 {
		o.Size = DefaultThumbSize
	}
	if o.Workers <= 0 {
		o.Workers = runtime.NumCPU()
	}
	if o.MaxPixels <= 0 {
		o.MaxPixels = DefaultMaxPixels
	}
	if o.Dir == "" {
		dir, err := DefaultThumbDir()
		if err != nil {
			return nil, err
		}
		o.Dir = dir
	}
	if err := os.MkdirAll(o.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("thumbnail cache: %w", err)
	}
	return &Thumbnailer{opts: o}, nil
}

// Size is the longest side of the thumbnails.
func (t *Thumbnailer) Size() int { return t.opts.Size }

type thumbJob struct {
	index int
	path  string
	skip  error
}

// Run makes thumbnails for imgs, cached ones first being only a small JPEG
// read, and calls deliver once per image as each is ready (from worker
// goroutines, one call at a time), so a grid can fill progressively. It
// returns when all are delivered or ctx is cancelled (then ctx.Err()).
// Images with an error problem are delivered with Err and not decoded.
func (t *Thumbnailer) Run(ctx context.Context, imgs []*Image, deliver func(Thumb)) error {
	jobs := make([]thumbJob, len(imgs))
	for i, im := range imgs {
		jobs[i] = thumbJob{index: i, path: im.Path}
		for _, p := range im.Problems {
			if p.Severity == Error && p.Kind != CaptionNotUTF8 && p.Kind != CaptionUnreadable {
				jobs[i].skip = fmt.Errorf("no thumbnail: %s", p)
				break
			}
		}
	}
	var next atomic.Int64
	var deliverMu sync.Mutex
	done := 0
	var wg sync.WaitGroup
	for range min(t.opts.Workers, len(jobs)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				n := int(next.Add(1)) - 1
				if n >= len(jobs) {
					return
				}
				j := jobs[n]
				th := Thumb{Index: j.index, Path: j.path, Err: j.skip}
				if j.skip == nil {
					th.Image, th.Cached, th.Err = t.get(j.path)
				}
				if ctx.Err() != nil {
					return
				}
				deliverMu.Lock()
				done++
				th.Done, th.Total = done, len(jobs)
				deliver(th)
				deliverMu.Unlock()
			}
		}()
	}
	wg.Wait()
	return ctx.Err()
}

// Get returns the thumbnail of the image at path, from the cache when
// there, and reports whether it was.
func (t *Thumbnailer) Get(path string) (image.Image, bool, error) {
	return t.get(path)
}

// CachePath is the cache file for the image at path in its current state.
func (t *Thumbnailer) CachePath(path string) (string, error) {
	st, err := os.Stat(path)
	if err != nil {
		return "", fmt.Errorf("thumbnail %s: %w", path, err)
	}
	key := hashKey(path, strconv.FormatInt(st.Size(), 10), strconv.FormatInt(st.ModTime().UnixNano(), 10), strconv.Itoa(t.opts.Size))
	return filepath.Join(t.opts.Dir, key[:2], key+".jpg"), nil
}

func (t *Thumbnailer) get(path string) (image.Image, bool, error) {
	cache, err := t.CachePath(path)
	if err != nil {
		return nil, false, err
	}
	if data, err := os.ReadFile(cache); err == nil {
		if img, err := jpeg.Decode(bytes.NewReader(data)); err == nil {
			return img, true, nil
		}
	}
	img, err := DecodeImage(path, t.opts.MaxPixels)
	if err != nil {
		return nil, false, fmt.Errorf("thumbnail: %w", err)
	}
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, makeThumb(img, t.opts.Size), &jpeg.Options{Quality: 85}); err != nil {
		return nil, false, fmt.Errorf("thumbnail %s: %w", path, err)
	}
	// A cache that cannot be written only costs speed next time.
	_ = writeCacheFile(cache, buf.Bytes())
	// Delivering the decoded JPEG rather than the RGBA it came from gives
	// the same pixels as a later cache hit, in 1.5 bytes per pixel
	// (YCbCr 4:2:0) instead of 4: a grid of thousands stays small.
	th, err := jpeg.Decode(&buf)
	if err != nil {
		return nil, false, fmt.Errorf("thumbnail %s: %w", path, err)
	}
	return th, false, nil
}

// makeThumb fits img into size x size on white.
func makeThumb(img image.Image, size int) image.Image {
	b := img.Bounds()
	w, h := b.Dx(), b.Dy()
	if w > size || h > size {
		if w >= h {
			w, h = size, max(1, int(float64(h)*float64(size)/float64(w)+0.5))
		} else {
			w, h = max(1, int(float64(w)*float64(size)/float64(h)+0.5)), size
		}
		img = imaging.Resize(img, w, h, imaging.Box)
	}
	return flattenOnWhite(img)
}

// writeCacheFile writes a cache entry through a temporary name; unlike
// caption saves it skips fsync, since a lost entry is only rebuilt.
func writeCacheFile(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".thumb.*.tmp")
	if err != nil {
		return err
	}
	_, err = tmp.Write(data)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return errors.Join(fmt.Errorf("thumbnail cache %s", path), err)
	}
	return nil
}
