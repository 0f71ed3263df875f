package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strings"
	"time"

	"lorastudio/dataset"
	"lorastudio/tagger"
)

// runTag implements `lorastudio tag --model DIR DATASET_DIR`: it tags every
// image of the dataset with a WD14 tagger and saves the captions (or, with
// --dry-run, prints them). Exit status: 0 all tagged, 1 when the model or
// dataset cannot be opened or any image failed, 2 on a usage error.
func runTag(args []string) int {
	return tagCommand(context.Background(), args, os.Stdout, os.Stderr)
}

func tagCommand(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fl := flag.NewFlagSet("tag", flag.ContinueOnError)
	fl.SetOutput(stderr)
	model := fl.String("model", "", "WD14 tagger folder (model.safetensors + selected_tags.csv, e.g. SmilingWolf/wd-vit-tagger-v3) or its model.safetensors")
	def := tagger.DefaultSelectOptions()
	general := fl.Float64("threshold", float64(def.GeneralThreshold), "general tags: keep when the probability is above this")
	character := fl.Float64("character-threshold", float64(def.CharacterThreshold), "character tags: keep when the probability is above this")
	generalMCut := fl.Bool("general-mcut", false, "general tags: use the MCut threshold of each image instead of --threshold")
	characterMCut := fl.Bool("character-mcut", false, "character tags: use the MCut threshold (at least 0.15) instead of --character-threshold")
	ratingTag := fl.Bool("rating-tag", false, "add the most likely rating (general, sensitive, questionable, explicit) as a tag")
	underscores := fl.Bool("keep-underscores", false, "write tags with underscores as in selected_tags.csv (default: spaces, kaomojis kept)")
	escape := fl.Bool("escape-parens", false, `write ( and ) as \( and \) for A1111 prompts`)
	undesired := fl.String("undesired", "", "comma-separated tags never to write")
	first := fl.String("always-first", "", "comma-separated tags put first when predicted")
	appendTags := fl.Bool("append", false, "keep existing caption tags and add new ones after them (default: replace)")
	dryRun := fl.Bool("dry-run", false, "print the new captions, write nothing")
	scores := fl.Bool("scores", false, "print each image's rating scores and kept tags with their probabilities")
	ext := fl.String("caption-ext", dataset.DefaultCaptionExt, "caption file extension (.txt or .caption)")
	maxMP := fl.Float64("max-mp", dataset.DefaultMaxPixels/1e6, "refuse images over this many megapixels")
	fl.Usage = func() {
		fmt.Fprintf(stderr, "usage: lorastudio tag --model DIR_OR_FILE [flags] DATASET_DIR\n")
		fl.PrintDefaults()
	}
	if err := fl.Parse(args); err != nil {
		return 2
	}
	if fl.NArg() != 1 || *model == "" {
		fl.Usage()
		return 2
	}
	for _, t := range []struct {
		name string
		v    float64
	}{{"threshold", *general}, {"character-threshold", *character}} {
		if !(t.v >= 0 && t.v <= 1) {
			fmt.Fprintf(stderr, "lorastudio tag: --%s %v is not between 0 and 1\n", t.name, t.v)
			return 2
		}
	}
	o := tagger.SelectOptions{
		GeneralThreshold: float32(*general), CharacterThreshold: float32(*character),
		GeneralMCut: *generalMCut, CharacterMCut: *characterMCut,
		KeepUnderscores: *underscores, EscapeParens: *escape,
		Undesired: dataset.ParseTags(*undesired), AlwaysFirst: dataset.ParseTags(*first),
	}
	if *ratingTag {
		o.Rating = tagger.RatingTag
	}

	ctx, stop := signal.NotifyContext(ctx, os.Interrupt)
	defer stop()
	tg, err := tagger.LoadWD14(*model)
	if err != nil {
		fmt.Fprintf(stderr, "lorastudio tag: %v\n", err)
		return 1
	}
	maxPixels := int(*maxMP * 1e6)
	d, err := dataset.Open(ctx, fl.Arg(0), dataset.Options{CaptionExt: *ext, MaxPixels: maxPixels})
	if err != nil {
		fmt.Fprintf(stderr, "lorastudio tag: %v\n", err)
		return 1
	}

	// Images that cannot be tagged are reported and left alone; so is the
	// second image of a shared caption file, which would overwrite the
	// first one's tags.
	var todo []*dataset.Image
	failed := 0
	owner := map[string]string{}
	for _, im := range d.Images {
		switch {
		case im.Format == "":
			fmt.Fprintf(stderr, "skip %s: not a readable image\n", im.Rel)
			failed++
		case im.CaptionLocked:
			fmt.Fprintf(stderr, "skip %s: caption %s is protected (not UTF-8 or unreadable) and is not overwritten\n", im.Rel, im.CaptionPath)
			failed++
		case owner[im.CaptionPath] != "":
			fmt.Fprintf(stderr, "skip %s: shares caption %s with %s\n", im.Rel, im.CaptionPath, owner[im.CaptionPath])
			failed++
		default:
			owner[im.CaptionPath] = im.Rel
			todo = append(todo, im)
		}
	}
	paths := make([]string, len(todo))
	for i, im := range todo {
		paths[i] = im.Path
	}

	bar := newProgressBar(stderr, len(todo))
	written := 0
	err = tg.PredictFiles(ctx, paths, maxPixels, o, func(r tagger.FileResult) {
		im := todo[r.Index]
		defer bar.step()
		if r.Err != nil {
			bar.printf(stderr, "error %s: %v\n", im.Rel, r.Err)
			failed++
			return
		}
		if *scores {
			bar.printf(stdout, "%s\n", formatScores(im.Rel, r.Prediction))
		}
		tags := tagger.MergeTags(im.Tags, r.Prediction.Tags(o), *appendTags)
		if *dryRun {
			bar.printf(stdout, "%s: %s\n", im.Rel, dataset.FormatCaption(tags))
			return
		}
		if slices.Equal(tags, im.Tags) && im.HasCaption {
			return
		}
		old := im.Tags
		im.Tags = tags
		if err := im.SaveCaption(); err != nil {
			im.Tags = old
			bar.printf(stderr, "error %s: %v\n", im.Rel, err)
			failed++
			return
		}
		written++
	})
	bar.finish()
	if err != nil {
		fmt.Fprintf(stderr, "lorastudio tag: stopped: %v (%d captions written)\n", err, written)
		return 1
	}
	verb := "written"
	if *dryRun {
		verb = "would be written (dry run)"
	}
	fmt.Fprintf(stderr, "%d images tagged in %s, %d captions %s, %d failed or skipped\n",
		len(todo), bar.elapsed().Round(time.Second), written, verb, failed)
	if *dryRun {
		fmt.Fprintf(stderr, "dry run: no file was changed\n")
	}
	if failed > 0 {
		return 1
	}
	return 0
}

