package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"

	"lorastudio/dataset"
)

// runDataset implements `lorastudio dataset DIR`: it prints the dataset
// summary and every problem file, and exits 0 when at least one image can
// train, 1 when none can, 2 on a usage error.
func runDataset(args []string) int {
	fl := flag.NewFlagSet("dataset", flag.ContinueOnError)
	ext := fl.String("caption-ext", dataset.DefaultCaptionExt, "caption file extension (.txt or .caption)")
	maxMP := fl.Float64("max-mp", dataset.DefaultMaxPixels/1e6, "refuse images over this many megapixels")
	bucketRes := fl.Int("resolution", 512, "training resolution for the bucket preview (square)")
	batch := fl.Int("batch", 1, "batch size for the steps-per-epoch arithmetic")
	fl.Usage = func() {
		fmt.Fprintf(fl.Output(), "usage: lorastudio dataset [flags] DIR\n")
		fl.PrintDefaults()
	}
	if err := fl.Parse(args); err != nil {
		return 2
	}
	if fl.NArg() != 1 {
		fl.Usage()
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	d, err := dataset.Open(ctx, fl.Arg(0), dataset.Options{CaptionExt: *ext, MaxPixels: int(*maxMP * 1e6)})
	if err != nil {
		fmt.Fprintf(os.Stderr, "lorastudio dataset: %v\n", err)
		return 1
	}
	s := d.Summary()
	if err := s.WriteText(os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "lorastudio dataset: %v\n", err)
		return 1
	}
	opts := dataset.DefaultBucketOptions()
	opts.Resolution = dataset.Reso{W: *bucketRes, H: *bucketRes}
	opts.MinReso = min(opts.MinReso, *bucketRes)
	items, _ := d.BucketItems()
	plan, err := dataset.PlanBuckets(items, opts, *batch)
	if err != nil {
		fmt.Fprintf(os.Stderr, "lorastudio dataset: %v\n", err)
		return 2
	}
	fmt.Printf("buckets at %dx%d (kohya_ss defaults: %d..%d step %d, no upscale), batch %d: %d batches per epoch\n",
		opts.Resolution.W, opts.Resolution.H, opts.MinReso, opts.MaxReso, opts.Step, plan.Batch, plan.BatchesPerEpoch)
	for _, b := range plan.Buckets {
		fmt.Printf("  %-9v images %5d  x repeats %6d  batches %6d\n", b.Reso, b.Images, b.Count, b.Batches)
	}
	if !s.Usable() {
		fmt.Fprintln(os.Stderr, "lorastudio dataset: no trainable image")
		return 1
	}
	return 0
}
