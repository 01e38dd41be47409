from __future__ import annotations

import pytest

from gemlm.atomic import atomic_folder


def test_replaces_whole_or_not_at_all(tmp_path) -> None:
    target = tmp_path / "out"
    with atomic_folder(target) as tmp:
        (tmp / "a.txt").write_text("1")
    assert (target / "a.txt").read_text() == "1"
    with pytest.raises(RuntimeError), atomic_folder(target) as tmp:
        (tmp / "b.txt").write_text("half")
        raise RuntimeError("crash mid-write")
    assert sorted(p.name for p in target.iterdir()) == ["a.txt"]  # old folder untouched
    with atomic_folder(target) as tmp:
        (tmp / "b.txt").write_text("2")
    assert sorted(p.name for p in target.iterdir()) == ["b.txt"]  # replaced whole
    assert [p.name for p in tmp_path.iterdir()] == ["out"]  # no temp folders left
