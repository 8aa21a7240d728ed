"""Showing a transmission's frames one after another: the animation loop and its frame sinks.

The loop (`animate`) paces frames at a frame rate, counts cycles, stops on time, and obeys keys:
`+`/`-` faster/slower, `d`/`s` denser/sparser (the transmission is encoded again at the next QR
density and starts over), space pause, `q`/Esc quit. Where the frames go is a `FrameSink`:

- `TerminalSink`: Rich Live display with half blocks, dark on light; refuses a terminal too
  small for the code (exit 7) and names the size it needs;
- `WindowSink`: an OpenCV window (optionally full screen) whose key source can be replaced;
- `MemorySink`: the in-memory twin for tests, with scripted keys and a manual clock.

The sink also owns time: `wait_key(seconds)` waits up to `seconds` for a key and returns the
command it means, so a test sink can advance a manual clock instead of sleeping.
"""

from __future__ import annotations

import os
import select
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Protocol, Sequence

from coldsign.errors import EnvironmentProblem
from coldsign.qr.render import QUIET_ZONE, QRFrame, scale_for, terminal_cells

DENSITIES = ("low", "medium", "high", "max")   # sparse to dense, as in transport.DENSITY_VERSIONS
FPS_MIN, FPS_MAX = 1.0, 60.0
FPS_STEP = 1.25                                 # one key press changes the rate by 25%

QUIT, PAUSE, FASTER, SLOWER, DENSER, SPARSER = "quit", "pause", "faster", "slower", "denser", "sparser"
KEY_COMMANDS = {"q": QUIT, "Q": QUIT, "\x1b": QUIT, " ": PAUSE, "+": FASTER, "=": FASTER, "-": SLOWER,
                "_": SLOWER, "d": DENSER, "D": DENSER, "s": SPARSER, "S": SPARSER}
KEY_HELP = "+/- faster/slower  d/s denser/sparser  space pause  q quit"


@dataclass
class FrameStream:
    """Frames to show: `frames` in order (endless for UR), `cycle` = frames in one full cycle
    (UR: the k pure parts; BBQr: all parts), `label` says what it is ("UR crypto-psbt, v20")."""

    frames: Iterator[QRFrame]
    cycle: int
    label: str
    version: int
    close: Callable[[], None] = lambda: None


class FrameSink(Protocol):
    def open(self, version: int) -> None:
        """Prepare to show codes of QR `version`; raise EnvironmentProblem if they cannot be shown."""

    def show(self, frame: QRFrame, status: str) -> None:
        """Put `frame` on screen with a one-line `status`."""

    def wait_key(self, seconds: float) -> str | None:
        """Wait up to `seconds`; return the command of a key pressed meanwhile (see KEY_COMMANDS), else None."""

    def close(self) -> None:
        """Take the display down; must be safe to call after a failed `open`."""


@dataclass
class AnimationReport:
    frames_shown: int
    seconds: float
    fps: float
    density: str | None
    stopped_by: str          # "quit" | "seconds" | "cycles" | "end"
    restarts: int = 0


def animate(stream_for: Callable[[str | None], FrameStream], sink: FrameSink, *, fps: float,
            density: str | None = None, seconds: float | None = None, cycles: int | None = None,
            densities: Sequence[str] = DENSITIES,
            clock: Callable[[], float] = time.monotonic) -> AnimationReport:
    """Show frames from `stream_for(density)` on `sink` until quit, `seconds` elapsed or `cycles` shown.

    d/s step through `densities` (sparse to dense; e.g. only those that fit the terminal).
    `density` None means the stream was sized another way (--max-fragment): d/s keys do nothing.
    Cycles count from the last (re)start, in frames of the current stream's cycle length.
    """
    fps = min(max(float(fps), FPS_MIN), FPS_MAX)
    stream = stream_for(density)
    start = clock()
    shown = restarts = 0
    paused = False
    try:
        sink.open(stream.version)
        since_restart = 0
        while True:
            try:
                frame = next(stream.frames)
            except StopIteration:
                return AnimationReport(shown, clock() - start, fps, density, "end", restarts)
            status = (f"{stream.label}  frame {since_restart + 1}"
                      f"{'/' + str(stream.cycle) if since_restart < stream.cycle else ' (fountain)'}"
                      f"  {fps:.1f} fps  {KEY_HELP}")
            sink.show(frame, status)
            shown += 1
            since_restart += 1
            deadline = clock() + 1.0 / fps
            stop: str | None = None
            while True:
                now = clock()
                if seconds is not None and now - start >= seconds - 1e-9:
                    stop = "seconds"
                    break
                if not paused and now >= deadline:
                    if cycles is not None and since_restart >= cycles * stream.cycle:
                        stop = "cycles"
                    break
                wait = 0.25 if paused else deadline - now
                if seconds is not None:
                    wait = min(wait, max(0.0, start + seconds - now))
                command = sink.wait_key(max(wait, 0.0))
                if command == QUIT:
                    stop = "quit"
                    break
                if command == PAUSE:
                    paused = not paused
                    deadline = clock() + 1.0 / fps
                elif command in (FASTER, SLOWER):
                    fps = min(max(fps * (FPS_STEP if command == FASTER else 1 / FPS_STEP), FPS_MIN), FPS_MAX)
                    deadline = min(deadline, clock() + 1.0 / fps)
                elif command in (DENSER, SPARSER) and density in densities:
                    step = 1 if command == DENSER else -1
                    wanted = densities[min(max(densities.index(density) + step, 0), len(densities) - 1)]
                    if wanted != density:
                        replacement = stream_for(wanted)
                        stream.close()
                        stream, density = replacement, wanted
                        sink.open(stream.version)
                        since_restart = 0
                        restarts += 1
                        break
            if stop is not None:
                return AnimationReport(shown, clock() - start, fps, density, stop, restarts)
    finally:
        stream.close()
        sink.close()


