"""Per-module parameter table of a segmentor."""
from typing import List, Tuple

import torch

__all__ = ['count_parameters', 'parameter_rows', 'format_parameter_table']

MODULES = ('backbone', 'neck', 'decode_head', 'auxiliary_head')


def count_parameters(module: torch.nn.Module, trainable_only=True) -> int:
    """Number of (trainable) parameters of ``module``."""
    return sum(p.numel() for p in module.parameters()
               if p.requires_grad or not trainable_only)


def parameter_rows(model: torch.nn.Module) -> List[Tuple[str, int, str]]:
    """(module, trainable parameters, role) for each top-level module."""
    roles = dict(
        backbone='once per image',
        neck='per click',
        decode_head='per click',
        auxiliary_head='training only')
    rows = []
    for name in MODULES:
        sub = getattr(model, name, None)
        if isinstance(sub, torch.nn.Module):
            rows.append((name, count_parameters(sub), roles[name]))
    return rows


def format_parameter_table(model: torch.nn.Module, title: str = '') -> str:
    """A plain-text table of :func:`parameter_rows` plus the total."""
    rows = parameter_rows(model)
    total = count_parameters(model)
    lines = [title] if title else []
    lines.append(f'| {"module":<16} | {"parameters":>12} | {"runs":<15} |')
    lines.append(f'|{"-" * 18}|{"-" * 14}|{"-" * 17}|')
    for name, count, role in rows:
        lines.append(f'| {name:<16} | {count:>12,} | {role:<15} |')
    lines.append(f'| {"total":<16} | {total:>12,} | {"":<15} |')
    return '\n'.join(lines)
