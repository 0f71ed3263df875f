// Package localefix keeps Fyne from logging "Error parsing user locale C"
// at every start on systems whose locale is C.UTF-8 (Debian and container
// defaults): Fyne's locale lookup takes the "C" of "C.UTF-8" for a
// language tag. Imported by main for its init, which must run before
// Fyne's: Go initialises packages in import-path order as their imports
// allow, and this package imports only os.
package localefix

import "os"

func init() {
	if os.Getenv("LANGUAGE") != "" {
		return
	}
	for _, name := range []string{"LC_ALL", "LC_MESSAGES", "LANG"} {
		v := os.Getenv(name)
		if v == "" {
			continue
		}
		if len(v) >= 2 && v[:2] == "C." || len(v) >= 6 && v[:6] == "POSIX." {
			// The C locale's messages are English; LANGUAGE only chooses
			// message translations, so this changes nothing else.
			os.Setenv("LANGUAGE", "en")
		}
		return
	}
}
