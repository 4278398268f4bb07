"""The emulator command line: argument parsing into an EmulatorConfig."""

from __future__ import annotations

import pytest

from dashscope_embed.emulator import ChaosRule, EmulatorConfig
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
        ["--port", "99999"],
        ["--port", "-1"],
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


def test_chaos_flags_reach_the_config() -> None:
    """--chaos repeats; each spec becomes a ChaosRule in order."""
    argv = ["--chaos", "compat:p=0.3,status=429", "--chaos", '{"endpoint": "files", "drop": true}']
    config = config_from_args(build_parser().parse_args(argv))
    assert config.chaos == (
        ChaosRule("compat", probability=0.3, status=429),
        ChaosRule("files", drop=True),
    )


def test_a_bad_chaos_spec_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    """A malformed rule stops argparse with exit code 2 and says why."""
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(["--chaos", "video:status=500"])
    assert exc.value.code == 2
    assert "unknown chaos endpoint 'video'" in capsys.readouterr().err


def test_print_env_exports_the_first_accepted_key(capsys: pytest.CaptureFixture[str]) -> None:
    """With --api-key, --print-env hands the clients the first accepted key."""
    from dashscope_embed.emulator._cli import main

    assert main(["--print-env", "--api-key", "sk-zz", "--api-key", "sk-aa"]) == 0
    out = capsys.readouterr().out
    assert "export DASHSCOPE_API_KEY=sk-aa\n" in out
    assert "export OPENAI_BASE_URL=http://127.0.0.1:8123/compatible-mode/v1\n" in out


def test_configured_keys_never_show_in_the_config_repr() -> None:
    """EmulatorConfig's repr leaves the accepted keys out."""
    assert "sk-secret" not in repr(EmulatorConfig(api_keys=frozenset({"sk-secret"})))
