# Shared part of the GUI smoke tests, sourced by scripts/gui-*.sh after they set
# name (for messages), shot, log and min_colours. It checks the tools, makes a
# scratch dir with a copy of the demo dataset and private settings and caches,
# and starts Xvfb on a free display. start_app, take_screenshot and check_log
# do the rest; cleanup on exit kills the app and Xvfb.

fail() {
	echo "$name: FAIL: $*" >&2
	if [[ -s $log ]]; then
		echo "--- app log ($log) ---" >&2
		tail -n 40 "$log" >&2
	fi
	exit 1
}

[[ -x $bin ]] || fail "no binary at $bin (run make build)"
command -v Xvfb >/dev/null || fail "Xvfb is missing (apt-get install xvfb)"
command -v import >/dev/null || fail "ImageMagick import is missing (apt-get install imagemagick)"
[[ -d $root/assets/demo ]] || fail "no demo dataset in $root/assets/demo"

mkdir -p "$(dirname "$shot")"
rm -f "$shot" "$log"
work=$(mktemp -d)
xvfb_pid=""
app_pid=""
cleanup() {
	[[ -n $app_pid ]] && kill "$app_pid" 2>/dev/null && wait "$app_pid" 2>/dev/null
	[[ -n $xvfb_pid ]] && kill "$xvfb_pid" 2>/dev/null && wait "$xvfb_pid" 2>/dev/null
	rm -rf "$work"
}
trap cleanup EXIT

# The app writes settings, thumbnails, captions and LoRAs: keep all of it in
# the scratch dir so the test never touches the user's files or the repo.
export LANG=en_US.UTF-8
export XDG_CONFIG_HOME=$work/config XDG_CACHE_HOME=$work/cache
cp -r "$root/assets/demo" "$work/demo"

display=""
for n in $(seq 91 190); do
	if [[ ! -e /tmp/.X11-unix/X$n && ! -e /tmp/.X$n-lock ]]; then
		display=:$n
		break
	fi
done
[[ -n $display ]] || fail "no free X display number"
Xvfb "$display" -screen 0 1400x900x24 -nolisten tcp >"$work/xvfb.log" 2>&1 &
xvfb_pid=$!
export DISPLAY=$display
for _ in $(seq 50); do
	[[ -e /tmp/.X11-unix/X${display#:} ]] && break
	kill -0 "$xvfb_pid" 2>/dev/null || fail "Xvfb did not start: $(cat "$work/xvfb.log")"
	sleep 0.1
done

# start_app runs the studio on the demo dataset's copy, logging to $log.
start_app() {
	"$bin" "$work/demo/img" >"$log" 2>&1 &
	app_pid=$!
}

# alive fails with the given reason when the app has exited.
alive() {
	kill -0 "$app_pid" 2>/dev/null || { app_pid=""; fail "the app exited $1"; }
}

# take_screenshot saves the screen to $shot and fails when it looks blank.
take_screenshot() {
	import -window root "$shot" || fail "screenshot failed"
	local colours size
	colours=$(convert-im6.q16 "$shot" -format %k info:)
	size=$(convert-im6.q16 "$shot" -format '%wx%h' info:)
	echo "$name: screenshot $shot ($size, $colours colours)"
	((colours >= min_colours)) || fail "screenshot looks blank: $colours distinct colours (want >= $min_colours)"
}

# check_log fails when the app log shows a crash or a data race.
check_log() {
	if grep -qE '^panic:|fatal error:|DATA RACE' "$log"; then
		fail "the app log has a panic"
	fi
}
