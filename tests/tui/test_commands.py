"""`prunescope tui` registration, arguments, keymap files and `--serve` (bound to localhost only)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from engine.errors import UserError
from tui import commands


def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    commands.register(parser.add_subparsers(dest="command"))
    return parser.parse_args(["tui", *argv])


def test_register_and_arguments(tmp_path: Path) -> None:
    args = _parse(str(tmp_path / "a"), str(tmp_path / "b"), "--serve", "--port", "8123", "--no-glmm")
    assert args.study == tmp_path / "a" and args.run2 == tmp_path / "b"
    assert args.serve and args.port == 8123 and args.no_glmm and args.func is commands.run_tui


def test_missing_folder_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="no such study or run folder"):
        commands.run_tui(_parse(str(tmp_path / "nope")))


def test_keymap_file(tmp_path: Path) -> None:
    good = tmp_path / "keys.json"
    good.write_text(json.dumps({"app.quit": "x,ctrl+q"}), encoding="utf-8")
    assert commands.read_keymap(good) == {"app.quit": "x,ctrl+q"}
    bad = tmp_path / "bad.json"
    bad.write_text("[1, 2]", encoding="utf-8")
    with pytest.raises(UserError, match="binding id"):
        commands.read_keymap(bad)
    with pytest.raises(UserError, match="cannot read keymap"):
        commands.read_keymap(tmp_path / "missing.json")
    typo = tmp_path / "typo.json"  # a misspelt id would remap nothing, silently
    typo.write_text(json.dumps({"items.next_discordent": "n", "app.quit": "x"}), encoding="utf-8")
    with pytest.raises(UserError, match=r"no binding has the id 'items.next_discordent' .*items.next_discordant"):
        commands.read_keymap(typo)
    ids = {"app.quit", "items.next_discordant", "item.next_discordant", "item.full_text", "fulltext.next", "lines.down"}
    assert ids <= commands.binding_ids()


def test_serve_binds_localhost(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import textual_serve.server

    seen = {}

    class FakeServer:
        def __init__(self, command: str, host: str, port: int) -> None:
            seen.update(command=command, host=host, port=port)

        def serve(self) -> None:
            seen["served"] = True

    monkeypatch.setattr(textual_serve.server, "Server", FakeServer)
    assert commands.run_tui(_parse(str(tmp_path), "--serve", "--port", "8765", "--no-stats")) == 0
    assert seen["host"] == "127.0.0.1" and seen["port"] == 8765 and seen["served"]
    assert "engine.cli tui" in seen["command"] and str(tmp_path) in seen["command"] and "--no-stats" in seen["command"]
