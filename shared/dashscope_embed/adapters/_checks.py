"""Construction checks both adapter packages make: unknown arguments and model kinds."""

from __future__ import annotations

import difflib
from collections.abc import Collection, Iterable, Mapping

from dashscope_embed._models import MODELS

__all__ = ["reject_multimodal_model", "reject_unknown_arguments"]


def reject_unknown_arguments(
    cls_name: str,
    given: Iterable[str],
    accepted: Collection[str],
    *,
    renamed: Mapping[str, str] | None = None,
    ignored: Collection[str] = (),
    noun: str = "argument",
) -> None:
    """Refuse every unknown keyword at once, each with the closest accepted name.

    A ``TypeError``, like any unexpected keyword: pydantic would wrap a ``ValueError`` into a
    ``ValidationError`` that carries every input value (the key included). Values are never
    echoed, only names.

    Args:
        cls_name: The class being constructed (named in the message).
        given: The keyword names passed.
        accepted: The names the class takes.
        renamed: Names other integrations use, mapped to ours (``model`` → ``model_name``).
        ignored: Names tolerated without being accepted (e.g. ``class_name`` from ``to_dict``).
        noun: What the framework calls them (``"field"`` for LangChain's pydantic models).

    Raises:
        TypeError: listing every unknown name with a did-you-mean hint where one is close.
    """
    renamed = renamed or {}
    unknown = sorted(n for n in given if n not in accepted and n not in ignored)
    if not unknown:
        return
    parts = []
    for name in unknown:
        close = renamed.get(name) or next(
            iter(difflib.get_close_matches(name, sorted(accepted), n=1)), None
        )
        parts.append(f"{name!r} (did you mean {close!r}?)" if close else repr(name))
    what = f"unknown {noun}" if len(unknown) == 1 else f"{len(unknown)} unknown {noun}s"
    raise TypeError(
        f"{cls_name} got {what} {', '.join(parts)}. It accepts: " + ", ".join(sorted(accepted))
    )


def reject_multimodal_model(name: str, *, use: str) -> None:
    """Refuse a multimodal catalog model on a text entry point, before any request.

    The text endpoint answers "Model not exist" for those names on the first call; saying so
    at construction, with the class to use instead, saves a confusing failure later.

    Raises:
        ValueError: ``name`` is a multimodal model of the catalog.
    """
    spec = MODELS.get(name)
    if spec is not None and spec.kind == "multimodal":
        raise ValueError(
            f"{name!r} is a multimodal model: the text embedding endpoint does not serve it. "
            f"Use {use} for it, or a text model such as text-embedding-v4 here"
        )
