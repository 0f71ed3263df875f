package sd

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"os"
)

// The hashes kohya's sd-scripts and AUTOMATIC1111 put on model files
// (library/train_util.py: model_hash, calculate_sha256, addnet_hash_legacy,
// addnet_hash_safetensors).

// LegacyHash is the old short hash: the first 8 hex digits of the SHA-256 of
// the 64 KiB at offset 0x100000 (fewer bytes, possibly none, when the input
// is shorter). sd-scripts stores it as ss_sd_model_hash for the base model
// and sshs_legacy_hash for the LoRA.
func LegacyHash(r io.Reader) (string, error) {
	if _, err := io.CopyN(io.Discard, r, 0x100000); err != nil {
		if err == io.EOF {
			sum := sha256.Sum256(nil)
			return hex.EncodeToString(sum[:])[:8], nil
		}
		return "", err
	}
	h := sha256.New()
	if _, err := io.CopyN(h, r, 0x10000); err != nil && err != io.EOF {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil))[:8], nil
}

// FileHashes returns a file's full SHA-256 (ss_new_sd_model_hash, and
// AUTOMATIC1111's checkpoint hash) and its LegacyHash (ss_sd_model_hash).
func FileHashes(path string) (sha, legacy string, err error) {
	f, err := os.Open(path)
	if err != nil {
		return "", "", fmt.Errorf("hash model: %w", err)
	}
	defer f.Close()
	full := sha256.New()
	if _, err := io.Copy(full, f); err != nil {
		return "", "", fmt.Errorf("hash model %s: %w", path, err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return "", "", fmt.Errorf("hash model %s: %w", path, err)
	}
	legacy, err = LegacyHash(f)
	if err != nil {
		return "", "", fmt.Errorf("hash model %s: %w", path, err)
	}
	return hex.EncodeToString(full.Sum(nil)), legacy, nil
}

// SafetensorsDataHash is AUTOMATIC1111's and the additional-networks
// extension's LoRA hash (addnet_hash_safetensors): the SHA-256 of everything
// after the header, so editing metadata does not change it. A LoRA saved by
// LoRANetwork.Save carries the same value as sshs_model_hash.
func SafetensorsDataHash(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("hash safetensors: %w", err)
	}
	defer f.Close()
	var n [8]byte
	if _, err := io.ReadFull(f, n[:]); err != nil {
		return "", fmt.Errorf("hash safetensors %s: reading the header length: %w", path, err)
	}
	if _, err := f.Seek(int64(binary.LittleEndian.Uint64(n[:])), io.SeekCurrent); err != nil {
		return "", fmt.Errorf("hash safetensors %s: %w", path, err)
	}
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("hash safetensors %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
