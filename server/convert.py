"""Registry records as ``smug.v1.ModelInfo`` (requests and answers: :mod:`smug.proto.wire`)."""

from __future__ import annotations


def model_info(pb, rec):
    return pb.ModelInfo(id=rec.id, aliases=list(rec.aliases), input_shape=list(rec.input_shape),
                        n_classes=rec.n_classes, description=rec.description, zoo=rec.zoo,
                        size_bytes=rec.size_bytes, whole_network=rec.whole_network)
