"""Calibration sources and the reference C4 sampler."""

from __future__ import annotations

import gzip
import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from engine.config import CalibrationSpec
from engine.errors import UserError
from engine.pruning.calibration import (
    bundled_texts,
    ids_sha256,
    load_calibration,
    load_documents,
    read_jsonl_texts,
    sample_reference,
)


def _word_ids(text: str) -> list[int]:
    return [sum(map(ord, w)) % 1000 for w in text.split()]


def _reference_get_c4(docs: list[str], nsamples: int, seqlen: int, seed: int) -> torch.Tensor:
    """The reference sampler as written in the Wanda/SparseGPT repositories (global random)."""
    random.seed(seed)
    out = []
    for _ in range(nsamples):
        while True:
            i = random.randint(0, len(docs) - 1)
            enc = torch.tensor([_word_ids(docs[i])])
            if enc.shape[1] > seqlen:
                break
        i = random.randint(0, enc.shape[1] - seqlen - 1)
        out.append(enc[:, i : i + seqlen])
    return torch.cat(out)


def _corpus(n: int = 40, seed: int = 3) -> list[str]:
    rng = random.Random(seed)
    words = ["river", "bread", "train", "bee", "lamp", "map", "tea", "snow", "book", "sea"]
    return [" ".join(rng.choice(words) + str(rng.randint(0, 99)) for _ in range(rng.randint(3, 60))) for _ in range(n)]


@pytest.mark.parametrize("seed", [0, 1, 7])
def test_sampler_reproduces_reference_c4_sampler(seed: int) -> None:
    docs = _corpus()
    ours = sample_reference(docs, _word_ids, nsamples=12, seqlen=20, seed=seed)
    assert torch.equal(ours, _reference_get_c4(docs, 12, 20, seed))
    assert ours.shape == (12, 20) and ours.dtype == torch.long


def test_sampler_does_not_touch_global_random_state() -> None:
    random.seed(123)
    expected = random.random()
    random.seed(123)
    sample_reference(_corpus(), _word_ids, nsamples=3, seqlen=10, seed=0)
    assert random.random() == expected


def test_too_short_documents_are_a_clear_error() -> None:
    docs = ["a b c", "d e f g"]
    with pytest.raises(UserError, match=r"no document longer than seqlen=8 tokens.*longest seen 4 tokens"):
        sample_reference(docs, _word_ids, nsamples=2, seqlen=8, seed=0)
    # a corpus where long documents are too rare to find within the draw bound
    docs = ["x"] * 5000 + [" ".join(["y"] * 50)]
    with pytest.raises(UserError, match="seqlen=20"):
        sample_reference(docs, _word_ids, nsamples=1, seqlen=20, seed=0, max_draws_per_sample=10)


def test_jsonl_gz_text_and_errors(tmp_path: Path) -> None:
    rows = [{"text": "first document"}, {"text": "second one", "url": "x"}]
    plain = tmp_path / "c4.jsonl"
    plain.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    gz = tmp_path / "c4-train.00000-of-01024.json.gz"
    with gzip.open(gz, "wt", encoding="utf-8") as fh:
        fh.write(plain.read_text(encoding="utf-8"))
    assert load_documents(str(plain)) == load_documents(str(gz)) == ["first document", "second one"]
    txt = tmp_path / "t.txt"
    txt.write_text("some plain text", encoding="utf-8")
    assert load_documents(str(txt)) == ["some plain text"]
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "ok"}\n{"text": oops}\n', encoding="utf-8")
    with pytest.raises(UserError, match=r"bad.jsonl: line 2: not valid JSON"):
        read_jsonl_texts(bad)
    nofield = tmp_path / "nofield.jsonl"
    nofield.write_text('{"content": "x"}\n', encoding="utf-8")
    with pytest.raises(UserError, match=r"line 1: expected an object with a string field 'text'"):
        read_jsonl_texts(nofield)
    with pytest.raises(UserError, match="no such file"):
        load_documents(str(tmp_path / "missing.jsonl"))
    with pytest.raises(UserError, match="unknown file type"):
        load_documents(str(txt.rename(tmp_path / "t.docx")))


