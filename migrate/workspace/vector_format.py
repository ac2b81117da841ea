"""The stored format of an output's vectors (``migrate.precision.VectorFormat``), calibrated once.

``stored_format(ws)`` reads the precision from the manifest's configuration (outputs of earlier
versions record none: float32) and, for int8, the scale recorded in ``manifest.quantization``; when
none is recorded yet (the first finalize) it calibrates on the first shard in plan order, by the rule
of ``migrate.precision``, and records the scale, so every sink, ``verify``, ``search`` and ``compare``
use the same one.
"""

from __future__ import annotations

from migrate.precision import CALIBRATION_ROWS, VectorFormat
from migrate.workspace.core import Workspace, arrow_to_vectors


def stored_format(ws: Workspace, *, calibrate: bool = True) -> VectorFormat:
    """The output's vector format; int8 is calibrated (and the scale recorded) when ``calibrate``."""
    m = ws.manifest()
    dims = m.result.dimensions if m.result is not None else None
    fmt = VectorFormat.of(m.config, m.quantization, dims=dims)
    if fmt.precision != "int8" or fmt.scale is not None or not calibrate:
        return fmt
    first = m.shard_plan().shards[0]
    col = ws.read_shard(first, columns=["vector"]).column("vector").slice(0, CALIBRATION_ROWS)
    fmt = fmt.calibrated(arrow_to_vectors(col))
    m = ws.manifest()
    m.quantization = {"int8_scale": fmt.scale, "calibrated_on": f"{first.name} ({len(col)} vectors)",
                      "rule": "scale = 99.9th percentile of |x| / 127; code = clip(round(x / scale), -127, 127)"}
    ws.write_manifest(m)
    return fmt
