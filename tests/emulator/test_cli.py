"""The emulator command line: argument parsing into an EmulatorConfig."""

from __future__ import annotations

import pytest

from dashscope_embed.emulator import EmulatorConfig
from dashscope_embed.emulator._cli import build_parser, config_from_args


def test_defaults_give_the_default_config() -> None:
    """No arguments: 127.0.0.1:8123 and a config equal to EmulatorConfig()."""
    args = build_parser().parse_args([])
    assert (args.host, args.port, args.verbose) == ("127.0.0.1", 8123, False)
    assert config_from_args(args) == EmulatorConfig()


def test_every_option_reaches_the_config() -> None:
    """Each flag lands in its EmulatorConfig field; --row-limit and --api-key repeat."""
    argv = [
        "--host", "0.0.0.0", "--port", "9000", "--latency", "0.05", "--latency-jitter",
        "0.01", "--rpm", "600", "--tpm", "100000", "--error-rate", "0.1", "--drop-rate", "0.02",
        "--retry-after", "1.5", "--row-limit", "text-embedding-v4=6", "--row-limit",
        "text-embedding-v3=5", "--api-key", "sk-a", "--api-key", "sk-b", "--seed", "42",
        "--verbose",
    ]  # fmt: skip
    args = build_parser().parse_args(argv)
    assert (args.host, args.port, args.verbose) == ("0.0.0.0", 9000, True)
    assert config_from_args(args) == EmulatorConfig(
        latency=0.05,
        latency_jitter=0.01,
        rpm=600,
        tpm=100_000,
        error_rate=0.1,
        drop_rate=0.02,
        retry_after=1.5,
        row_limits={"text-embedding-v4": 6, "text-embedding-v3": 5},
        api_keys=frozenset({"sk-a", "sk-b"}),
        seed=42,
    )


@pytest.mark.parametrize(
    "argv",
    [
        ["--row-limit", "text-embedding-v4"],
        ["--row-limit", "text-embedding-v4=six"],
        ["--row-limit", "text-embedding-v4=0"],
        ["--error-rate", "1.5"],
        ["--drop-rate", "-0.1"],
        ["--port", "http"],
    ],
)
def test_bad_values_exit_with_a_usage_error(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    """Malformed values stop argparse with exit code 2 and a message on stderr."""
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(argv)
    assert exc.value.code == 2
    assert "error:" in capsys.readouterr().err


def test_main_reports_a_busy_port(capsys: pytest.CaptureFixture[str]) -> None:
    """main returns 1 with a message when the port cannot be bound."""
    from dashscope_embed.emulator import serve
    from dashscope_embed.emulator._cli import main

    with serve() as server:
        assert main(["--port", str(server.port)]) == 1
    assert "cannot listen on 127.0.0.1" in capsys.readouterr().err
