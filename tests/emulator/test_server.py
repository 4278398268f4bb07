"""The emulator on a real loopback socket: keep-alive, concurrency, latency, drops, shutdown."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest

from dashscope_embed.emulator import Emulator, EmulatorConfig, serve, text_vector

pytestmark = pytest.mark.integration

PATH = "/api/v1/services/embeddings/text-embedding/text-embedding"
AUTH = {"Authorization": "Bearer sk-loopback"}


def payload(*texts: str, **parameters: object) -> dict[str, object]:
    return {"model": "text-embedding-v4", "input": {"texts": list(texts)}, "parameters": parameters}


def test_serves_vectors_over_loopback() -> None:
    """A real socket round trip returns the emulator's vectors and the x-request-id header."""
    with serve() as server, httpx.Client(base_url=server.url, headers=AUTH) as client:
        assert server.url.startswith("http://127.0.0.1:")
        response = client.post(PATH, json=payload("over the wire", dimension=128))
    assert response.status_code == 200
    body = response.json()
    assert response.headers["x-request-id"] == body["request_id"]
    vector = body["output"]["embeddings"][0]["embedding"]
    np.testing.assert_allclose(
        vector, text_vector("text-embedding-v4", "over the wire", dimension=128), atol=1e-7
    )


def test_keep_alive_serves_several_requests_on_one_connection() -> None:
    """HTTP/1.1 keep-alive: three requests, including an error, share one TCP connection."""
    with serve() as server:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
        statuses = []
        for texts in (["a"], [""], ["b"]):
            body = json.dumps(payload(*texts))
            conn.request(
                "POST", PATH, body=body, headers={**AUTH, "Content-Type": "application/json"}
            )
            response = conn.getresponse()
            assert response.getheader("Content-Length") == str(len(response.read()))
            statuses.append(response.status)
        sock = conn.sock
        conn.close()
    assert statuses == [200, 400, 200]
    assert sock is not None


def test_64_concurrent_keep_alive_clients() -> None:
    """64 clients in parallel, 3 requests each on their own keep-alive connection, all succeed."""
    emu = Emulator(EmulatorConfig(latency=0.2))

    def worker(i: int) -> list[int]:
        # verify=False: plain http anyway, and it skips loading the CA bundle (~0.15 s) 64 times
        with httpx.Client(base_url=server.url, headers=AUTH, timeout=20, verify=False) as client:
            return [
                client.post(PATH, json=payload(f"client {i} request {j}")).status_code
                for j in range(3)
            ]

    with serve(emu) as server:
        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=64) as pool:
            results = list(pool.map(worker, range(64)))
        elapsed = time.perf_counter() - started
    assert results == [[200, 200, 200]] * 64
    assert emu.stats.requests == 192
    assert emu.stats.rows == 192
    # One by one, 192 answers of 0.2 s would take 38 s; served concurrently they take ~1 s. The
    # wide margin keeps this a check of concurrency, not of the machine's speed.
    assert elapsed < 20


def test_latency_is_waited_by_the_handler_thread() -> None:
    """With latency=0.2 a loopback answer takes at least 0.2 s."""
    with (
        serve(config=EmulatorConfig(latency=0.2)) as server,
        httpx.Client(base_url=server.url, headers=AUTH) as c,
    ):
        started = time.perf_counter()
        assert c.post(PATH, json=payload("slow")).status_code == 200
        assert time.perf_counter() - started >= 0.2


def test_dropped_connection_is_a_remote_protocol_error_then_service_resumes() -> None:
    """A scripted drop closes the socket without an answer; the next request is served."""
    emu = Emulator()
    emu.enqueue_fault(0, "", "", drop=True)
    with serve(emu) as server, httpx.Client(base_url=server.url, headers=AUTH) as client:
        with pytest.raises(httpx.RemoteProtocolError):
            client.post(PATH, json=payload("dropped"))
        assert client.post(PATH, json=payload("served")).status_code == 200
    assert emu.stats.dropped == 1


