"""The dashboard's static table: every shipped file is loaded under its name with the right
type, and every module a page imports is one of them (a typo in an import would only show in
a browser otherwise)."""

from __future__ import annotations

import re
from pathlib import PurePosixPath

from photonic.web.pages import LOGIN, SHELL, load_static

IMPORT = re.compile(r"""^import\s[^'"]*['"](\.{1,2}/[^'"]+)['"]""", re.MULTILINE)


def test_the_shell_the_login_page_and_the_modules_are_shipped() -> None:
    files = load_static()
    assert {SHELL, LOGIN, "app.css", "js/app.js", "js/live.js", "js/login.js"} <= set(files)
    assert files["js/app.js"].content_type == "text/javascript"
    assert files["app.css"].content_type == "text/css"
    assert files[SHELL].content_type == "text/html"
    assert not [name for name in files if "__pycache__" in name or name.startswith(".")]


def test_every_relative_import_names_a_shipped_module() -> None:
    files = load_static()
    for name, found in files.items():
        if not name.endswith(".js"):
            continue
        for target in IMPORT.findall(found.body.decode()):
            parts: list[str] = []
            for part in (PurePosixPath(name).parent / target).parts:
                if part == "..":
                    parts.pop()
                elif part != ".":
                    parts.append(part)
            assert "/".join(parts) in files, f"{name} imports {target}, which is not shipped"


def test_the_html_pages_load_only_shipped_files() -> None:
    files = load_static()
    for page in (SHELL, LOGIN):
        for ref in re.findall(r'(?:src|href)="/static/([^"]+)"', files[page].body.decode()):
            assert ref in files, f"{page} refers to /static/{ref}, which is not shipped"
