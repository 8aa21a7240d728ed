"""Files and folders: atomic writes, bounded reads, the home folder layout.

An atomic write is temp file in the same folder + fsync + rename + fsync of the folder, so a
crash leaves either the old file or the new one, never a torn one.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from coldsign.errors import BadInput, EnvironmentProblem, NotFound


def atomic_write(path: Path | str, data: bytes | str, *, mode: int = 0o644, replace: bool = True) -> Path:
    """Write `data` to `path` whole or not at all. With `replace=False` an existing file is never
    replaced, even one another process lands while we write: FileExistsError, the temp file removed."""
    path = Path(path)
    if isinstance(data, str):
        data = data.encode()
    folder = path.parent if str(path.parent) else Path(".")
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if replace:
            os.replace(tmp, path)
        else:
            # NOTE: link(2) fails if the name exists, where a rename would silently replace it.
            os.link(tmp, path)
            os.unlink(tmp)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    sync_folder(folder)
    return path


def write_new(path: Path | str, data: bytes | str, *, mode: int = 0o600) -> Path:
    """Create `path` (never replacing a file: FileExistsError) with `data`, fsync'd, folder too.

    For secrets (words, shares, a SeedQR): written straight to their own name, never to a temp file
    beside it. A crash part-way may leave a short file there, which its checksum (BIP-39, SLIP-39,
    PNG) then refuses; a failure here removes it."""
    path = Path(path)
    if isinstance(data, str):
        data = data.encode()
    folder = path.parent if str(path.parent) else Path(".")
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    sync_folder(folder)
    return path


def sync_folder(folder: Path | str) -> None:
    """fsync a folder, so a file created, renamed or removed in it stays so after a crash."""
    dir_fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def read_limited(path: Path | str, limit: int, *, what: str = "file") -> bytes:
    """Read a whole file, refusing one larger than `limit` bytes (read once, bounded)."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            data = f.read(limit + 1)
    except FileNotFoundError:
        raise NotFound(f"{what} not found", where=str(path)) from None
    except IsADirectoryError:
        raise BadInput(f"{what} is a folder, not a file", where=str(path)) from None
    except PermissionError:
        raise EnvironmentProblem(f"{what} cannot be read: permission denied", where=str(path),
                                 hint="run as the user who owns it, or fix its permissions") from None
    except OSError as err:
        raise EnvironmentProblem(f"{what} cannot be read: {err.strerror or err}", where=str(path)) from None
    if len(data) > limit:
        raise BadInput(f"{what} is larger than the limit of {limit} bytes", where=str(path),
                       hint="check that this is the right file")
    return data


def default_home() -> Path:
    """The user data folder: $XDG_DATA_HOME/coldsign or ~/.local/share/coldsign."""
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(base) / "coldsign"
