"""Style-transfer methods. Each module is one family from the literature.

Nothing is imported here: the registry (``methods.registry``, ``methods.builtin``) is torch-free and
the method modules load torch, so each is imported by name (``brushwork.optimize`` is the public API
of the optimization method).
"""
