package sd

// ModelHash identifies a base checkpoint the way AUTOMATIC1111 and kohya's
// sd-scripts do, for LoRA metadata (ss_sd_model_hash, ss_new_sd_model_hash)
// and for the UI.
type ModelHash struct {
	SHA256 string // SHA-256 of the whole file: A1111's "sha256", ss_new_sd_model_hash
	Legacy string // A1111's old 8-digit hash of 64 KiB at 1 MiB: ss_sd_model_hash
}

// Short is the 10-digit form AUTOMATIC1111 shows ("Model hash: 6ce0161689").
func (h ModelHash) Short() string {
	if len(h.SHA256) < 10 {
		return h.SHA256
	}
	return h.SHA256[:10]
}

// Hash reads the whole checkpoint file (seconds for a 2-4 GB file) and
// returns its hashes. A diffusers folder has none, as in AUTOMATIC1111 and
// sd-scripts: the result is then empty.
func (c *Checkpoint) Hash() (ModelHash, error) {
	if c.Layout != LayoutSingleFile {
		return ModelHash{}, nil
	}
	sha, legacy, err := FileHashes(c.Path)
	if err != nil {
		return ModelHash{}, err
	}
	return ModelHash{SHA256: sha, Legacy: legacy}, nil
}
