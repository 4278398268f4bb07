"""The emulator package's public surface."""

from __future__ import annotations

import dashscope_embed.emulator as emulator


def test_all_is_sorted_and_pinned() -> None:
    """__all__ is sorted and lists exactly the documented public names."""
    assert emulator.__all__ == sorted(emulator.__all__)
    assert set(emulator.__all__) == {
        "ChaosRule",
        "EmulatorSession",
        "EmulatorStats",
        "RecordedRequest",
        "client_env",
        "emulated",
        "EmuRequest",
        "EmuResponse",
        "Emulator",
        "EmulatorConfig",
        "EmulatorServer",
        "EmulatorTransport",
        "count_tokens",
        "image_label",
        "image_vector",
        "multimodal_vector",
        "serve",
        "sparse_vector",
        "text_vector",
    }
    for name in emulator.__all__:
        assert getattr(emulator, name) is not None


def test_docstring_says_the_vectors_are_not_real() -> None:
    """The package docstring warns that vectors are deterministic hashes, not the real model's."""
    assert emulator.__doc__ is not None
    assert "NOT the real model's vectors" in emulator.__doc__
