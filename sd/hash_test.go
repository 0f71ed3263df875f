package sd

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"testing"
)

func TestCheckpointHash(t *testing.T) {
	const path = "testdata/tiny_sd1_ldm.safetensors"
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	full := sha256.Sum256(raw)
	legacy := sha256.Sum256(raw[0x100000:0x110000])
	c := openCheckpoint(t, path, AllParts)
	h, err := c.Hash()
	if err != nil {
		t.Fatal(err)
	}
	want := ModelHash{SHA256: hex.EncodeToString(full[:]), Legacy: hex.EncodeToString(legacy[:])[:8]}
	if h != want {
		t.Errorf("hash %+v, want %+v", h, want)
	}
	if h.Short() != want.SHA256[:10] {
		t.Errorf("short hash %q", h.Short())
	}
	folder := openCheckpoint(t, "testdata/tiny_diffusers", AllParts)
	if h, err := folder.Hash(); err != nil || h != (ModelHash{}) {
		t.Errorf("diffusers folder hash %+v, %v", h, err)
	}
}