// formatScores lists a prediction's ratings, characters and general tags
// with their probabilities.
func formatScores(name string, p tagger.Prediction) string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "%s scores:", name)
	for _, group := range []struct {
		label string
		tags  []tagger.ScoredTag
	}{{"rating", p.Ratings}, {"character", p.Characters}, {"general", p.General}} {
		fmt.Fprintf(&sb, "\n  %-9s", group.label)
		for i, t := range group.tags {
			if i > 0 {
				sb.WriteString(",")
			}
			fmt.Fprintf(&sb, " %s %.3f", t.Tag, t.Prob)
		}
	}
	return sb.String()
}

// progressBar draws `[#####.....] n/total  s/image  ETA` on a terminal,
// redrawn in place; on anything else it prints a line every tenth of the
// work, so logs stay readable.
type progressBar struct {
	w          io.Writer
	total, n   int
	start      time.Time
	tty        bool
	lastTenths int
}

func newProgressBar(w io.Writer, total int) *progressBar {
	b := &progressBar{w: w, total: total, start: time.Now()}
	if f, ok := w.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			b.tty = true
		}
	}
	b.draw()
	return b
}

func (b *progressBar) elapsed() time.Duration { return time.Since(b.start) }

func (b *progressBar) line() string {
	const width = 30
	filled := 0
	if b.total > 0 {
		filled = width * b.n / b.total
	}
	s := fmt.Sprintf("[%s%s] %d/%d", strings.Repeat("#", filled), strings.Repeat(".", width-filled), b.n, b.total)
	if b.n > 0 {
		per := b.elapsed() / time.Duration(b.n)
		eta := per * time.Duration(b.total-b.n)
		s += fmt.Sprintf("  %.2f s/image  ETA %s", per.Seconds(), eta.Round(time.Second))
	}
	return s
}

func (b *progressBar) draw() {
	if b.tty {
		fmt.Fprintf(b.w, "\r\033[K%s", b.line())
		return
	}
	if b.total == 0 {
		return
	}
	if tenths := 10 * b.n / b.total; tenths > b.lastTenths {
		b.lastTenths = tenths
		fmt.Fprintln(b.w, b.line())
	}
}

func (b *progressBar) step() {
	b.n++
	b.draw()
}

// printf prints a message to w above the bar.
func (b *progressBar) printf(w io.Writer, format string, args ...any) {
	if b.tty {
		fmt.Fprint(b.w, "\r\033[K")
		defer b.draw()
	}
	fmt.Fprintf(w, format, args...)
}

func (b *progressBar) finish() {
	if b.tty {
		fmt.Fprintln(b.w)
	}
}
