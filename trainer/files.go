package trainer

import "lorastudio/dataset"

// writeFileAtomic writes path through a synced temporary file and a rename.
func writeFileAtomic(path string, data []byte) error {
	return dataset.WriteFileAtomic(path, data)
}
