"""``image_nodes``: image nodes that ``MultiModalVectorStoreIndex`` keeps.

llama-index-core's ``VectorStoreIndex.build_index_from_nodes`` drops every node whose embed-mode
content is empty ("Some nodes are missing content, skipping them..."), and a bare
``ImageNode(image_path=...)`` has neither text nor metadata, so an index built from such nodes
holds no images and ``text_to_image_retrieve`` returns nothing. Giving each node the file's
name and path as metadata, as ``SimpleDirectoryReader`` does, keeps it; the node still has no
text, so the index embeds it once, as an image, and never as a text.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from llama_index.core.schema import ImageNode

__all__ = ["image_nodes"]


def image_nodes(
    paths: Iterable[str | os.PathLike[str]], *, metadata: Mapping[str, Any] | None = None
) -> list[ImageNode]:
    """Build one ``ImageNode`` per local image file, with metadata so that indexes keep it.

    Args:
        paths: Local image files (PNG, JPEG, ...). They are read when the index embeds them and
            sent inline, never uploaded.
        metadata: Extra metadata for every node (merged after ``file_path`` and ``file_name``).

    Returns:
        The nodes, in the order of ``paths``; ``node.image_path`` is the path as given.

    Raises:
        FileNotFoundError: a path that is not an existing file (checked now, not at indexing).

    Example:
        >>> nodes = image_nodes(["photos/cat.png", "photos/dog.png"])  # doctest: +SKIP
        >>> index = MultiModalVectorStoreIndex(nodes, embed_model=emb,  # doctest: +SKIP
        ...                                    image_embed_model=emb)
    """
    nodes = []
    for raw in paths:
        path = Path(raw)
        if not path.is_file():
            raise FileNotFoundError(f"image_nodes: no such image file: {os.fspath(raw)!r}")
        meta = {"file_path": os.fspath(raw), "file_name": path.name, **(metadata or {})}
        nodes.append(ImageNode(image_path=os.fspath(raw), metadata=meta))
    return nodes
