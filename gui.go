package main

import (
	"fmt"
	"os"
)

// runGUI opens the studio window.
func runGUI(dir string) int {
	fmt.Fprintln(os.Stderr, "lorastudio: the GUI is not built yet")
	return 1
}
