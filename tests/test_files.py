"""Writing files: folders made for an output."""

from __future__ import annotations

import pytest

from blinkgate.cli import main
from blinkgate.files import make_folders


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
    assert f"cannot write there ({tmp_path / 'file'} is there and is not a folder)" in capsys.readouterr().err
