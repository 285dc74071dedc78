"""Small utilities (model summaries)."""
from .model_summary import (
                            count_parameters,
                            format_parameter_table,
                            parameter_rows,
)

__all__ = ['count_parameters', 'format_parameter_table', 'parameter_rows']
