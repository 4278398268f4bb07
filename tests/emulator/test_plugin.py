"""The pytest plugin, used the way users will: small test files run by a separate pytest.

Each inner test file uses only the ``dashscope_emulator`` fixtures and marker and builds its
clients with no base URL or key: our client, the official dashscope SDK and the openai SDK all
reach the emulator through the switch. The plugin is loaded with ``-p`` (the venv's entry point
may predate this pyproject); ``test_entry_point_is_declared`` checks the declaration itself.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from xml.etree import ElementTree

import pytest

import dashscope_embed

CLIENT_VARIABLES = (
    "DASHSCOPE_API_KEY",
    "DASHSCOPE_BASE_URL",
    "DASHSCOPE_HTTP_BASE_URL",
    "DASHSCOPE_COMPATIBLE_BASE_URL",
    "OPENAI_BASE_URL",
    "OPENAI_API_KEY",
)
PLUGIN = "dashscope_embed.emulator.pytest_plugin"
INI = "[pytest]\nasyncio_default_fixture_loop_scope = function\n"  # quiet pytest-asyncio
ROOT = Path(__file__).resolve().parents[2]
SHARED = Path(dashscope_embed.__file__).resolve().parents[1]


class InnerRun:
    """One pytest process over every inner test file (imports are slow on a busy machine, so
    the files share a run; each outer test reads its own file's outcomes)."""

    def __init__(self, root: Path, report: Path, output: str) -> None:
        self.output = output
        self.results: dict[str, dict[str, str]] = {}
        for case in ElementTree.parse(report).iter("testcase"):
            module = case.get("classname", "").split(".")[0]
            problems = [child for child in case if child.tag in ("failure", "error", "skipped")]
            outcome = problems[0].tag if problems else "passed"
            self.results.setdefault(module, {})[case.get("name", "")] = outcome
        self.root = root

    def outcomes(self, module: str) -> dict[str, str]:
        """``{test name: passed|failure|error|skipped}`` for one inner file."""
        return self.results.get(module, {})


INNER_FILES: dict[str, str] = {}  # filled below, next to the outer test that reads each


@pytest.fixture(scope="module")
def inner(tmp_path_factory: pytest.TempPathFactory) -> InnerRun:
    """Run the inner files once, in a separate pytest process with only this plugin loaded by
    ``-p`` and an environment holding a user's OPENAI_BASE_URL and no other client variable."""
    root = tmp_path_factory.mktemp("inner")
    (root / "pytest.ini").write_text(INI)
    for name, source in INNER_FILES.items():
        (root / f"{name}.py").write_text(textwrap.dedent(source))
    env = {k: v for k, v in os.environ.items() if k not in CLIENT_VARIABLES}
    env["OPENAI_BASE_URL"] = "https://example.invalid/v1"  # a user's own value, kept
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(SHARED), env.get("PYTHONPATH", "")])
    report = root / "report.xml"
    command = [sys.executable, "-m", "pytest", "-p", PLUGIN, "-p", "no:cacheprovider"]
    done = subprocess.run(
        [*command, "--strict-markers", "-q", "-rfE", f"--junitxml={report}", str(root)],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    return InnerRun(root, report, done.stdout + done.stderr)


def check(inner: InnerRun, module: str, expected: dict[str, str]) -> None:
    assert inner.outcomes(module) == expected, inner.output


def test_entry_point_is_declared() -> None:
    """pyproject declares the pytest11 entry point under the module's own name, pointing at an
    importable module that registers the marker (so installing the package enables it)."""
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["entry-points"]["pytest11"] == {PLUGIN: PLUGIN}
    dev = project["optional-dependencies"]["dev"]
    assert any(dep.startswith("dashscope>=") for dep in dev)
    assert any(dep.startswith("openai>=") for dep in dev)
    module = __import__(PLUGIN, fromlist=["pytest_configure"])
    assert callable(module.pytest_configure)


ENTRY_POINT_USER = """
import os

def test_fixture_found_through_the_entry_point(dashscope_emulator):
    assert os.environ["DASHSCOPE_BASE_URL"] == dashscope_emulator.url + "/api/v1"
"""


def test_the_declared_entry_point_loads_the_plugin(tmp_path: Path) -> None:
    """pytest finds the fixtures through the pyproject's pytest11 entry point alone (installed
    here as a stand-in dist-info), and an extra ``-p`` of the same module is no double load."""
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    points = project["entry-points"]["pytest11"]
    site = tmp_path / "site"
    info = site / "dashscope_embed_standin-0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: dashscope-embed-standin\n")
    lines = "".join(f"{name} = {target}\n" for name, target in points.items())
    (info / "entry_points.txt").write_text(f"[pytest11]\n{lines}")
    (tmp_path / "test_user.py").write_text(ENTRY_POINT_USER)
    (tmp_path / "pytest.ini").write_text(INI)
    env = {k: v for k, v in os.environ.items() if k not in CLIENT_VARIABLES}
    env["PYTHONPATH"] = os.pathsep.join([str(site), str(ROOT), str(SHARED)])
    base = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_user.py"]
    runs = [
        subprocess.Popen(
            command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        for command in (base, [*base, "-p", PLUGIN])
    ]
    outputs = [run.communicate(timeout=300)[0].decode() for run in runs]
    assert [run.returncode for run in runs] == [0, 0], outputs
    assert all("1 passed" in output for output in outputs)


OUR_CLIENT = """
import numpy as np
from dashscope_embed import DashScopeClient
from dashscope_embed.emulator import text_vector

def test_our_client(dashscope_emulator):
    with DashScopeClient() as client:  # no key, no base URL
        result = client.embed_texts(["hello world", "second text"], dimension=256)
    np.testing.assert_allclose(
        result.embeddings[1], text_vector("text-embedding-v4", "second text", dimension=256),
        atol=1e-7,
    )
    [record] = dashscope_emulator.requests
    assert record.path == "/api/v1/services/embeddings/text-embedding/text-embedding"
    assert record.json["input"]["texts"] == ["hello world", "second text"]
    assert record.json["parameters"]["dimension"] == 256
    assert record.headers["authorization"] == "REDACTED"
    assert record.used_key(dashscope_emulator.api_key)
    assert dashscope_emulator.api_key not in repr(dashscope_emulator.requests)
    assert dashscope_emulator.stats.rows == 2
    assert dashscope_emulator.url.startswith("http://127.0.0.1:")
"""


INNER_FILES["test_a_our_client"] = OUR_CLIENT


def test_fixture_serves_our_client(inner: InnerRun) -> None:
    """Our client built with no arguments reaches the fixture's emulator: vectors and wire."""
    check(inner, "test_a_our_client", {"test_our_client": "passed"})


DASHSCOPE_SDK = """
import struct, zlib
import numpy as np
import dashscope
from dashscope_embed.emulator import image_vector, text_vector

def png(label):
    def chunk(kind, data):
        crc = struct.pack(">I", zlib.crc32(kind + data))
        return struct.pack(">I", len(data)) + kind + data + crc
    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    return (b"\\x89PNG\\r\\n\\x1a\\n" + chunk(b"IHDR", header)
            + chunk(b"tEXt", b"label\\x00" + label.encode()) + chunk(b"IEND", b""))

def test_text(dashscope_emulator):
    response = dashscope.TextEmbedding.call(
        model="text-embedding-v4", input=["find me"], dimension=128, text_type="query"
    )
    assert response.status_code == 200
    vector = response.output["embeddings"][0]["embedding"]
    expected = text_vector("text-embedding-v4", "find me", dimension=128, text_type="query")
    np.testing.assert_allclose(vector, expected, atol=1e-7)
    [record] = dashscope_emulator.requests
    assert record.headers["x-dashscope-sdk-client"].startswith("python-sdk/")
    assert record.json["parameters"] == {"text_type": "query", "dimension": 128}

def test_v2_client(dashscope_emulator):
    client = dashscope.Client()  # the 2.0 client reads DASHSCOPE_BASE_URL
    response = client.embeddings.create(model="text-embedding-v4", input=["two"], dimension=64)
    expected = text_vector("text-embedding-v4", "two", dimension=64)
    np.testing.assert_allclose(response.embeddings[0].embedding, expected, atol=1e-7)
    [record] = dashscope_emulator.requests
    assert record.headers["x-dashscope-sdk-client"].endswith("/embeddings2")

def test_multimodal_local_file(dashscope_emulator, tmp_path):
    data = png("cat")
    path = tmp_path / "cat.png"
    path.write_bytes(data)
    response = dashscope.MultiModalEmbedding.call(
        model="tongyi-embedding-vision-plus", input=[{"image": f"file://{path}"}]
    )
    assert response.status_code == 200, response
    vector = np.array(response.output["embeddings"][0]["embedding"])
    import base64
    same_bytes = "data:image/png;base64," + base64.b64encode(data).decode()
    np.testing.assert_allclose(
        vector, image_vector("tongyi-embedding-vision-plus", same_bytes), atol=1e-7
    )
    policy, upload, embed = dashscope_emulator.requests
    assert (policy.method, policy.path) == ("GET", "/api/v1/uploads")
    assert policy.query == {"action": "getPolicy", "model": "tongyi-embedding-vision-plus"}
    assert (upload.method, upload.path, upload.status) == ("POST", "/_oss/dashscope-file-mgr", 200)
    assert upload.headers["host"] == dashscope_emulator.url.removeprefix("http://")
    image = embed.json["input"]["contents"][0]["image"]
    assert image.startswith("oss://dashscope-instant/") and image.endswith("/cat.png")
    assert embed.headers["x-dashscope-ossresourceresolve"] == "enable"
"""


INNER_FILES["test_b_dashscope_sdk"] = DASHSCOPE_SDK


def test_fixture_serves_the_dashscope_sdk(inner: InnerRun) -> None:
    """The official dashscope SDK (1.x text, the 2.0 client, a file:// image) works offline:
    getPolicy, the form post to the emulator's own upload host, then an oss:// URL resolved to
    the same bytes."""
    expected = {"test_text": "passed", "test_v2_client": "passed"}
    expected["test_multimodal_local_file"] = "passed"
    check(inner, "test_b_dashscope_sdk", expected)


OPENAI_SDK = """
import json, time
import numpy as np
import openai
from dashscope_embed.emulator import text_vector

def test_embeddings(dashscope_emulator):
    client = openai.OpenAI()  # OPENAI_BASE_URL / OPENAI_API_KEY from the fixture
    response = client.embeddings.create(
        model="text-embedding-v4", input=["hello", "world"], dimensions=64
    )
    expected = text_vector("text-embedding-v4", "world", dimension=64)
    np.testing.assert_allclose(response.data[1].embedding, expected, atol=1e-6)
    assert response.usage.total_tokens > 0
    [record] = dashscope_emulator.requests
    assert record.path == "/compatible-mode/v1/embeddings"
    assert record.json["dimensions"] == 64

def test_files_and_batches(dashscope_emulator, tmp_path):
    client = openai.OpenAI()
    lines = [
        {"custom_id": f"r{i}", "method": "POST", "url": "/v1/embeddings",
         "body": {"model": "text-embedding-v4", "input": f"text {i}", "dimensions": 64}}
        for i in range(3)
    ]
    path = tmp_path / "in.jsonl"
    path.write_text("\\n".join(json.dumps(line) for line in lines) + "\\n")
    with path.open("rb") as handle:
        uploaded = client.files.create(file=handle, purpose="batch")
    assert uploaded.id.startswith("file-batch-")
    assert uploaded.bytes == path.stat().st_size
    batch = client.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/embeddings", completion_window="24h"
    )
    assert batch.status == "validating"
    for _ in range(100):
        batch = client.batches.retrieve(batch.id)
        if batch.status in ("completed", "failed"):
            break
        time.sleep(0.02)
    assert batch.status == "completed"
    assert (batch.request_counts.total, batch.request_counts.completed) == (3, 3)
    assert batch.output_file_id.startswith("file-batch_output-")
    rows = [json.loads(x) for x in client.files.content(batch.output_file_id).text.splitlines()]
    vectors = {r["custom_id"]: r["response"]["body"]["data"][0]["embedding"] for r in rows}
    np.testing.assert_allclose(
        vectors["r2"], text_vector("text-embedding-v4", "text 2", dimension=64), atol=1e-7
    )
    assert "request-duration" in client.files.with_raw_response.retrieve(uploaded.id).headers
"""


INNER_FILES["test_c_openai_sdk"] = OPENAI_SDK


def test_fixture_serves_the_openai_sdk(inner: InnerRun) -> None:
    """The openai SDK's embeddings, Files and Batches reach the emulator's compatible mode."""
    expected = {"test_embeddings": "passed", "test_files_and_batches": "passed"}
    check(inner, "test_c_openai_sdk", expected)


MARKED = """
import pytest
from dashscope_embed import DashScopeClient

TEXTS = [f"text number {i}" for i in range(20)]

@pytest.mark.dashscope_emulator(row_limits={"text-embedding-v4": 6}, api_keys=["sk-only-this"])
def test_row_limit_forces_a_resplit(dashscope_emulator):
    with DashScopeClient() as client:
        result = client.embed_texts(TEXTS)
    assert result.embeddings.shape == (20, 1024)
    sizes = [len(r.json["input"]["texts"]) for r in dashscope_emulator.requests if r.status == 200]
    assert sum(sizes) == 20 and max(sizes) <= 6
    refused = [r for r in dashscope_emulator.requests if r.status == 400]
    assert refused and len(refused[0].json["input"]["texts"]) == 10  # the catalog's 10 first
    assert dashscope_emulator.api_key == "sk-only-this"

@pytest.mark.dashscope_emulator(latency=0.2)
class TestClassMark:
    @pytest.mark.dashscope_emulator(rpm=6000)
    def test_closest_mark_adds_fields(self, dashscope_emulator):
        config = dashscope_emulator.emulator.config
        assert (config.latency, config.rpm) == (0.2, 6000)

@pytest.mark.dashscope_emulator(chaos=[{"endpoint": "compat", "status": 503}])
def test_marker_alone_starts_the_emulator():
    import os, httpx
    with DashScopeClient() as client:  # native text is unaffected by the compat rule
        assert client.embed_texts(["x"]).embeddings.shape == (1, 1024)
    answer = httpx.post(os.environ["OPENAI_BASE_URL"] + "/embeddings",
                        headers={"Authorization": "Bearer " + os.environ["OPENAI_API_KEY"]},
                        json={"model": "text-embedding-v4", "input": "x"})
    assert answer.status_code == 503
"""


INNER_FILES["test_d_marker"] = MARKED


def test_marker_config_reaches_the_server(inner: InnerRun) -> None:
    """Marker settings configure the server: a row limit of 6 makes our client re-split (the
    log shows batches of at most 6), marks merge closest-first, and a mark alone is enough."""
    expected = {
        "test_row_limit_forces_a_resplit": "passed",
        "test_closest_mark_adds_fields": "passed",
        "test_marker_alone_starts_the_emulator": "passed",
    }
    check(inner, "test_d_marker", expected)


INNER_FILES["test_e_bad_marker"] = """
import pytest

@pytest.mark.dashscope_emulator(latencyy=1)
def test_x(dashscope_emulator):
    pass
"""


def test_a_bad_marker_setting_is_a_usage_error(inner: InnerRun) -> None:
    """An unknown setting fails the test's setup with the list of known settings."""
    check(inner, "test_e_bad_marker", {"test_x": "error"})
    assert "unknown emulator setting(s) ['latencyy']; known: ['api_keys'," in inner.output


RESTORE = """
import os, sys
import pytest

BEFORE = {}

def test_0_before():
    import dashscope, openai
    BEFORE.update((k, v) for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST")
    BEFORE["dashscope.base_http_api_url"] = dashscope.base_http_api_url
    BEFORE["openai.base_url"] = openai.base_url

def test_1_uses_the_emulator(dashscope_emulator):
    import dashscope, openai
    assert os.environ["DASHSCOPE_HTTP_BASE_URL"] == dashscope_emulator.url + "/api/v1"
    assert dashscope.base_http_api_url == dashscope_emulator.url + "/api/v1"
    assert dashscope.api_key == dashscope_emulator.api_key
    assert openai.base_url == dashscope_emulator.url + "/compatible-mode/v1"

def test_2_after():
    import dashscope, openai
    assert {k: v for k, v in os.environ.items() if k in BEFORE and k != "PYTEST_CURRENT_TEST"} == {
        k: v for k, v in BEFORE.items() if "." not in k
    }
    assert not set(os.environ) - set(BEFORE) - {"PYTEST_CURRENT_TEST"}
    assert os.environ["OPENAI_BASE_URL"] == "https://example.invalid/v1"  # kept, not deleted
    assert dashscope.base_http_api_url == BEFORE["dashscope.base_http_api_url"]
    assert openai.base_url == BEFORE["openai.base_url"]
"""


INNER_FILES["test_f_restore"] = RESTORE


def test_environment_is_restored_after_the_test(inner: InnerRun) -> None:
    """Variables and SDK module attributes are back to their values after the test (a value set
    before is restored, not deleted; a variable absent before is removed)."""
    expected = {"test_0_before": "passed", "test_1_uses_the_emulator": "passed"}
    check(inner, "test_f_restore", {**expected, "test_2_after": "passed"})


SESSION = """
import httpx, pytest

URLS = []

def embed(emu):
    return httpx.post(emu.api_url + "/services/embeddings/text-embedding/text-embedding",
                      headers={"Authorization": "Bearer " + emu.api_key},
                      json={"model": "text-embedding-v4", "input": {"texts": ["a"]}})

def test_first(dashscope_emulator_session):
    URLS.append(dashscope_emulator_session.url)
    dashscope_emulator_session.add_chaos(endpoint="text", status=500, times=1)
    assert embed(dashscope_emulator_session).status_code == 500
    assert dashscope_emulator_session.stats.requests == 1

@pytest.mark.dashscope_emulator(row_limits={"text-embedding-v4": 6})
def test_second_is_reset(dashscope_emulator_session):
    URLS.append(dashscope_emulator_session.url)
    assert URLS[0] == URLS[1]  # one server
    assert dashscope_emulator_session.stats.requests == 0  # but a clean log
    assert dashscope_emulator_session.emulator.chaos_rules == []
    assert dashscope_emulator_session.emulator.config.row_limits == {"text-embedding-v4": 6}
    assert embed(dashscope_emulator_session).status_code == 200

def test_third_gets_the_default_config(dashscope_emulator_session):
    assert dashscope_emulator_session.emulator.config.row_limits == {}
"""


INNER_FILES["test_g_session"] = SESSION


def test_session_fixture_shares_a_server_but_resets_it(inner: InnerRun) -> None:
    """dashscope_emulator_session: one port for the session, state and config reset per test."""
    expected = {"test_first": "passed", "test_second_is_reset": "passed"}
    check(inner, "test_g_session", {**expected, "test_third_gets_the_default_config": "passed"})


UNUSED = """
import os

def test_untouched():
    assert "DASHSCOPE_BASE_URL" not in os.environ
    assert "OPENAI_API_KEY" not in os.environ
    assert os.environ["OPENAI_BASE_URL"] == "https://example.invalid/v1"
"""


INNER_FILES["test_h_unused"] = UNUSED


def test_tests_without_the_fixture_see_no_change(inner: InnerRun) -> None:
    """A test that uses neither fixture nor marker runs with the environment it had."""
    check(inner, "test_h_unused", {"test_untouched": "passed"})


PARALLEL = """
import os, pathlib, time
from dashscope_embed import DashScopeClient

def test_own_emulator(dashscope_emulator):
    me, other = os.environ["WHO"], os.environ["OTHER"]
    out = pathlib.Path(os.environ["OUT"])
    (out / me).write_text(dashscope_emulator.url)
    for _ in range(300):  # both processes hold their emulators at the same time
        if (out / other).exists():
            break
        time.sleep(0.05)
    assert (out / other).exists()
    with DashScopeClient() as client:
        client.embed_texts([f"from {me}"])
    texts = [r.json["input"]["texts"] for r in dashscope_emulator.requests]
    assert texts == [[f"from {me}"]]
    (out / (me + ".done")).write_text(str(len(texts)))
"""


def test_parallel_processes_get_separate_emulators(tmp_path: Path) -> None:
    """Two pytest processes running at once each get their own emulator (own port, own log)."""
    (tmp_path / "test_parallel.py").write_text(PARALLEL)
    (tmp_path / "pytest.ini").write_text(INI)
    out = tmp_path / "out"
    out.mkdir()
    python_path = os.pathsep.join([str(ROOT), str(SHARED), os.environ.get("PYTHONPATH", "")])
    procs = []
    for me, other in (("a", "b"), ("b", "a")):
        env = {**os.environ, "WHO": me, "OTHER": other, "OUT": str(out), "PYTHONPATH": python_path}
        command = [sys.executable, "-m", "pytest", "-q", "-p", PLUGIN, "-p", "no:cacheprovider"]
        procs.append(
            subprocess.Popen(
                [*command, str(tmp_path / "test_parallel.py")],
                cwd=tmp_path,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
            )
        )
    outputs = [proc.communicate(timeout=120)[0].decode() for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0], outputs
    urls = {(out / name).read_text() for name in ("a", "b")}
    assert len(urls) == 2
    assert all(url.startswith("http://127.0.0.1:") for url in urls)
    assert (out / "a.done").read_text() == (out / "b.done").read_text() == "1"
