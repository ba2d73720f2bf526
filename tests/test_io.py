import os
import subprocess
import sys

import pytest

from sparring.io import append_jsonl, atomic_dir, atomic_write_text, read_jsonl


def test_append_and_read_jsonl(tmp_path):
    path = tmp_path / "m.jsonl"
    assert read_jsonl(path) == []
    append_jsonl(path, {"round": 0})
    append_jsonl(path, {"round": 1, "x": 0.5})
    assert read_jsonl(path) == [{"round": 0}, {"round": 1, "x": 0.5}]


def test_a_killed_writer_leaves_the_old_file_whole(tmp_path):
    path = tmp_path / "f.txt"
    atomic_write_text(path, "old")
    # the writer is killed (SIGKILL) after writing its temporary file, just before the rename
    code = ("import os; from sparring.io import atomic_write_text\n"
            "os.replace = lambda *a: os.kill(os.getpid(), 9)\n"
            f"atomic_write_text({str(path)!r}, 'new' * 1000)\n")
    result = subprocess.run([sys.executable, "-c", code])
    assert result.returncode == -9
    assert path.read_text() == "old"


def test_atomic_dir_replaces_whole_folders(tmp_path):
    target = tmp_path / "ckpt"
    with atomic_dir(target) as tmp:
        (tmp / "a").write_text("1")
    with pytest.raises(RuntimeError):
        with atomic_dir(target) as tmp:
            (tmp / "a").write_text("2")
            raise RuntimeError("killed halfway")
    assert (target / "a").read_text() == "1" and not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    with atomic_dir(target) as tmp:
        (tmp / "b").write_text("3")
    assert sorted(os.listdir(target)) == ["b"]
