package dataset

import (
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
)

// FolderSummary is one concept in a Summary.
type FolderSummary struct {
	Rel         string
	Name        string
	Repeats     int
	ClassTokens string
	Kohya       bool
	// Images counts image files, Trainable those without errors.
	Images, Trainable int
}

// Summary is the dataset at a glance.
type Summary struct {
	Root    string
	Folders []FolderSummary
	// Images counts image files; Trainable those without error problems.
	Images, Trainable int
	// StepsPerEpoch is trainable images times their folder's repeats:
	// the steps of one epoch at batch size 1.
	StepsPerEpoch int
	// MinReso and MaxReso are the smallest and largest trainable images
	// by pixel count (zero when none).
	MinReso, MaxReso Reso
	// Untagged counts trainable images with no tags.
	Untagged int
	// Duplicates are groups of images with identical content.
	Duplicates [][]*Image
	// Failed are images with an error problem; Warned those with only
	// warnings.
	Failed, Warned []*Image
	// SkippedDirs are subfolders that could not be read.
	SkippedDirs []string
}

// Usable reports whether at least one image can train.
func (s Summary) Usable() bool { return s.StepsPerEpoch > 0 }

// Summary computes the dataset summary.
func (d *Dataset) Summary() Summary {
	s := Summary{Root: d.Root, Images: len(d.Images), SkippedDirs: d.SkippedDirs}
	fs := map[*Folder]*FolderSummary{}
	for _, f := range d.Folders {
		s.Folders = append(s.Folders, FolderSummary{Rel: f.Rel, Name: f.Name, Repeats: f.Repeats, ClassTokens: f.ClassTokens, Kohya: f.Kohya})
	}
	for i, f := range d.Folders {
		fs[f] = &s.Folders[i]
	}
	byHash := map[[32]byte][]*Image{}
	for _, im := range d.Images {
		fsum := fs[im.Folder]
		if fsum != nil {
			fsum.Images++
		}
		if im.Hash != ([32]byte{}) {
			byHash[im.Hash] = append(byHash[im.Hash], im)
		}
		if !im.Trainable() {
			s.Failed = append(s.Failed, im)
			continue
		}
		if len(im.Problems) > 0 {
			s.Warned = append(s.Warned, im)
		}
		s.Trainable++
		if fsum != nil {
			fsum.Trainable++
		}
		s.StepsPerEpoch += max(im.Folder.Repeats, 0)
		if len(im.Tags) == 0 {
			s.Untagged++
		}
		px := im.Width * im.Height
		if s.MinReso.W == 0 || px < s.MinReso.W*s.MinReso.H {
			s.MinReso = Reso{im.Width, im.Height}
		}
		if px > s.MaxReso.W*s.MaxReso.H {
			s.MaxReso = Reso{im.Width, im.Height}
		}
	}
	for _, group := range byHash {
		if len(group) > 1 {
			s.Duplicates = append(s.Duplicates, group)
		}
	}
	slices.SortFunc(s.Duplicates, func(a, b []*Image) int { return strings.Compare(a[0].Rel, b[0].Rel) })
	return s
}

// WriteText prints the summary and every problem file, one per line.
func (s Summary) WriteText(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "dataset %s\n", s.Root)
	fmt.Fprintf(&b, "images: %d (%d trainable, %d failed, %d with warnings)\n", s.Images, s.Trainable, len(s.Failed), len(s.Warned))
	fmt.Fprintf(&b, "folders: %d\n", len(s.Folders))
	for _, f := range s.Folders {
		kind := "plain folder"
		if f.Kohya {
			kind = fmt.Sprintf("class tokens %q", f.ClassTokens)
		}
		fmt.Fprintf(&b, "  %-40s repeats %3d  images %5d  x repeats %6d  (%s)\n", f.Rel, f.Repeats, f.Trainable, f.Trainable*max(f.Repeats, 0), kind)
	}
	fmt.Fprintf(&b, "images x repeats: %d (steps per epoch at batch size 1)\n", s.StepsPerEpoch)
	if s.Trainable > 0 {
		fmt.Fprintf(&b, "resolution: min %v, max %v\n", s.MinReso, s.MaxReso)
	}
	fmt.Fprintf(&b, "images without tags: %d\n", s.Untagged)
	fmt.Fprintf(&b, "exact duplicates: %d groups\n", len(s.Duplicates))
	for _, g := range s.Duplicates {
		names := make([]string, len(g))
		for i, im := range g {
			names[i] = im.Rel
		}
		fmt.Fprintf(&b, "  %s\n", strings.Join(names, " = "))
	}
	for _, dir := range s.SkippedDirs {
		fmt.Fprintf(&b, "skipped folder: %s\n", dir)
	}
	if len(s.Failed)+len(s.Warned) > 0 {
		fmt.Fprintf(&b, "problem files:\n")
		for _, list := range [][]*Image{s.Failed, s.Warned} {
			for _, im := range list {
				for _, p := range im.Problems {
					fmt.Fprintf(&b, "  %s: %s\n", im.Rel, p)
				}
			}
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// TagFrequency counts tags per folder the way sd-scripts records
// ss_tag_frequency: keyed by folder base name, tags lower-cased, over the
// training captions (class tokens for an image without tags).
func (d *Dataset) TagFrequency() map[string]map[string]int {
	out := map[string]map[string]int{}
	for _, im := range d.Images {
		if !im.Trainable() {
			continue
		}
		m := out[im.Folder.Name]
		if m == nil {
			m = map[string]int{}
			out[im.Folder.Name] = m
		}
		for _, t := range ParseTags(im.TrainingCaption()) {
			m[strings.ToLower(t)]++
		}
	}
	return out
}

// DatasetDirs is ss_dataset_dirs: per folder base name, its repeats and
// trainable image count.
func (d *Dataset) DatasetDirs() map[string]map[string]int {
	out := map[string]map[string]int{}
	for _, f := range d.Folders {
		n := 0
		for _, im := range d.Images {
			if im.Folder == f && im.Trainable() {
				n++
			}
		}
		out[f.Name] = map[string]int{"n_repeats": f.Repeats, "img_count": n}
	}
	return out
}

// Fingerprint is a 128-bit SHA-256 prefix, in hex, over what training reads: each trainable
// image's path, content hash, repeats and training caption. A resumed
// run compares it to refuse a dataset that changed underneath.
func (d *Dataset) Fingerprint() string {
	var parts []string
	for _, im := range d.Images {
		if im.Trainable() {
			parts = append(parts, im.Rel, im.HashHex(), strconv.Itoa(im.Folder.Repeats), im.TrainingCaption())
		}
	}
	return hashKey(parts...)
}
