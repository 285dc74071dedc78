"""Same-process A/B of every native op against its PyTorch routes.

The calls are recorded from one real click of the fast per-click decoder
(a full-size model with random weights, :func:`record_click_calls`), so
shapes, dtypes and strides are exactly the decoder's. Per op, the routes
run the same recorded calls, interleaved in a shuffled order per round:

* ``native``: the dispatcher's check plus the custom op (what the decoder
  pays);
* ``eager``: the op's PyTorch reference route;
* ``compiled``: ``torch.compile`` (inductor) of that reference route.

Figures are medians over the rounds of the time for all of one click's
calls of the op; ``ratio`` is the median over the rounds of the best
PyTorch route's time over ``native``'s in the same round.
"""
import random
import statistics
import time
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch

from . import dispatch, library
from .attention import attention_reference
from .linear import linear_reference
from .pyramid_tokens import pyramid_tokens_reference
from .resize import resize_reference

__all__ = [
    'record_click_calls', 'ab_rows', 'format_ab_table', 'KEEP_RATIO',
    'REFERENCE_ROUTES'
]

#: A kernel is kept where the best PyTorch route is this much slower.
KEEP_RATIO = 1.15


def _resize_route(src, dst, accumulate):
    return resize_reference(src, tuple(dst.shape[-2:]), dst, accumulate)


#: Op name -> index of the argument the op writes in place (restored
#: before every timed run, so every run sees the recorded values).
MUTATED = {'bilinear_resize': 1}
#: Op name -> (custom op name, PyTorch reference route on the op's args).
REFERENCE_ROUTES: Dict[str, Tuple[str, Callable]] = {
    'bilinear_resize': ('bilinear_resize_', _resize_route),
    'pyramid_tokens': ('pyramid_tokens', pyramid_tokens_reference),
    'attention_bf16': ('attention_bf16', attention_reference),
    'attention_f32': ('attention_f32', attention_reference),
    'linear_bf16': ('linear_bf16', linear_reference),
}


def record_click_calls(model: str = 'light',
                       precision: str = 'fp32',
                       size: Tuple[int, int] = (352, 512)
                       ) -> List[Tuple[str, tuple]]:
    """The (op name, arguments) of every op call in one click of the fast
    decoder (the second click on a benchmark image)."""
    from ..apis import InterFormerPredictor
    from ..benchmark import benchmark_sample, build_benchmark_model
    predictor = InterFormerPredictor(
        build_benchmark_model(model), path='fast', precision=precision)
    image, _, _ = benchmark_sample(size)
    predictor.set_image(image)
    predictor.add_click(size[0] // 2, size[1] // 2, True)
    predictor.predict()
    calls = []
    why_not = dispatch.why_not

    def recording(name, *args, **kwargs):
        calls.append((name, args))
        return why_not(name, *args, **kwargs)

    dispatch.why_not = recording
    try:
        predictor.add_click(size[0] // 4, size[1] // 4, False)
        predictor.predict()
    finally:
        dispatch.why_not = why_not
    return calls


def _time(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _routes(name: str, calls: Sequence[tuple],
            compile_reference: bool) -> Dict[str, Callable[[], None]]:
    op_name, reference = REFERENCE_ROUTES[name]
    op = getattr(torch.ops.interformer, op_name)

    def run(fn):
        def all_calls():
            for args in calls:
                fn(*args)
        return all_calls

    def native(*args):
        if not dispatch.use_native(name, *args):
            raise RuntimeError(dispatch.explain(name, *args))
        op(*args)

    routes = {'eager': run(reference)}
    if dispatch.why_not(name, *calls[0]) is None:
        routes['native'] = run(native)
    if compile_reference:
        routes['compiled'] = run(torch.compile(reference))
    return routes


def ab_rows(calls: Sequence[Tuple[str, tuple]],
            rounds: int = 30,
            compile_reference: bool = True,
            seed: int = 0) -> List[dict]:
    """Per op and dtype: median ms per click of each route and the ratio.

    Args:
        calls: :func:`record_click_calls` output (one or more precisions).
        rounds: timed rounds (after two warm-up rounds, which also compile).
        compile_reference: include the ``torch.compile`` route.
    """
    import torch._dynamo
    torch._dynamo.config.cache_size_limit = max(
        64, torch._dynamo.config.cache_size_limit)
    groups: Dict[Tuple[str, torch.dtype], List[tuple]] = {}
    for name, args in calls:
        groups.setdefault((name, args[0].dtype), []).append(args)
    rng = random.Random(seed)
    rows = []
    for (name, dtype), group in groups.items():
        reason = dispatch.why_not(name, *group[0])
        routes = _routes(name, group, compile_reference)
        times = {route: [] for route in routes}
        index = MUTATED.get(name)
        saved = [] if index is None else [a[index].clone() for a in group]
        for round_ in range(rounds + 2):
            order = list(routes)
            rng.shuffle(order)
            with torch.inference_mode():
                for route in order:
                    for args, value in zip(group, saved):
                        args[index].copy_(value)
                    elapsed = _time(routes[route])
                    if round_ >= 2:
                        times[route].append(elapsed)
        median = {
            route: statistics.median(values) * 1e3
            for route, values in times.items()
        }
        ratio = None
        if 'native' in times:
            # paired per round (the routes of a round run back to back, so
            # a burst of load on the shared machine hits them alike)
            ratio = statistics.median(
                min(times[k][i] for k in times if k != 'native') /
                times['native'][i] for i in range(rounds))
        rows.append(
            dict(op=name, dtype=str(dtype).replace('torch.', ''),
                 calls=len(group), native_ms=median.get('native'),
                 eager_ms=median['eager'],
                 compiled_ms=median.get('compiled'), ratio=ratio,
                 keep=None if ratio is None else ratio >= KEEP_RATIO,
                 why_not=reason))
    return rows


def _fmt(value: Optional[float], spec: str = '.3f') -> str:
    return '–' if value is None else format(value, spec)


def format_ab_table(rows: Sequence[dict], threads: int) -> str:
    """A Markdown table with the CPU, AMX and thread count above it."""
    amx = 'amx_bf16' in library.cpu_flags()
    lines = [
        f'CPU: {library.cpu_model()}, AMX-BF16: {"yes" if amx else "no"}, '
        f'threads: {threads}, torch {torch.__version__}; median ms for one '
        f'click\'s calls of the op',
        '',
        '| op | dtype | calls | native ms | eager ms | compiled ms '
        '| best PyTorch / native (paired median) |',
        '|---|---|---|---|---|---|---|',
    ]
    for r in rows:
        ratio = _fmt(r['ratio'], '.2f') if r['ratio'] is not None else \
            f'n/a ({r["why_not"]})'
        lines.append(f'| {r["op"]} | {r["dtype"]} | {r["calls"]} | '
                     f'{_fmt(r["native_ms"])} | {_fmt(r["eager_ms"])} | '
                     f'{_fmt(r["compiled_ms"])} | {ratio} |')
    return '\n'.join(lines)