# --- the in-memory twin ------------------------------------------------------------------------

class ManualClock:
    """A clock that moves only when told to (tests run animations without sleeping)."""

    def __init__(self, now: float = 0.0):
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += max(0.0, seconds)


@dataclass
class MemorySink:
    """Records what would be shown. `keys` maps the number of frames shown so far to a key pressed
    then (e.g. {3: "q"}: quit while the third frame is up); waiting advances `clock`."""

    clock: ManualClock = field(default_factory=ManualClock)
    keys: dict[int, str] = field(default_factory=dict)
    shown: list[tuple[QRFrame, str]] = field(default_factory=list)
    versions: list[int] = field(default_factory=list)
    closed: bool = False

    def open(self, version: int) -> None:
        self.versions.append(version)

    def show(self, frame: QRFrame, status: str) -> None:
        self.shown.append((frame, status))

    def wait_key(self, seconds: float) -> str | None:
        key = self.keys.pop(len(self.shown), None)
        if key is not None:
            return KEY_COMMANDS.get(key)
        self.clock.advance(seconds)
        return None

    def close(self) -> None:
        self.closed = True

    @property
    def payloads(self) -> list[str]:
        return [frame.payload for frame, _ in self.shown]


# --- terminal ----------------------------------------------------------------------------------

class TerminalKeys:
    """Single key presses from a terminal's stdin (cbreak mode, no echo); nothing if stdin is not a tty."""

    def __init__(self, stream=None):
        self._stream = stream if stream is not None else sys.stdin
        self._saved = None
        self.active = False

    def start(self) -> None:
        try:
            if not self._stream.isatty():
                return
            import termios
            import tty

            fd = self._stream.fileno()
            self._saved = termios.tcgetattr(fd)
            tty.setcbreak(fd)
            self.active = True
        except (OSError, ValueError, ImportError, AttributeError):
            self.active = False

    def read(self, seconds: float) -> str | None:
        if not self.active:
            time.sleep(seconds)
            return None
        fd = self._stream.fileno()
        ready, _, _ = select.select([fd], [], [], seconds)
        if not ready:
            return None
        char = os.read(fd, 1).decode("latin-1")
        if char == "\x1b":  # Esc alone quits; an arrow key's escape sequence is swallowed
            more, _, _ = select.select([fd], [], [], 0.01)
            if more:
                os.read(fd, 8)
                return None
        return KEY_COMMANDS.get(char)

    def stop(self) -> None:
        if self.active and self._saved is not None:
            import termios

            termios.tcsetattr(self._stream.fileno(), termios.TCSADRAIN, self._saved)
        self.active = False


