"""JupyterLab starts with the extension behind a token, and Chromium can use it."""

from __future__ import annotations

import urllib.error
from typing import Any

import pytest

from ..server_process import ServerProcess
from .conftest import screenshot


def test_lab_requires_token_and_serves_the_api(lab: ServerProcess) -> None:
    with pytest.raises(urllib.error.HTTPError) as info:
        lab.request("GET", "/yolo/accelerators/usage", token=None)
    assert info.value.code == 403
    assert "cpu" in lab.request("GET", "/yolo/accelerators/usage")


def test_browser_session_reaches_the_api_with_its_cookie(page: Any, lab: ServerProcess) -> None:
    status = page.evaluate(
        """async () => {
            const xsrf = document.cookie.split('; ').find(c => c.startsWith('_xsrf='));
            const r = await fetch('/yolo/accelerators/usage');
            const post = await fetch('/yolo/jobs', {method: 'POST', body: '{}',
                headers: {'X-XSRFToken': xsrf ? xsrf.split('=')[1] : ''}});
            const noXsrf = await fetch('/yolo/jobs', {method: 'POST', body: '{}'});
            return [r.status, post.status, noXsrf.status];
        }"""
    )
    # GET works with the session cookie; POST with the XSRF token reaches validation (400);
    # POST without it is refused
    assert status == [200, 400, 403]
    screenshot(page, "lab-start")
