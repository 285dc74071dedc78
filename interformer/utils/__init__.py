"""Small utilities (model summaries, command-line conventions).

The model-summary helpers need torch and load on first use, so that
:mod:`interformer.utils.cli` serves the torch-free tools too.
"""
__all__ = ['count_parameters', 'format_parameter_table', 'parameter_rows']


def __getattr__(name):
    if name in __all__:
        from . import model_summary
        return getattr(model_summary, name)
    raise AttributeError(name)
