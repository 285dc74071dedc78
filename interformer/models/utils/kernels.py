"""Where the fused routes find the optional C kernels.

One place to import them from, lazily (the kernels build at first use).
"""

__all__ = ['native']


def native():
    """The C-kernel loader module (``active()``, ``load_*()``,
    ``MAX_CHANNELS``)."""
    from interformer.apis.fast import native as module
    return module
