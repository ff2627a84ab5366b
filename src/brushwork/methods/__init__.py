"""Style-transfer methods. Each module is one family from the literature."""

from brushwork.methods.optimize import OptimizeConfig, StepInfo, StyleSpec, StylizeResult, optimize

__all__ = ["OptimizeConfig", "StepInfo", "StyleSpec", "StylizeResult", "optimize"]