def test_chunked_request_bodies_are_read() -> None:
    """A request sent with Transfer-Encoding: chunked is decoded like a Content-Length one."""
    body = json.dumps(payload("chunked body")).encode()
    with serve() as server, httpx.Client(base_url=server.url, headers=AUTH) as client:
        response = client.post(PATH, content=iter([body[:10], body[10:]]))
    assert response.request.headers["transfer-encoding"] == "chunked"
    assert response.status_code == 200


def test_stop_releases_the_port_and_hangs_up() -> None:
    """After stop() nothing listens on the port any more (connections are refused)."""
    server = serve()
    url = server.url
    with httpx.Client(base_url=url, headers=AUTH) as client:
        assert client.post(PATH, json=payload("x")).status_code == 200
        server.stop()
        server.stop()  # idempotent
        with pytest.raises(httpx.TransportError):
            client.post(PATH, json=payload("x"))


def _ctrl_c_enabled() -> None:
    """Run in the child before exec: a shell's background job (``cmd &`` without job control,
    as CI scripts start things) inherits SIGINT ignored, and Python keeps it so; these tests
    are about what the emulator does on Ctrl-C, so the child gets the default disposition."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _interrupt(process: subprocess.Popen[str]) -> None:
    """Ctrl-C, then expect exit 0 within 10 s; if it hangs, fail with every thread's stack
    (the child runs with PYTHONFAULTHANDLER=1, so SIGABRT makes it print them)."""
    process.send_signal(signal.SIGINT)
    try:
        code = process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGABRT)
        _, err = process.communicate(timeout=10)
        pytest.fail(f"still running 10 s after Ctrl-C; its threads:\n{err}")
    assert code == 0


@contextlib.contextmanager
def _emulator_process(*args: str) -> Iterator[subprocess.Popen[str]]:
    """``python -m dashscope_embed.emulator --port 0 ARGS``, killed on the way out if alive."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "PYTHONFAULTHANDLER": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "dashscope_embed.emulator", "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        preexec_fn=_ctrl_c_enabled,
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_module_entry_point_serves_until_interrupted() -> None:
    """python -m dashscope_embed.emulator prints the banner, serves, and exits 0 on Ctrl-C."""
    with _emulator_process("--rpm", "600") as process:
        assert process.stdout is not None
        line = process.stdout.readline().strip()
        prefix = "DashScope emulator listening on "
        assert line.startswith(prefix)
        assert line.endswith(" (NOT the real service: vectors are deterministic hashes)")
        url = line[len(prefix) :].split(" ")[0]
        with httpx.Client(base_url=url, headers=AUTH) as client:
            assert client.post(PATH, json=payload("from the cli")).status_code == 200
        assert process.stderr is not None
        hint = process.stderr.readline()
        assert hint.startswith('point every client at it: eval "$(')
        assert "--print-env --port" in hint
        _interrupt(process)


def test_ctrl_c_right_after_the_banner_still_exits_0() -> None:
    """Ctrl-C at once after the banner (the hint line may not be written yet) stops it cleanly."""
    with _emulator_process() as process:
        assert process.stdout is not None
        assert process.stdout.readline().startswith("DashScope emulator listening on ")
        _interrupt(process)
        assert process.stderr is not None
        assert "Traceback" not in process.stderr.read()


def test_broken_requests_do_not_write_to_stderr(capfd: pytest.CaptureFixture[str]) -> None:
    """A malformed request closes its connection quietly; the server keeps serving others."""
    with serve() as server:
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as raw:
            raw.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: nope\r\n\r\n")
            raw.recv(1024)  # the server hangs up without an answer
        with httpx.Client(base_url=server.url, headers=AUTH) as client:
            assert client.post(PATH, json=payload("still fine")).status_code == 200
    assert capfd.readouterr().err == ""
