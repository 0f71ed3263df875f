// Package assets holds the files LoRA Studio ships inside its binary, so the
// studio runs from a single executable with nothing to install beside it.
package assets

import _ "embed"

// ClipVocab is openai/CLIP's gzip-compressed BPE merges list
// (bpe_simple_vocab_16e6.txt.gz, MIT licence in clip/LICENSE), the
// vocabulary of every SD 1.x text encoder.
//
//go:embed clip/bpe_simple_vocab_16e6.txt.gz
var ClipVocab []byte
