package main

import (
	"fmt"
	"os"
	"strconv"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/app"

	"lorastudio/assets"
	"lorastudio/ui"
)

// appID matches FyneApp.toml; Fyne keys its preferences and storage on it.
const appID = "io.lorastudio.app"

// runGUI opens the studio window, with the dataset in dir when dir is set,
// and returns when the window is closed.
func runGUI(dir string) int {
	a := app.NewWithID(appID)
	a.SetIcon(fyne.NewStaticResource("icon.png", assets.Icon))
	a.Settings().SetTheme(ui.NewTheme())

	settingsPath, err := ui.DefaultSettingsPath()
	if err != nil {
		fmt.Fprintln(os.Stderr, "lorastudio:", err)
		return 1
	}
	w := a.NewWindow("LoRA Studio")
	studio := ui.New(a, w, settingsPath)
	if dir != "" {
		studio.Open(dir)
	}
	// LORASTUDIO_DEMO_TRAIN=N trains the demo model N steps at start, for
	// the GUI smoke test's picture of the Train screen.
	if n, err := strconv.Atoi(os.Getenv("LORASTUDIO_DEMO_TRAIN")); err == nil && n > 0 {
		studio.DemoTrain(n)
	}
	w.ShowAndRun()
	return 0
}