class TerminalSink:
    """Half-block QR codes in a Rich Live display (alternate screen on a real terminal)."""

    STYLE = "rgb(0,0,0) on rgb(255,255,255)"  # dark modules on light: what scanners expect

    def __init__(self, console=None, keys: TerminalKeys | None = None, border: int = QUIET_ZONE):
        from rich.console import Console

        self.console = console if console is not None else Console(highlight=False, markup=False)
        self.keys = keys if keys is not None else TerminalKeys()
        self.border = border
        self._live = None

    def needed(self, version: int) -> tuple[int, int]:
        """(columns, rows) this sink needs for a `version` code: the code plus one status line."""
        cols, rows = terminal_cells(version, self.border)
        return cols, rows + 1

    def fits(self, version: int) -> bool:
        cols, rows = self.needed(version)
        width, height = self.console.size
        return cols <= width and rows <= height

    def open(self, version: int) -> None:
        if not self.fits(version):
            cols, rows = self.needed(version)
            width, height = self.console.size
            raise EnvironmentProblem(
                f"the terminal is {width}x{height} characters; a version-{version} QR code needs {cols}x{rows}",
                hint="enlarge the window or reduce the font size, choose a lower --density, "
                     "or use --window to show the codes in a window")
        if self._live is None:
            from rich.live import Live

            self._live = Live(console=self.console, auto_refresh=False, transient=True,
                              screen=self.console.is_terminal)
            self._live.start()
            self.keys.start()

    def show(self, frame: QRFrame, status: str) -> None:
        from rich.console import Group
        from rich.text import Text

        code = Text("\n".join(frame.half_blocks()), style=self.STYLE, no_wrap=True, overflow="crop")
        width = self.console.size.width
        line = Text(status[:width], style="dim", no_wrap=True, overflow="crop")
        self._live.update(Group(code, line), refresh=True)

    def wait_key(self, seconds: float) -> str | None:
        return self.keys.read(seconds)

    def close(self) -> None:
        self.keys.stop()
        if self._live is not None:
            self._live.stop()
            self._live = None


# --- window ------------------------------------------------------------------------------------

def _opencv_waitkey(milliseconds: int) -> int:
    import cv2

    return cv2.waitKey(milliseconds)


def check_window_platform() -> None:
    """Refuse (exit 7) where OpenCV's Qt would abort the whole process: no X display on Linux, or a
    QT_QPA_PLATFORM plugin this OpenCV build does not ship (the opencv-python wheel has only xcb)."""
    import cv2

    platform = os.environ.get("QT_QPA_PLATFORM", "").split(":")[0]
    plugins = Path(cv2.__file__).parent / "qt" / "plugins" / "platforms"
    if platform and plugins.is_dir():
        available = sorted(p.name[len("libq"):].split(".")[0] for p in plugins.glob("libq*.so"))
        if available and platform not in available:
            raise EnvironmentProblem(f"QT_QPA_PLATFORM={platform} is not available in this OpenCV build "
                                     f"(it has: {', '.join(available)})",
                                     hint="unset QT_QPA_PLATFORM, or run under an X server (Xvfb for tests)")
    if sys.platform.startswith("linux") and platform in ("", "xcb") and not os.environ.get("DISPLAY"):
        raise EnvironmentProblem("no display to open a window on (DISPLAY is not set)",
                                 hint="run on a desktop session, or show the codes in the terminal "
                                      "without --window")


class WindowSink:
    """An OpenCV window. `keys(ms)` waits up to `ms` milliseconds for a key and returns its code
    (-1 for none) like `cv2.waitKey`, which is the default; tests script it (and pump events
    with `cv2.waitKey(1)` themselves)."""

    def __init__(self, *, title: str = "coldsign qr", fullscreen: bool = False, target_px: int = 960,
                 keys: Callable[[int], int] | None = None):
        self.title, self.fullscreen, self.target_px = title, fullscreen, target_px
        self._keys = keys if keys is not None else _opencv_waitkey
        self._open = False
        self.shown = 0

    def open(self, version: int) -> None:
        import cv2

        if self._open:
            return
        check_window_platform()
        try:
            cv2.namedWindow(self.title, cv2.WINDOW_NORMAL | cv2.WINDOW_KEEPRATIO)
            if self.fullscreen:
                cv2.setWindowProperty(self.title, cv2.WND_PROP_FULLSCREEN, cv2.WINDOW_FULLSCREEN)
        except cv2.error as err:
            raise EnvironmentProblem(f"cannot open a window: {str(err).strip().splitlines()[-1]}",
                                     hint="run on a desktop session (DISPLAY or WAYLAND_DISPLAY set), "
                                          "or show the codes in the terminal without --window") from err
        self._open = True

    def show(self, frame: QRFrame, status: str) -> None:
        import cv2

        image = frame.to_array(scale_for(frame.side, self.target_px))
        cv2.imshow(self.title, image)
        cv2.setWindowTitle(self.title, f"coldsign qr — {status}")
        self.shown += 1

    def wait_key(self, seconds: float) -> str | None:
        code = self._keys(max(1, int(round(seconds * 1000))))
        if code is None or code < 0:
            return None
        return KEY_COMMANDS.get(chr(code & 0xFF))

    def close(self) -> None:
        if self._open:
            import cv2

            cv2.destroyWindow(self.title)
            cv2.waitKey(1)
            self._open = False


def pick_density(fits: Callable[[int], bool], versions: dict[str, int],
                 order: Sequence[str] = DENSITIES) -> str | None:
    """The densest density whose QR version `fits` (e.g. the terminal), or None if none does."""
    for name in reversed(order):
        if fits(versions[name]):
            return name
    return None