def test_pretokenized_files(tmp_path: Path) -> None:
    ids = torch.randint(0, 100, (6, 16))
    np.save(tmp_path / "ids.npy", ids.numpy().astype(np.int32))
    torch.save(ids, tmp_path / "ids.pt")
    from safetensors.torch import save_file

    save_file({"input_ids": ids}, str(tmp_path / "ids.safetensors"))
    for name in ("ids.npy", "ids.pt", "ids.safetensors"):
        data = load_calibration(
            CalibrationSpec(source=str(tmp_path / name), nsamples=4, seqlen=16), None, vocab_size=100
        )
        assert torch.equal(data.ids, ids[:4]) and data.sha256 == ids_sha256(ids[:4])
        assert data.to_dict()["sampler"] == "pretokenized" and data.to_dict()["ids_sha256"] == data.sha256
    with pytest.raises(UserError, match="rows have 16 tokens but seqlen=8"):
        load_calibration(CalibrationSpec(source=str(tmp_path / "ids.npy"), nsamples=4, seqlen=8), None)
    with pytest.raises(UserError, match="6 rows but nsamples=10"):
        load_calibration(CalibrationSpec(source=str(tmp_path / "ids.pt"), nsamples=10, seqlen=16), None)
    with pytest.raises(UserError, match="outside the model's vocabulary"):
        load_calibration(CalibrationSpec(source=str(tmp_path / "ids.pt"), nsamples=4, seqlen=16), None, vocab_size=50)
    np.save(tmp_path / "f.npy", np.zeros((4, 16), dtype=np.float32))
    with pytest.raises(UserError, match="must be integers"):
        load_calibration(CalibrationSpec(source=str(tmp_path / "f.npy"), nsamples=4, seqlen=16), None)


def test_hash_depends_on_ids_and_shape() -> None:
    a = torch.arange(12).view(3, 4)
    assert ids_sha256(a) == ids_sha256(a.clone().to(torch.int32))
    assert ids_sha256(a) != ids_sha256(a.view(4, 3))
    b = a.clone()
    b[2, 3] += 1
    assert ids_sha256(a) != ids_sha256(b)


def test_bundled_text_is_multilingual_and_sampler_is_deterministic(tmp_path: Path) -> None:
    from tests.engine.pruning.prune_fixtures import train_tokenizer

    docs = bundled_texts()
    assert len(docs) >= 14 and sum(len(d.split()) for d in docs) > 2000
    langs = {
        json.loads(line)["lang"]
        for line in (Path(__file__).resolve().parents[3] / "engine/data/calibration/calibration.jsonl")
        .read_text("utf-8")
        .splitlines()
    }
    assert langs >= {"en", "de", "fr", "es", "ru", "zh", "ja"}
    tok = train_tokenizer(tmp_path, docs)
    spec = CalibrationSpec(source="bundled", nsamples=6, seqlen=64, seed=5)
    a, b = load_calibration(spec, tok), load_calibration(spec, tok)
    assert torch.equal(a.ids, b.ids) and a.sha256 == b.sha256
    assert a.to_dict()["sampler"] == "c4_reference" and a.to_dict()["n_documents"] == len(docs)
    c = load_calibration(CalibrationSpec(source="bundled", nsamples=6, seqlen=64, seed=6), tok)
    assert c.sha256 != a.sha256
    random.seed(5)  # the same draws as the reference, with the real tokenizer's ids
    for row in a.ids:
        while True:
            enc = tok(docs[random.randint(0, len(docs) - 1)], return_tensors="pt").input_ids
            if enc.shape[1] > 64:
                break
        i = random.randint(0, enc.shape[1] - 64 - 1)
        assert torch.equal(row, enc[0, i : i + 64])
