"""Multimodal embeddings: input kinds, their encoding, options, request bodies and the job."""
