"""PNG figures with matplotlib's object-oriented API (``plot_results.py``, ``predict.py``).

matplotlib is optional: it is imported inside these functions, so modules that may draw can be imported
without it.  Figures are drawn with the Agg canvas and no pyplot, so no global backend is switched and
nothing accumulates when a figure is redrawn; each PNG is written atomically at exactly its size.
"""
from __future__ import annotations

from utils.atomic import atomic_write

INSTALL_HINT = "matplotlib is needed to draw figures: pip install matplotlib"
# 96 dpi and sizes in multiples of 1/32 inch give whole pixel sizes exactly (no float truncation).
DPI = 96


def require_matplotlib():
    """Import matplotlib's object-oriented API; ``ImportError`` with the install command when absent."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as e:
        raise ImportError(f"{INSTALL_HINT} ({e})") from e
    return Figure, FigureCanvasAgg


def figure(size: tuple[float, float], layout: str | None = "constrained"):
    """A new figure of ``size`` inches on an Agg canvas."""
    Figure, FigureCanvasAgg = require_matplotlib()
    fig = Figure(figsize=size, dpi=DPI, layout=layout)
    FigureCanvasAgg(fig)  # attaches itself: savefig renders with Agg whatever the default backend is
    return fig


def save_png(fig, out_path: str) -> tuple[int, int]:
    """Write the PNG atomically (a viewer refreshing it never sees half a file) at exactly the figure's
    size; returns ``(width, height)`` in pixels."""
    from matplotlib import rc_context
    # A user's matplotlibrc may ask for bbox 'tight' or another dpi: both would change the size.
    with rc_context({"savefig.bbox": "standard"}):
        atomic_write(out_path, lambda tmp: fig.savefig(tmp, format="png", dpi=DPI))
    w, h = fig.get_size_inches() * DPI
    return int(round(w)), int(round(h))
