"""Out-of-bounds detectors for Triton kernels run through the interpreter (TRITON_INTERPRET=1).

The interpreter reads and writes raw host addresses for every lane whose mask is true and
never checks them, so an access past the end of a tensor reads a neighbour's memory or
nothing visible at all. Two complementary checks make such bugs fail a CPU test:

- `margined(t)`: a contiguous copy of `t` that is a view into a larger buffer whose margins
  (before and after) hold NaN (integers: a large sentinel). A stray read brings NaN into the
  result; `margins_intact(view)` says whether a stray write changed a margin.
- `guard_memory()`: while active, every masked-in address of every interpreted load and store
  must lie inside one tensor argument of the running kernel (the whole access, element size
  included, inside that tensor's own extent, not its storage). A violation raises with the
  kernel, the operation and the nearest argument.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch

MARGIN = 97  # elements on each side; odd, so no alignment hides an off-by-a-tile access
_SENTINEL_INT = -(2**30) + 7
_margins: dict[int, tuple[torch.Tensor, torch.Tensor, int, int]] = {}  # id(view) -> (view, buffer, start, numel)


def margined(t: torch.Tensor, margin: int = MARGIN) -> torch.Tensor:
    """A contiguous copy of `t` living at offset `margin` inside a NaN/sentinel-filled buffer."""
    n = t.numel()
    buf = torch.empty(n + 2 * margin, dtype=t.dtype, device=t.device)
    buf.fill_(float("nan") if t.is_floating_point() else _SENTINEL_INT)
    view = buf[margin:margin + n].view(t.shape)
    view.copy_(t)
    _margins[id(view)] = (view, buf, margin, n)  # the view is kept: its id stays unique
    return view


def margins_intact(view: torch.Tensor) -> bool:
    """True if both margins around a `margined` view still hold their fill, bit for bit."""
    _, buf, start, n = _margins[id(view)]
    edges = torch.cat([buf[:start], buf[start + n:]])
    if buf.is_floating_point():
        return bool(torch.isnan(edges).all())
    return bool((edges == _SENTINEL_INT).all())


def _extent(t: torch.Tensor) -> tuple[int, int]:
    """[first byte, one past the last byte] of the elements a tensor view can address."""
    if t.numel() == 0:
        return t.data_ptr(), t.data_ptr()
    span = sum((s - 1) * st for s, st in zip(t.shape, t.stride()) if s > 0) + 1
    return t.data_ptr(), t.data_ptr() + span * t.element_size()


@contextmanager
def guard_memory():
    """Check every masked-in interpreted load/store address against the kernel's tensor args."""
    import inspect

    import numpy as np
    from triton.runtime import interpreter as interp

    builder = interp.interpreter_builder
    active: list[tuple[str, list[tuple[str, int, int]]]] = []
    orig_call = interp.GridExecutor.__call__
    orig_load, orig_store = builder.create_masked_load, builder.create_masked_store

    def call(self, *args, **kwargs):
        sig = inspect.signature(self.fn)  # launch options (num_warps, ...) are not kernel arguments
        bound = sig.bind_partial(*args, **{n: a for n, a in kwargs.items() if n in sig.parameters}).arguments
        regions = [(name, *_extent(a)) for name, a in bound.items() if isinstance(a, torch.Tensor)]
        active.append((getattr(self.fn, "__name__", "kernel"), regions))
        try:
            return orig_call(self, *args, **kwargs)
        finally:
            active.pop()

    def check(ptrs, mask, op):
        if not active:
            return
        kernel, regions = active[-1]
        addr = np.asarray(ptrs.data, dtype=np.uint64)
        m = np.broadcast_to(np.asarray(mask.data, dtype=bool), addr.shape)
        live = addr[m]
        if live.size == 0:
            return
        size = max(1, ptrs.get_element_ty().primitive_bitwidth // 8)
        lo, hi = int(live.min()), int(live.max()) + size
        for _, start, end in regions:
            if start <= lo and hi <= end:
                return
        near = min(regions, key=lambda r: min(abs(lo - r[1]), abs(lo - r[2])), default=None)
        where = f"nearest argument {near[0]!r} spans [{near[1]:#x}, {near[2]:#x})" if near else "no tensor arguments"
        raise AssertionError(f"{kernel}: {op} of {live.size} lanes touches [{lo:#x}, {hi:#x}), outside every tensor "
                             f"argument; {where}")

    def load(ptrs, mask, other, *rest):
        check(ptrs, mask, "load")
        return orig_load(ptrs, mask, other, *rest)

    def store(ptrs, value, mask, *rest):
        check(ptrs, mask, "store")
        return orig_store(ptrs, value, mask, *rest)

    interp.GridExecutor.__call__ = call
    builder.create_masked_load, builder.create_masked_store = load, store
    try:
        yield
    finally:
        interp.GridExecutor.__call__ = orig_call
        del builder.create_masked_load, builder.create_masked_store
