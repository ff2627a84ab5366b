"""Stylize whole folders: resumable (a manifest of what is done, with which settings), a bad file
isolated, a summary at the end; locally or on a Ray cluster (:mod:`brushwork.batch.ray`, the
``ray`` extra).

    from brushwork.batch import BatchSettings, plan_batch, run_local
    from brushwork.pipeline import StylizeOptions

    plan = plan_batch("photos/", "out/", BatchSettings(StylizeOptions(model="starry_night", size=1024)))
    summary = run_local(plan, progress=lambda result, done, total: print(done, total, result.status))
"""

from __future__ import annotations

from brushwork.batch.local import (
    MANIFEST_NAME,
    SUMMARY_NAME,
    BatchItem,
    BatchPlan,
    BatchRecorder,
    BatchSettings,
    BatchSummary,
    FileResult,
    batch_stylize,
    open_stylizer,
    plan_batch,
    read_manifest,
    run_local,
    stylize_file,
    write_atomic,
)

__all__ = [
    "MANIFEST_NAME", "SUMMARY_NAME", "BatchItem", "BatchPlan", "BatchRecorder", "BatchSettings", "BatchSummary",
    "FileResult", "batch_stylize", "open_stylizer", "plan_batch", "read_manifest", "run_local", "stylize_file",
    "write_atomic",
]
