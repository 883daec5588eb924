"""A hub model id that is not in the local cache is checked before anything is written: a misspelt or
gated id, an unknown revision and a machine that cannot reach the hub are each one clear error (the
hub is simulated; no test touches the network)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import huggingface_hub
import pytest
from huggingface_hub import constants
from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError, RevisionNotFoundError

from engine.cli import main
from engine.config import ModelSpec
from engine.errors import UserError
from engine.models import check_model_source

WHERE = "study.toml: [[models]] #1.id"


def _hub_error(cls: type[Exception]) -> Exception:
    """The hub's error without an HTTP response (its constructor wants one from the hub's HTTP library)."""
    err = cls.__new__(cls)
    Exception.__init__(err, "404 Client Error")
    return err


@dataclass
class Hub:
    """The simulated hub: `raises` is what `model_info` raises (None: the model exists); `asked` its calls."""

    raises: Exception | None = None
    asked: list[tuple[str, str | None]] = field(default_factory=list)


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch) -> Hub:
    """Nothing in the local cache, the hub online (simulated)."""
    state = Hub()

    def model_info(repo_id: str, revision: str | None = None, timeout: float | None = None) -> object:
        state.asked.append((repo_id, revision))
        if state.raises is not None:
            raise state.raises
        return object()

    monkeypatch.setattr(huggingface_hub, "try_to_load_from_cache", lambda *a, **k: None)
    monkeypatch.setattr(huggingface_hub, "model_info", model_info)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    return state


@pytest.mark.parametrize(
    "error, message",
    [
        (
            _hub_error(RepositoryNotFoundError),
            r"no model 'org/modle' on the hub \(or it is private\); check the spelling",
        ),
        (_hub_error(GatedRepoError), r"'org/modle' is gated: accept its terms on the hub and log in"),
        (_hub_error(RevisionNotFoundError), r"has no revision 'v9'"),
        (OSError("[Errno -2] Name or service not known"), r"is not in the Hugging Face cache .* cannot be reached"),
    ],
)
def test_an_uncached_hub_model_is_checked_on_the_hub(hub: Hub, error: Exception, message: str) -> None:
    hub.raises = error
    with pytest.raises(UserError, match=message) as info:
        check_model_source(ModelSpec(id="org/modle", revision="v9"), WHERE)
    assert str(info.value).startswith(WHERE + ": ")
    assert hub.asked == [("org/modle", "v9")]


def test_an_existing_hub_model_passes(hub: Hub) -> None:
    check_model_source(ModelSpec(id="org/model"), WHERE)
    assert hub.asked == [("org/model", None)]


def test_a_cached_model_asks_nothing_of_the_hub(hub: Hub, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(huggingface_hub, "try_to_load_from_cache", lambda *a, **k: "/cache/config.json")
    check_model_source(ModelSpec(id="org/model"), WHERE)
    assert hub.asked == []


def test_offline_mode_is_named_without_asking_the_hub(hub: Hub, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(UserError, match=r"not in the Hugging Face cache .* and HF_HUB_OFFLINE is set"):
        check_model_source(ModelSpec(id="org/model"), WHERE)
    assert hub.asked == []


def test_an_id_that_cannot_be_a_hub_id_is_named() -> None:
    with pytest.raises(UserError, match="'my model' is not a model folder, a GGUF file or a hub id"):
        check_model_source(ModelSpec(id="my model"), WHERE)


def test_run_refuses_a_misspelt_hub_model_before_writing(
    hub: Hub, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    hub.raises = _hub_error(RepositoryNotFoundError)
    spec = tmp_path / "study.toml"
    spec.write_text("[items]\nn_per_language = 2\nlanguages = ['en']\n[[models]]\nid = 'org/modle'\n", encoding="utf-8")
    assert main(["run", str(spec), "--out", str(tmp_path / "out"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert f"{spec}: [[models]] #1.id: no model 'org/modle' on the hub" in err
    assert not (tmp_path / "out").exists()
