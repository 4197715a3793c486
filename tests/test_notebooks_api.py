"""Copies of shipped notebooks (never overwriting a file) and GET /yolo/workspace."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest
from tornado.httpclient import HTTPClientError

from jupyter_yolo.notebooks import copy_notebook, server_path, shipped_notebook

from .conftest import REPO_ROOT, expect_error, fetch_json, post_json


def shipped_cells() -> list[Any]:
    return list(json.loads((REPO_ROOT / "notebooks" / "quickstart.ipynb").read_text())["cells"])


class TestWorkspaceOutsideRoot:
    """The default test server: root and workspace are separate temporary folders."""

    async def test_workspace_location_is_null(self, jp_fetch: Any) -> None:
        assert await fetch_json(jp_fetch, "yolo", "workspace") == {"server_path": None}

    async def test_copies_go_to_the_root_and_never_overwrite(
        self, jp_fetch: Any, jp_root_dir: Path
    ) -> None:
        mine = jp_root_dir / "quickstart.ipynb"
        mine.write_text('{"mine": true}')
        first = await post_json(jp_fetch, "yolo", "notebooks", "quickstart", body={})
        second = await post_json(jp_fetch, "yolo", "notebooks", "quickstart", body={})
        assert first == {"name": "quickstart", "path": "quickstart-1.ipynb"}
        assert second["path"] == "quickstart-2.ipynb"
        assert mine.read_text() == '{"mine": true}'
        assert json.loads((jp_root_dir / "quickstart-1.ipynb").read_text())["cells"] == (
            shipped_cells()
        )
        assert not [p for p in jp_root_dir.iterdir() if p.name.endswith(".tmp")]

    async def test_bad_and_unknown_names(self, jp_fetch: Any) -> None:
        post = {"method": "POST", "body": ""}
        bad = await expect_error(jp_fetch, 400, "yolo", "notebooks", "..x", **post)
        assert "letters, digits" in bad["message"]
        unknown = await expect_error(jp_fetch, 404, "yolo", "notebooks", "nope", **post)
        assert "no example notebook" in unknown["message"]

    async def test_needs_authentication(self, jp_fetch: Any) -> None:
        with pytest.raises(HTTPClientError) as info:
            await jp_fetch("yolo", "workspace", headers={"Authorization": "token nope"})
        assert info.value.code == 403


class TestWorkspaceInsideRoot:
    @pytest.fixture
    def yolo_workspace(self, jp_root_dir: Path) -> Path:
        path = jp_root_dir / "projects" / "yolo"
        path.mkdir(parents=True)
        return path

    async def test_copy_goes_into_the_workspace(self, jp_fetch: Any, yolo_workspace: Path) -> None:
        assert await fetch_json(jp_fetch, "yolo", "workspace") == {"server_path": "projects/yolo"}
        copy = await post_json(jp_fetch, "yolo", "notebooks", "quickstart", body={})
        assert copy["path"] == "projects/yolo/quickstart.ipynb"
        assert (yolo_workspace / "quickstart.ipynb").is_file()


def test_concurrent_copies_take_distinct_names(tmp_path: Path) -> None:
    results: list[Path] = []
    threads = [
        threading.Thread(target=lambda: results.append(copy_notebook("quickstart", tmp_path)))
        for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({p.name for p in results}) == 8
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in results)


def test_shipped_notebook_is_found_in_the_repository() -> None:
    assert shipped_notebook("quickstart").is_file()


def test_server_path() -> None:
    root = Path("/srv/root")
    assert server_path(root, root) == ""
    assert server_path(root / "a" / "b", root) == "a/b"
    assert server_path(Path("/elsewhere"), root) is None
