// Command mkdemo builds the bundled demo dataset (assets/demo) from the
// DreamBooth dataset: the first two photos of each of its 30 subjects,
// scaled to 256 pixels on the short side (JPEG quality 85), in kohya's
// layout img/10_<class>/ with a caption "<class>, <subject>" beside each,
// and the dataset's credits and licence files. The output is
// deterministic, so running it again reproduces the committed files.
//
//	go run ./scripts/mkdemo -src /work/shared/datasets/dreambooth-512 -dst assets/demo
package main

import (
	"bufio"
	"flag"
	"fmt"
	"image/jpeg"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/disintegration/imaging"

	"lorastudio/dataset"
)

const (
	perSubject = 2
	shortSide  = 256
	repeats    = 10
)

func main() {
	src := flag.String("src", "/work/shared/datasets/dreambooth-512", "DreamBooth dataset folder")
	dst := flag.String("dst", "assets/demo", "output folder (replaced)")
	flag.Parse()
	if err := build(*src, *dst); err != nil {
		fmt.Fprintln(os.Stderr, "mkdemo:", err)
		os.Exit(1)
	}
}

func build(src, dst string) error {
	classes, err := readClasses(filepath.Join(src, "prompts_and_classes.txt"))
	if err != nil {
		return err
	}
	if err := os.RemoveAll(dst); err != nil {
		return err
	}
	n := 0
	for _, sc := range classes {
		files, err := filepath.Glob(filepath.Join(src, sc.subject, "*.jpg"))
		if err != nil {
			return err
		}
		slices.Sort(files)
		if len(files) < perSubject {
			return fmt.Errorf("subject %s has %d photos, want %d", sc.subject, len(files), perSubject)
		}
		dir := filepath.Join(dst, "img", dataset.FolderName(repeats, sc.class))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		for _, f := range files[:perSubject] {
			name := sc.subject + "_" + strings.TrimSuffix(filepath.Base(f), filepath.Ext(f))
			if err := convert(f, filepath.Join(dir, name+".jpg")); err != nil {
				return err
			}
			if err := os.WriteFile(filepath.Join(dir, name+".txt"), []byte(caption(sc)+"\n"), 0o644); err != nil {
				return err
			}
			n++
		}
	}
	for _, f := range []string{"references_and_licenses.txt", "LICENSE.md"} {
		b, err := os.ReadFile(filepath.Join(src, f))
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dst, f), b, 0o644); err != nil {
			return err
		}
	}
	readme := fmt.Sprintf(`LoRA Studio demo dataset

%d photos from the DreamBooth dataset (Ruiz et al., github.com/google/dreambooth),
the first %d of each of its %d subjects, scaled to %d pixels on the short side
(JPEG quality %d), arranged in kohya's layout img/<repeats>_<class>/ with a caption
"<class>, <subject>" beside each photo. Credits and licences of the photos:
references_and_licenses.txt and LICENSE.md. Rebuilt by: go run ./scripts/mkdemo
`, n, perSubject, len(classes), shortSide, 85)
	return os.WriteFile(filepath.Join(dst, "README.txt"), []byte(readme), 0o644)
}

type subjectClass struct{ subject, class string }

// readClasses reads the "subject_name,class" table of
// prompts_and_classes.txt.
func readClasses(path string) ([]subjectClass, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []subjectClass
	in := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "subject_name,class":
			in = true
		case in && line == "":
			if len(out) > 0 {
				return out, nil
			}
		case in:
			s, c, ok := strings.Cut(line, ",")
			if !ok {
				return out, nil
			}
			out = append(out, subjectClass{strings.TrimSpace(s), strings.TrimSpace(c)})
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no subject_name,class table", path)
	}
	return out, sc.Err()
}

// caption is "<class>, <subject words>", the subject dropped when it only
// repeats the class.
func caption(sc subjectClass) string {
	subject := strings.ReplaceAll(sc.subject, "_", " ")
	if subject == sc.class {
		return sc.class
	}
	return sc.class + ", " + subject
}

// convert scales src to shortSide on its short side and writes a JPEG.
func convert(src, dst string) error {
	img, err := imaging.Open(src, imaging.AutoOrientation(true))
	if err != nil {
		return err
	}
	b := img.Bounds()
	w, h := b.Dx(), b.Dy()
	if w < h {
		h, w = h*shortSide/w, shortSide
	} else {
		w, h = w*shortSide/h, shortSide
	}
	small := imaging.Resize(img, w, h, imaging.Lanczos)
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	if err := jpeg.Encode(out, small, &jpeg.Options{Quality: 85}); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
