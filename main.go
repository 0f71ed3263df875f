// Command lorastudio is a desktop studio for training Stable Diffusion 1.x
// LoRA adapters on a CPU. Without arguments (or with a folder) it opens the
// GUI; the subcommands run the same work headless.
package main

import (
	"fmt"
	"os"

	_ "lorastudio/internal/localefix" // before Fyne's init: see the package
	"lorastudio/nn"
)

const usage = `usage:
  lorastudio [DIR]                     open the studio (optionally with a dataset folder)
  lorastudio dataset DIR               summarise a dataset folder and list problem files
  lorastudio train --config job.toml   train a LoRA headless (--resume FILE, --demo, --export-kohya DIR)
  lorastudio tag --model DIR_OR_FILE [--threshold 0.35 --character-threshold 0.85 --append --dry-run ...] DATASET_DIR
                                       auto-tag every image with a WD14 tagger and save the captions
  lorastudio generate --model FILE|--demo --prompt "... <lora:name:0.7>" [--negative ... --steps 20 --cfg 7
                     --sampler euler_a --seed 1 --width 512 --height 512 --lora-dir DIR --out out.png]
                                       generate an image (PNG with AUTOMATIC1111 parameters)
  lorastudio bench [--write-model DIR] measure this machine's BLAS and kernels; --write-model writes a
                                       full-size SD 1.5-shaped model with random weights for timing runs
  lorastudio help                      this text
`

func main() {
	nn.EnsureBLAS()
	os.Exit(run(os.Args[1:]))
}

// run dispatches a subcommand and returns the process exit code.
func run(args []string) int {
	if len(args) == 0 {
		return runGUI("")
	}
	switch args[0] {
	case "bench":
		return runBench(args[1:])
	case "dataset":
		return runDataset(args[1:])
	case "generate":
		return runGenerate(args[1:])
	case "tag":
		return runTag(args[1:])
	case "train":
		return runTrain(args[1:])
	case "help", "-h", "--help":
		fmt.Print(usage)
		return 0
	}
	if st, err := os.Stat(args[0]); err == nil && st.IsDir() {
		return runGUI(args[0])
	}
	fmt.Fprintf(os.Stderr, "lorastudio: unknown command %q\n%s", args[0], usage)
	return 2
}
