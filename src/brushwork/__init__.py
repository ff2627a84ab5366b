"""brushwork: neural style transfer with the controls artists ask for.

The small public API::

    import brushwork
    img = brushwork.stylize("photo.jpg", "painting.jpg", steps=200)   # a PIL image
    img = brushwork.stylize("photo.jpg", "starry_night")              # a built-in style preset
    img.save("out.png")

Heavy modules (torch) load on first use, so ``import brushwork`` and
``brushwork --version`` stay fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_LAZY = {
    "stylize": "brushwork.api",
    "optimize": "brushwork.methods.optimize",
    "OptimizeConfig": "brushwork.methods.optimize",
    "StyleSpec": "brushwork.methods.optimize",
    "BrushworkError": "brushwork.errors",
    "list_styles": "brushwork.api",
}

if TYPE_CHECKING:  # pragma: no cover
    from brushwork.api import list_styles, stylize
    from brushwork.errors import BrushworkError
    from brushwork.methods.optimize import OptimizeConfig, StyleSpec, optimize

__all__ = ["BrushworkError", "OptimizeConfig", "StyleSpec", "__version__", "list_styles", "optimize", "stylize"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'brushwork' has no attribute '{name}'")
