"""PNG charts an analyst can paste in a report: a what-if (stops × days, open or closed), a stop's demand
over time against its thresholds, and the stops at their positions sized by demand, coloured by state.

matplotlib is an optional extra (`pip install -e '.[charts]'`), imported here only when a chart is drawn, so
the services start without it; Agg draws without any display."""

import io
import math
from collections.abc import Sequence
from typing import Any

from services.common.errors import DriveError

OPEN, CLOSED, FORCED = "#2e7d32", "#c9ccd1", "#1565c0"


class ChartsUnavailable(DriveError):
    status = 501
    code = "charts_unavailable"


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError as exc:
        raise ChartsUnavailable("charts need matplotlib: pip install -e '.[charts]'") from exc
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png(fig: Any) -> bytes:
    out = io.BytesIO()
    fig.savefig(out, format="png", dpi=110, bbox_inches="tight")
    fig.clf()
    _pyplot().close(fig)
    return out.getvalue()


def what_if_png(result: dict) -> bytes:
    """One row per stop, one column per day: green when the stop would have been open."""
    plt = _pyplot()
    from matplotlib.colors import ListedColormap

    stops = result["stops"]
    fig, ax = plt.subplots(figsize=(min(4 + 0.12 * len(result["days"]), 16), 1.2 + 0.32 * len(stops)))
    grid = [[1 if is_open else 0 for is_open in s["open"]] for s in stops]
    ax.imshow(grid, aspect="auto", cmap=ListedColormap([CLOSED, OPEN]), vmin=0, vmax=1, interpolation="nearest")
    ax.set_yticks(range(len(stops)), [f"{s['name']} ({s['open_days']} d)" for s in stops], fontsize=8)
    step = max(1, len(result["days"]) // 12)
    ax.set_xticks(range(0, len(result["days"]), step),
                  [str(d)[5:] for d in result["days"][::step]], fontsize=8, rotation=45)
    ax.set_title(f"What if: open at ≥ {result['enable_threshold']}, close below {result['disable_threshold']} "
                 f"for {result['consecutive_evaluations']} day(s); {result['window_days']}-day window "
                 f"({result['first']} → {result['last']})", fontsize=10)
    ax.set_xlabel("green: open for drive pickup · grey: closed")
    return _png(fig)


def demand_png(report: dict) -> bytes:
    """The stop's demand day by day, with its enable and disable thresholds."""
    plt = _pyplot()
    days = [point["day"] for point in report["series"]]
    demand = [point["demand"] for point in report["series"]]
    fig, ax = plt.subplots(figsize=(9, 4))
    ax.step(days, demand, where="post", color="#37474f", linewidth=2, label="demand (distinct patrons)")
    ax.axhline(report["enable_threshold"], color=OPEN, linestyle="--", label=f"opens at {report['enable_threshold']}")
    ax.axhline(report["disable_threshold"], color="#c62828", linestyle=":",
               label=f"closes below {report['disable_threshold']}")
    ax.set_ylim(bottom=0, top=max([*demand, report["enable_threshold"]]) + 1)
    ax.set_title(f"{report['name']} ({report['district']}) — distinct patrons over a {report['window_days']}-day "
                 f"window, day by day; now {'open' if report['enabled'] else 'closed'}", fontsize=10)
    ax.legend(loc="upper left", fontsize=8)
    ax.grid(alpha=0.3)
    fig.autofmt_xdate()
    return _png(fig)


def map_png(stops: Sequence[dict]) -> bytes:
    """The stops at their positions (no tiles), disc area ∝ demand, colour = state."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 7))
    colours = [FORCED if s["mode"] != "auto" else OPEN if s["enabled"] else CLOSED for s in stops]
    ax.scatter([s["longitude"] for s in stops], [s["latitude"] for s in stops], c=colours,
               s=[60 + 40 * s["demand"] for s in stops], edgecolors="#37474f", alpha=0.85)
    for s in stops:
        ax.annotate(f"{s['district']} ({s['demand']})", (s["longitude"], s["latitude"]), fontsize=8,
                    xytext=(6, 6), textcoords="offset points")
    _frame(ax, [s["latitude"] for s in stops], [s["longitude"] for s in stops])
    ax.set_xlabel("longitude")
    ax.set_ylabel("latitude")
    ax.set_title("Bibliobus stops — disc: demand · green: open · grey: closed · blue: forced by an analyst",
                 fontsize=10)
    ax.grid(alpha=0.3)
    return _png(fig)


def _frame(ax: Any, latitudes: Sequence[float], longitudes: Sequence[float]) -> None:
    """Room around the stops (a lone stop too), and true proportions: a degree of longitude is shorter than one
    of latitude by cos(latitude)."""
    if not latitudes:
        return
    stretch = 1 / math.cos(math.radians(sum(latitudes) / len(latitudes)))
    half = max(0.02, (max(latitudes) - min(latitudes)) * 0.6, (max(longitudes) - min(longitudes)) * 0.6 / stretch)
    middle = ((max(latitudes) + min(latitudes)) / 2, (max(longitudes) + min(longitudes)) / 2)
    ax.set_ylim(middle[0] - half, middle[0] + half)
    ax.set_xlim(middle[1] - half * stretch, middle[1] + half * stretch)
    ax.set_aspect(stretch)
