"""The docs harness finds every block, honours no-run markers and refuses one without a reason."""

from __future__ import annotations

from pathlib import Path

import pytest

from .harness import DocError, parse_page, shell_commands

PAGE = """# A page

```python
x = 1
```

<!-- no-run: needs the real service -->
```python
client.embed_texts(["real"])
```

```bash
pip install dashscope-embed
```

```console
$ dashscope-embed embed in.txt \\
    -o out.npy   # a comment
wrote 3 rows
```

```text
not code
```
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "page.md"
    path.write_text(text, encoding="utf-8")
    return path


def test_blocks_are_found_in_order_with_their_kind_and_line(tmp_path: Path) -> None:
    """Python and CLI blocks run; set-up shell and text blocks do not; lines are the page's."""
    page = parse_page(write(tmp_path, PAGE))
    assert [(b.kind, b.runs, b.line) for b in page.blocks] == [
        ("python", True, 4),
        ("python", False, 9),
        ("shell", False, 13),
        ("cli", True, 17),
        ("other", False, 23),
    ]
    assert page.blocks[1].no_run == "needs the real service"
    assert page.count() == {"run": 2, "no-run": 1, "shell (set-up, not run)": 1}
    (cmd,) = shell_commands(page.blocks[3])
    assert cmd.argv == ["dashscope-embed", "embed", "in.txt", "-o", "out.npy"]


@pytest.mark.parametrize("marker", ["<!-- no-run -->", "<!-- no-run: -->", "<!-- no-run:   -->"])
def test_a_no_run_without_a_reason_fails(tmp_path: Path, marker: str) -> None:
    """Every block left out has to say why."""
    with pytest.raises(DocError, match="needs a reason"):
        parse_page(write(tmp_path, f"{marker}\n```python\nx = 1\n```\n"))


def test_a_no_run_far_from_its_block_fails(tmp_path: Path) -> None:
    """A marker applies to the very next block; prose in between is a mistake."""
    with pytest.raises(DocError, match="right before a code block"):
        parse_page(write(tmp_path, "<!-- no-run: offline -->\ntext\n```python\nx = 1\n```\n"))
