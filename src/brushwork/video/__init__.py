"""Video stylization: PyAV decoding/encoding with audio pass-through, DIS optical flow, and a
temporally consistent, resumable frame loop around any one-pass stylizer.

Needs the ``video`` extra (``pip install 'brushwork[video]'``: PyAV and OpenCV)::

    from brushwork.pipeline import ImageStylizer, StylizeOptions
    from brushwork.video import stylize_video

    stylizer = ImageStylizer(StylizeOptions(styles=[("starry_night", 1.0)], size=512))
    result = stylize_video("in.mp4", "out.mp4", stylizer, temporal_weight=0.7)
    print(result.frames, result.flicker)
"""

from brushwork.video.flow import FlowEstimator, consistency_mask, to_gray, warp
from brushwork.video.io import VideoError, VideoInfo, encode_video, frame_size, iter_frames, probe_video
from brushwork.video.temporal import (
    DEFAULT_TEMPORAL_WEIGHT,
    FLICKER_METRIC,
    VideoProgress,
    VideoResult,
    blend,
    measure_flicker,
    restore_detail,
    stylize_video,
    warp_error,
    work_dir_for,
)

__all__ = [
    "DEFAULT_TEMPORAL_WEIGHT",
    "FLICKER_METRIC",
    "FlowEstimator",
    "VideoError",
    "VideoInfo",
    "VideoProgress",
    "VideoResult",
    "blend",
    "consistency_mask",
    "encode_video",
    "frame_size",
    "iter_frames",
    "measure_flicker",
    "probe_video",
    "restore_detail",
    "stylize_video",
    "to_gray",
    "warp",
    "warp_error",
    "work_dir_for",
]
