"""coldsign.store: whole-or-nothing writes that reach the disk, and secrets written without temp files."""

from __future__ import annotations

import os
import stat

import pytest

from coldsign import store


@pytest.fixture()
def fsyncs(monkeypatch):
    """What each os.fsync call synced: the path behind the descriptor (file or folder)."""
    seen: list[str] = []
    real = os.fsync

    def recording(fd):
        seen.append(os.readlink(f"/proc/self/fd/{fd}"))
        return real(fd)

    monkeypatch.setattr(os, "fsync", recording)
    return seen


def test_atomic_write_syncs_the_data_then_the_folder(tmp_path, fsyncs):
    target = tmp_path / "keystores" / "alice.json"
    store.atomic_write(target, b'{"v": 1}', mode=0o600)
    assert target.read_bytes() == b'{"v": 1}' and stat.S_IMODE(target.stat().st_mode) == 0o600
    # the temp file's data before the rename, then the folder that holds the new name
    assert len(fsyncs) == 2 and fsyncs[0].startswith(str(target.parent / ".alice.json."))
    assert fsyncs[1] == str(target.parent)
    assert os.listdir(target.parent) == ["alice.json"]


def test_write_new_creates_the_secret_in_place_and_syncs_it(tmp_path, fsyncs):
    target = tmp_path / "words.txt"
    store.write_new(target, "abandon ability\n")
    assert target.read_text() == "abandon ability\n" and stat.S_IMODE(target.stat().st_mode) == 0o600
    assert fsyncs == [str(target), str(tmp_path)]           # no temp file ever held the secret


def test_write_new_never_replaces(tmp_path):
    target = tmp_path / "share-1.txt"
    target.write_text("the first share\n")
    with pytest.raises(FileExistsError):
        store.write_new(target, "another\n")
    assert target.read_text() == "the first share\n" and os.listdir(tmp_path) == ["share-1.txt"]


def test_write_new_removes_what_a_failed_write_left(tmp_path, monkeypatch):
    def disk_full(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(OSError, match="No space left"):
        store.write_new(tmp_path / "seed.png", b"\x89PNG...")
    assert os.listdir(tmp_path) == []
