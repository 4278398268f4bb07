"""The use-case examples in ``examples/`` run end to end on the emulator and print sensible results.

Two ways in, so the examples never rot:

* as a user runs them (``python examples/x.py`` from the repository root, no key): exit code 0,
  the emulator notice, and the key lines of the printed result;
* ``main()`` imported in-process, with ``DASHSCOPE_API_KEY`` + ``DASHSCOPE_BASE_URL`` pointing at
  the ``emulator_server`` fixture (what a user does with ``dashscope-embed emulator``), so the
  returned structure, the request log and the exact emulator vectors can be checked.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest

from dashscope_embed.emulator import Emulator, EmulatorServer, text_vector

pytestmark = pytest.mark.integration

KEY = "sk-examples-test"

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
NOTICE = (
    "No DASHSCOPE_API_KEY set: running on the local dashscope-embed emulator "
    "(deterministic lexical vectors, NOT the real model)"
)


def _run_script(name: str) -> str:
    """Run ``examples/<name>`` the way the docs say, without any DashScope settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DASHSCOPE_")}
    proc = subprocess.run(
        [sys.executable, f"examples/{name}"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(NOTICE + "\n")
    return proc.stdout


@pytest.fixture
def common(monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    """``examples/_common.py`` importable, with its once-per-process connection cache reset."""
    monkeypatch.syspath_prepend(str(EXAMPLES))
    import _common

    _common._connect.cache_clear()
    yield _common
    _common._connect.cache_clear()


@pytest.fixture
def served(
    common: ModuleType, emulator_server: EmulatorServer, monkeypatch: pytest.MonkeyPatch
) -> Emulator:
    """Environment of a user pointing the examples at a running emulator; returns its log owner."""
    monkeypatch.setenv("DASHSCOPE_API_KEY", KEY)
    monkeypatch.setenv("DASHSCOPE_BASE_URL", emulator_server.url)
    return emulator_server.emulator


def _load(name: str) -> Any:
    """Import ``examples/<name>.py`` under a private name (needs ``_common`` on ``sys.path``)."""
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _vectors(texts: list[str], **options: Any) -> np.ndarray:
    """The exact rows the emulator returns for ``texts`` with the examples' model and dimension."""
    rows = [text_vector("text-embedding-v4", t, dimension=512, **options) for t in texts]
    return np.stack(rows).astype(np.float64)


def _number(pattern: str, text: str) -> float:
    """The number captured by ``pattern``'s first group in ``text`` (which must match)."""
    match = re.search(pattern, text)
    assert match is not None, pattern
    return float(match[1])


# --- as a user runs them -------------------------------------------------------------------------


SCRIPT_OUTPUT = {
    "semantic_search.py": [
        r"\n  as document +#0 0\.\d{3}   #\d",
        r"\n  as query +#2 0\.\d{3}   #\d",
        r"\n  query \+ instruct +#7 0\.\d{3}   #\d",
        r"best match: To reset your password",
        r"best match: Refunds are paid back",
        r"best match: Invoices can be downloaded",
        r"best match: Orders over 50 euros ship for free",
        r"best match: The mobile app works offline",
    ],
    "recommendation.py": [r"Recommended .*\n  hike-0[456] .*\n  hike-0[456] .*\n  hike-0[456] "],
    "clustering.py": [
        r"topics: \{'sports': 5\}",
        r"topics: \{'markets': 5\}",
        r"topics: \{'weather': 5\}",
        r"Purity against the hidden topic labels: 1\.00",
    ],
    "zero_shot_classification.py": [r"(\[ok\]\n.*){8}", r"8/8 messages got their expected label"],
    "anomaly_detection.py": [
        r"Threshold \(mean \+ 3 std\): 0\.\d{3}",
        r"\nnormal   distance 0\.\d{3}  Great coffee machine",
        r"\nnormal   distance 0\.\d{3}  Noisy grinder",
        r"\nANOMALY  distance \d\.\d{3}  xq7 zzkv!!",
    ],
}


@pytest.mark.parametrize("script", list(SCRIPT_OUTPUT))
def test_script_runs_on_the_emulator_without_a_key(script: str) -> None:
    """Each example, run as ``python examples/x.py`` with no key, says so and prints its result."""
    out = _run_script(script)
    for pattern in SCRIPT_OUTPUT[script]:
        assert re.search(pattern, out, flags=re.DOTALL), pattern


def test_connection_without_a_key_starts_one_loopback_emulator(
    common: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without a key, ``connection()`` serves the emulator on 127.0.0.1 once and says so once."""
    first = common.connection()
    second = common.connection()
    assert first == second
    assert first["api_key"] == "sk-emulator"
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+", first["base_url"])
    assert capsys.readouterr().out == NOTICE + "\n"


def test_connection_with_a_key_defers_to_the_environment(
    served: Emulator, common: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    """With a key set, ``connection()`` returns ``{}`` and names the host the clients will use."""
    assert common.connection() == {}
    out = capsys.readouterr().out
    assert out.startswith("Using the real DashScope service (region set by base_url, http://127")
    assert served.requests == []


# --- main() in-process, with the request log -----------------------------------------------------


def test_semantic_search_ranks_the_answer_first_in_every_mode(served: Emulator) -> None:
    """Each question's answer ranks first in all three modes, with the emulator's exact cosines."""
    example = _load("semantic_search")
    rankings = example.main()

    answers = {
        "How do I reset my password?": 0,
        "When will I get my refund?": 2,
        "Where can I download an invoice?": 7,
        "Is shipping free?": 5,
        "Does the app work without internet?": 6,
    }
    options = {
        "as document": {"text_type": "document"},
        "as query": {"text_type": "query"},
        "query + instruct": {"text_type": "query", "instruct": example.INSTRUCT},
    }
    faq = _vectors(example.FAQ)
    assert list(rankings) == list(options)
    for mode, ranking in rankings.items():
        expected = _vectors(example.QUESTIONS, **options[mode]) @ faq.T
        for q, (question, hits) in enumerate(ranking.items()):
            assert hits[0][0] == answers[question]
            top = [i for i, _ in hits]
            assert top == list(np.argsort(-expected[q])[:3])
            assert [s for _, s in hits] == pytest.approx(expected[q][top], abs=1e-5)

    params = [r.json["parameters"] for r in served.requests]
    assert [p.get("text_type", "document") for p in params] == [
        "document",
        "document",
        "query",
        "query",
    ]
    assert [p.get("instruct") for p in params] == [None, None, None, example.INSTRUCT]
    assert {p["dimension"] for p in params} == {512}
    assert {r.json["model"] for r in served.requests} == {"text-embedding-v4"}


def test_recommendation_suggests_unread_articles_on_the_history_topic(served: Emulator) -> None:
    """The top picks are unread hiking articles, scored by cosine with the history's mean vector."""
    example = _load("recommendation")
    picks = example.main()

    ids = list(example.CATALOGUE)
    items = _vectors(list(example.CATALOGUE.values()))
    profile = items[[ids.index(i) for i in example.HISTORY]].mean(axis=0)
    profile /= np.linalg.norm(profile)
    assert len(picks) == 3
    for item, score in picks:
        assert item.startswith("hike-")
        assert item not in example.HISTORY
        assert score == pytest.approx(items[ids.index(item)] @ profile, abs=1e-5)
    assert [s for _, s in picks] == sorted((s for _, s in picks), reverse=True)
    # 14 texts, at most 10 rows per request for text-embedding-v4: two batches (sent concurrently).
    assert sorted(len(r.json["input"]["texts"]) for r in served.requests) == [4, 10]


def test_clustering_separates_the_three_topics(served: Emulator) -> None:
    """KMeans on the headline vectors puts each topic in its own cluster (purity 1.0)."""
    example = _load("clustering")
    result = example.main()

    assert result["purity"] == 1.0
    assert sorted(len(set(topics)) for topics in result["topics"]) == [1, 1, 1]
    assert sorted(t for topics in result["topics"] for t in topics) == sorted(
        topic for topic, _ in example.HEADLINES
    )
    clustered = sorted(h for cluster in result["clusters"] for h in cluster)
    assert clustered == sorted(text for _, text in example.HEADLINES)
    assert {r.json["parameters"]["dimension"] for r in served.requests} == {512}


def test_zero_shot_classification_labels_every_message(served: Emulator) -> None:
    """Every message gets its expected label; messages go as instructed queries, labels as docs."""
    example = _load("zero_shot_classification")
    predictions = example.main()

    names = list(example.LABELS)
    labels = _vectors(list(example.LABELS.values()))
    texts = [m for _, m in example.MESSAGES]
    messages = _vectors(texts, text_type="query", instruct=example.INSTRUCT)
    scores = messages @ labels.T
    assert [p[0] for p in predictions] == texts
    assert [p[1] for p in predictions] == [label for label, _ in example.MESSAGES]
    for (_, label, cosine, gap), row in zip(predictions, scores, strict=True):
        assert cosine == pytest.approx(row[names.index(label)], abs=1e-5)
        assert gap == pytest.approx(cosine - np.sort(row)[-2], abs=1e-5)
        assert gap > 0.05
    sent = {tuple(r.json["input"]["texts"]): r.json["parameters"] for r in served.requests}
    assert sent[tuple(texts)].get("text_type") == "query"
    assert sent[tuple(texts)]["instruct"] == example.INSTRUCT
    assert sent[tuple(example.LABELS.values())].get("text_type", "document") == "document"


def test_anomaly_detection_flags_the_garbled_text_and_no_normal_sample(served: Emulator) -> None:
    """Garbled and off-topic texts exceed the data-derived threshold; normal ones stay under it."""
    example = _load("anomaly_detection")
    report = example.main()

    garbled, off_topic = example.INCOMING[2], example.INCOMING[3]
    assert report["anomalies"] == [garbled, off_topic]
    assert all(report["incoming"][t] < report["threshold"] for t in example.INCOMING[:2])
    assert all(d < report["threshold"] for d in report["normal"].values())
    assert len(report["normal"]) == len(example.NORMAL)

    normal = _vectors(example.NORMAL)
    loo = []
    for i in range(len(normal)):
        others = np.delete(normal, i, axis=0).mean(axis=0)
        loo.append(1.0 - normal[i] @ (others / np.linalg.norm(others)))
    expected = np.mean(loo) + 3 * np.std(loo, ddof=1)
    assert report["threshold"] == pytest.approx(expected, abs=1e-5)
    centroid = normal.mean(axis=0) / np.linalg.norm(normal.mean(axis=0))
    assert report["incoming"][garbled] == pytest.approx(
        1.0 - _vectors([garbled])[0] @ centroid, abs=1e-5
    )


# --- the notebook --------------------------------------------------------------------------------


def test_notebook_is_committed_without_outputs() -> None:
    """``quickstart.ipynb`` is stored clean: no outputs, no execution counts."""
    nbformat = pytest.importorskip("nbformat")
    nb = nbformat.read(EXAMPLES / "quickstart.ipynb", as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code
    assert all(c.outputs == [] and c.execution_count is None for c in code)


def _kernel_manager(tmp_path: Path) -> Any:
    """A kernel manager that runs ipykernel on *this* interpreter.

    A kernel spec written for the test avoids depending on which ``python3`` spec the machine has
    (none on a fresh venv, or a user-level one pointing at another Python).
    """
    kernelspec = pytest.importorskip("jupyter_client.kernelspec")
    manager = pytest.importorskip("jupyter_client.manager")
    spec_dir = tmp_path / "kernels" / "examples-python"
    spec_dir.mkdir(parents=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    spec = {"argv": argv, "display_name": "examples", "language": "python"}
    (spec_dir / "kernel.json").write_text(json.dumps(spec))
    specs = kernelspec.KernelSpecManager(
        kernel_dirs=[str(spec_dir.parent)], ensure_native_kernel=False
    )
    return manager.KernelManager(kernel_name="examples-python", kernel_spec_manager=specs)


def test_notebook_executes_on_the_emulator(tmp_path: Path) -> None:
    """Every notebook cell runs on a fresh kernel and prints shapes, cosines and a plot."""
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    nb = nbformat.read(EXAMPLES / "quickstart.ipynb", as_version=4)
    client = nbclient.NotebookClient(
        nb,
        km=_kernel_manager(tmp_path),
        timeout=120,
        resources={"metadata": {"path": str(EXAMPLES)}},
    )
    client.execute()  # raises CellExecutionError if any cell fails

    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    text = "".join(o.text for o in outputs if o.output_type == "stream" and o.name == "stdout")
    assert text.startswith(NOTICE + "\n")
    assert "text-embedding-v4 (1, 1024) float32" in text
    assert "norm: 1.000" in text
    assert "dimension=1024: shape (2, 1024)" in text
    assert "dimension=256: shape (2, 256)" in text
    doc_cos = _number(r"question as document, answer\) = (-?[\d.]+)", text)
    query_cos = _number(r"question as query, +answer\) = (-?[\d.]+)", text)
    self_cos = _number(r"question as query, question as document\) = (-?[\d.]+)", text)
    assert 0.3 < doc_cos < 1.0
    assert 0.3 < query_cos < 1.0
    assert 0.9 < self_cos < 1.0  # close to, but not the same as, the document vector
    within = _number(r"within a topic: (-?[\d.]+)", text)
    across = _number(r"across topics: +(-?[\d.]+)", text)
    assert within > across + 0.1
    assert any(o.output_type == "display_data" and "image/png" in o.data for o in outputs)
