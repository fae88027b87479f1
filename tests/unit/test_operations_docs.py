"""Operator-facing files stay consistent with the settings: every variable the settings read is
in .env.example and documented in the README, and nothing else is."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _variables_read_by_settings() -> set[str]:
    source = (ROOT / "naboria" / "settings.py").read_text()
    return set(re.findall(r'_read(?:_bool|_int|_list)?\("([A-Z_]+)"', source))


def test_env_example_lists_exactly_the_variables_settings_read():
    lines = (ROOT / ".env.example").read_text().splitlines()
    keys = {line.split("=", 1)[0] for line in lines if line and not line.startswith("#")}
    assert keys == _variables_read_by_settings()


def test_readme_documents_every_variable():
    readme = (ROOT / "README.md").read_text()
    missing = {name for name in _variables_read_by_settings() if f"`{name}`" not in readme}
    assert not missing


def test_readme_opens_with_the_two_commands():
    opening = (ROOT / "README.md").read_text().splitlines()[:15]
    assert any("make run" in line for line in opening)
    assert any("make test" in line for line in opening)


def test_compose_runs_every_process_role_with_the_env_file():
    compose = (ROOT / "docker-compose.yml").read_text()
    for command in ("naboria.asgi:application", '"worker"', '"beat"', '"prepare"'):
        assert command in compose
    assert "env_file: .env" in compose
