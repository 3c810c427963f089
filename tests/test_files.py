"""Writing files: folders made for an output."""

from __future__ import annotations

import os

import pytest

from blinkgate.cli import main
from blinkgate.files import make_folders, write_atomic


def test_a_file_in_the_way_of_a_folder_is_named(tmp_path):
    # mkdir said "File exists" of the folder asked for (report/), which did not exist:
    # `eval --report file/report` printed "cannot write there (File exists)".
    blocked = tmp_path / "file"
    blocked.write_text("a file where a folder should be")
    for folder in (blocked, blocked / "report", blocked / "a" / "b"):
        with pytest.raises(NotADirectoryError, match=f"{blocked} is there and is not a folder"):
            make_folders(folder)
    (tmp_path / "link").symlink_to(tmp_path / "missing")
    with pytest.raises(NotADirectoryError, match="link is there and is not a folder"):
        make_folders(tmp_path / "link" / "report")
    make_folders(tmp_path / "new" / "report")
    assert (tmp_path / "new" / "report").is_dir()


def test_eval_names_the_file_in_the_way_of_its_report(tmp_path, capsys):
    (tmp_path / "file").write_text("")
    assert main(["eval", str(tmp_path / "m.csv"), "--report", str(tmp_path / "file" / "report")]) == 2
    assert f"report: {tmp_path / 'file'} is there and is not a folder\n" in capsys.readouterr().err


def test_write_atomic_syncs_the_data_before_the_rename_and_the_folder_after(tmp_path, monkeypatch):
    # The rename alone was no barrier: after a power cut, ext4 could show the new name with no
    # data (an empty photo, an empty results.json) and the old file gone.
    calls = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        calls.append(("fsync", os.path.samefile(f"/proc/self/fd/{fd}", tmp_path)))
        real_fsync(fd)

    def replace(src, dst):
        calls.append(("replace", os.path.getsize(src)))
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    write_atomic(tmp_path / "photo.jpg", b"jpeg bytes")
    # The file's fsync (not the folder's) first, then the rename, then the folder's fsync.
    assert calls == [("fsync", False), ("replace", 10), ("fsync", True)]
    assert (tmp_path / "photo.jpg").read_bytes() == b"jpeg bytes"
