"""brushwork: neural style transfer with the controls artists ask for.

The small public API::

    import brushwork
    img = brushwork.stylize("photo.jpg", "painting.jpg", steps=200)   # a PIL image
    img.save("out.png")
"""

from __future__ import annotations

__version__ = "0.1.0"

from brushwork.api import stylize  # noqa: E402
from brushwork.errors import BrushworkError  # noqa: E402
from brushwork.methods.optimize import OptimizeConfig, StyleSpec, optimize  # noqa: E402

__all__ = ["BrushworkError", "OptimizeConfig", "StyleSpec", "__version__", "optimize", "stylize"]
