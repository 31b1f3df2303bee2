"""The HTML report: self-contained, escaped, the variants first, each plot with the marks its
figures call for, and the latency plot drawn from the paired comparison the verdict used. The
page in a real browser: test_html_browser.py."""

from __future__ import annotations

import re
from statistics import median

from pytest_tflite.reports import budget_plot, figure, html, latency_plot, svg
from pytest_tflite.results import Accuracy, Check, DelegateResult, Entry
from tests.helpers.entries import compared_entry, entry, latency, many_entries
from tests.unit.reports.failing_paired import failing_paired_report
from tests.unit.reports.page import parse


def known_entries() -> tuple[list[Entry], dict[tuple[str, str], Entry]]:
    """int8: xnnpack with 50 samples compared with the base (ratio 1.08 [1.05, 1.11], no
    per-pair ratios), builtin without samples and without a comparison; float32: xnnpack with
    30 samples, no baseline. The baseline entry's xnnpack has 40 samples of its own run."""
    head = compared_entry()
    float32 = entry(variant="float32", size=90_000,
                    checks=[Check("size.max", 90_000, 100_000, "pass", "bytes")],
                    delegates={"xnnpack": DelegateResult("ok", latency_ms=latency(1.5, n=30))})
    base = entry(size=20_000, delegates={
        "xnnpack": DelegateResult("ok", latency_ms=latency(0.46, n=40, seed=3))})
    return [head, float32], {("digits_cnn", "int8"): base}


def test_each_plot_has_one_mark_per_figure():
    entries, baselines = known_entries()
    marks = parse(html.render(entries, baselines))
    # Latency: the compared delegate is its interval (no ratios kept); the others this run's
    # invokes, a dot per timed run, or a box without samples. The base run's samples: never.
    assert marks.count("latency", "rect", "lat-interval") == 1
    assert marks.count("latency", "circle", "lat-pair") == 0
    assert marks.count("latency", "circle", "lat-head") == 30
    assert marks.count("latency", "rect", "lat-head-summary") == 1
    assert not [k for k in marks.counts if "lat-base" in k[2]]
    # Measured vs budget: size.max failed, accuracy.min 0.97 is within 10% of 0.95, float32's
    # size.max is at 90% of its limit; latency.xnnpack.median at 50% folds, with its base.
    assert marks.count("budget", "circle", "budget-dot") == 3
    assert marks.count("budget", "circle", "v-fail") == 1
    assert marks.count("budget", "circle", "v-pass") == 2
    assert marks.count("budget", "circle", "budget-base") == 2
    assert marks.count("folded-budget", "circle", "budget-dot") == 1
    assert marks.count("folded-budget", "circle", "budget-base") == 1
    # Size: file and gzip bars per variant, the base's size for the one that has it.
    assert marks.count("size", "rect", "size-bar") == 2
    assert marks.count("size", "rect", "size-gzip") == 2
    assert marks.count("size", "line", "size-base") == 1
    assert set(marks.boxes) == {"latency", "budget", "size"}


def test_the_variants_table_comes_first_worst_first():
    entries, baselines = failing_paired_report()
    page = html.render(entries, baselines)
    assert page.index('id="variants"') < page.index('id="plot-latency"') < page.index("<h2>Checks")
    table = page[page.index('id="variants"'):page.index('id="plot-latency"')]
    rows = re.findall(r'<tr class="verdict-(\w+)"[^>]*><td[^>]*>[^<]*</td><td[^>]*>(\w+)<', table)
    assert rows == [("fail", "int8"), ("pass", "float32"), ("pass", "float16")]
    assert "4: size.max, size.max_gzip, regression.latency.xnnpack, " in table
    assert re.search(r"xnnpack 4\d\d µs<br>builtin 7\d\d µs", table)  # a line per delegate
    assert "xnnpack +5.5% regressed<br>builtin +22.0% regressed" in table
    # The plots start below it: its height is fixed by its row count, not by fonts.
    top = html.HEADER_HEIGHT + html.variants_height(3, lines=2) + html.CAPTION_HEIGHT
    assert parse(page).boxes["latency"][1] == top


def test_the_latency_plot_draws_the_paired_run_never_the_base_run():
    """The base run timed xnnpack a third faster and builtin slower than the paired run did;
    drawn, those samples said +54% and "faster". The plot draws the pairs: each row's pairs,
    its interval and its ratio sit where the paired verdict says, on the row's % axis."""
    entries, baselines = failing_paired_report()
    marks = parse(html.render(entries, baselines))
    assert not [k for k in marks.counts if "lat-base" in k[2]]
    assert marks.count("latency", "circle", "lat-pair") == 3 * 40
    assert marks.count("latency", "rect", "lat-interval") == 3
    assert marks.count("latency", "circle", "lat-head") == 60  # float16, not compared
    bands = marks.find("latency", "rect", "lat-band")
    zeros = marks.find("latency", "line", "lat-zero")
    intervals = marks.find("latency", "rect", "lat-interval")
    # Worst first: the two regressed rows, then the unchanged one.
    assert [i.classes[-1] for i in intervals] == ["c-regressed", "c-regressed", "c-unchanged"]
    dots = marks.find("latency", "circle", "lat-pair")
    for row, (band, zero, interval) in enumerate(zip(bands, zeros, intervals)):
        band_left, band_right = band.number("x"), band.number("x") + band.number("width")
        zero_x = zero.number("x1")
        # The band is ±5% around the base's 0: symmetric on a linear axis.
        assert abs((zero_x - band_left) - (band_right - zero_x)) < 0.2
        pairs = median(d.number("cx") for d in dots[row * 40:(row + 1) * 40])
        low, high = interval.number("x"), interval.number("x") + interval.number("width")
        if row < 2:  # regressed: the pairs and the whole interval right of the band
            assert low > band_right and pairs > band_right
        else:  # +1.0% [-1.0, +3.0] unchanged: inside the band, around the base
            assert band_left < low < zero_x < high < band_right
    # xnnpack: [+5.1%, +5.9%] on an axis where the band spans 10 points and ends at +5%.
    per_point = bands[0].number("width") / 10
    first_band = bands[0].number("x") + bands[0].number("width")
    assert abs(intervals[0].number("x") - (first_band + 0.1 * per_point)) < 0.2
    assert abs(intervals[0].number("width") - 0.8 * per_point) < 0.2
    texts = marks.texts("latency")
    assert "base 455 µs → head 480 µs (same run)" in texts
    assert texts.count("CPU time, 1 thread") == 3
    assert "+5.5% [+5.1%, +5.9%] regressed" in texts


def test_a_report_without_per_pair_ratios_draws_the_interval_and_the_band():
    entries, baselines = failing_paired_report(ratios=False)
    for comparison in (d.comparison for e in entries for d in e.measurement.delegates.values()):
        if comparison is not None:
            comparison.base_median_ms = comparison.head_median_ms = None
            comparison.clock = ""
    marks = parse(html.render(entries, baselines))
    assert marks.count("latency", "circle", "lat-pair") == 0
    assert marks.count("latency", "rect", "lat-interval") == 3
    assert len(marks.find("latency", "rect", "lat-band")) == 3
    assert not [t for t in marks.texts("latency") if "same run" in t]


def test_figures_that_are_not_numbers_draw_nothing_false():
    entries, baselines = failing_paired_report()
    xnnpack = entries[1].measurement.delegates["xnnpack"]
    assert xnnpack.comparison is not None and xnnpack.comparison.ratios is not None
    xnnpack.comparison.high = float("nan")
    xnnpack.comparison.ratios[:3] = [float("inf"), float("nan"), -1.0]
    page = html.render(entries, baselines)
    assert not re.search(r'="[^"]*(nan|inf)', page, re.I)
    marks = parse(page)
    assert marks.count("latency", "rect", "lat-interval") == 2  # builtin and float32 only
    assert "ratio 1.055 [1.051, nan]: not a number" in marks.texts("latency")


def test_every_axis_has_a_title_and_its_labels_a_unit():
    entries, baselines = failing_paired_report()
    page = html.render(entries, baselines)
    marks = parse(page)
    labels = marks.texts("latency", "axis-label")
    assert labels and all(re.search(r"(µs|ms|\ds|%|% \(base\))$", t) for t in labels), labels
    assert any(t.endswith("µs") for t in labels) and any(t.endswith("%") for t in labels)
    for plot in ("latency", "budget"):
        assert marks.texts(plot, "axis-title"), plot
    assert not re.search(r"\d us\b", page)  # microseconds are µs everywhere on the page
    assert "µs" in page[page.index("<h2>Checks"):]  # the tables' figures too


def test_quality_figures_are_drawn_as_a_difference_from_the_limit():
    """top-1 0.94 against min 0.95 is 0.989 of the limit: as a ratio on the log axis it sat on
    the limit line like a pass. As a difference it is -1 pt, on the wrong side, by the row's
    half width over 1.4; a 0.953 pass (near: 0.047 of the 0.05 shortfall allowed) sits as far
    on the right side, at +0.3 pt on its own scale."""
    failing = entry(variant="int8", checks=[Check("accuracy.min", 0.94, 0.95, "fail")])
    failing.measurement.accuracy = Accuracy("top1", 0.94, 0.97, 0.03, 397, True)
    passing = entry(variant="float16", checks=[Check("accuracy.min", 0.953, 0.95, "pass")])
    passing.measurement.accuracy = Accuracy("top1", 0.953, 0.97, 0.017, 397, True)
    marks = parse(html.render([failing, passing]))
    dots = marks.find("budget", "circle", "budget-dot")
    half = (budget_plot.BUDGET_RIGHT - budget_plot.BUDGET_LEFT) / 2
    assert [d.classes[-1] for d in dots] == ["v-fail", "v-pass"]
    assert abs(dots[0].number("cx") - (budget_plot.LIMIT_X - half / 1.4)) < 0.2
    assert abs(dots[1].number("cx") - (budget_plot.LIMIT_X + half / 1.4)) < 0.2
    texts = marks.texts("budget")
    assert "0.94 vs min 0.95: \N{MINUS SIGN}1 pt" in texts
    assert "0.953 vs min 0.95: +0.3 pt" in texts


def test_passes_with_room_fold_and_those_near_their_limit_show():
    e = entry(checks=[
        Check("size.max", 95_000, 100_000, "pass", "bytes"),  # 95% of the limit: shown
        Check("size.max_gzip", 50_000, 100_000, "pass", "bytes"),  # 50%: folded
        Check("fidelity.min_cosine", 0.9952, 0.995, "pass"),  # 0.0048 of 0.005 allowed: shown
        Check("fidelity.min_top1_agreement", 0.999, 0.98, "pass"),  # 0.001 of 0.02: folded
        Check("regression.size", 24_000, 24_240, "pass", "bytes", baseline=23_000),  # 1000/1240
        Check("regression.gzip", 23_200, 24_240, "pass", "bytes", baseline=23_000),  # 200/1240
        Check("memory.planned_arena", 200, 100, "fail", "bytes"),
        Check("latency.xnnpack.median", None, 1.0, "skip", "ms", reason="off"),
    ])
    shown, folded = budget_plot.budget_rows([e])
    assert [r.check.metric for r in shown] == ["memory.planned_arena", "size.max",
                                               "fidelity.min_cosine"]
    assert [r.check.metric for r in folded] == ["size.max_gzip", "fidelity.min_top1_agreement",
                                                "regression.size", "regression.gzip"]
    page = html.render([e])
    assert "4 more checks pass with more than 10% to spare" in page
    snr = entry(checks=[Check("fidelity.min_snr_db", 31.0, 30.0, "pass")])  # 3% above: near
    assert "31 vs min 30: +1 dB" in parse(html.render([snr])).texts("budget")
    assert page.index('id="plot-budget"') < page.index('id="folded-budget"')


def test_without_any_baseline_only_the_head_is_drawn():
    plain = entry(checks=[Check("size.max", 1000, 2000, "pass", "bytes")],
                  delegates={"xnnpack": DelegateResult("ok", latency_ms=latency(0.3, n=12))})
    marks = parse(html.render([plain]))
    assert marks.count("latency", "circle", "lat-head") == 12
    assert not [k for k in marks.counts if "base" in k[2]]


def test_long_sample_lists_are_thinned_and_keep_their_extremes():
    values = latency(1.0, n=1000).samples
    assert values is not None
    thinned = svg.thin(values, latency_plot.MAX_DOTS)
    assert len(thinned) == latency_plot.MAX_DOTS
    assert (thinned[0], thinned[-1]) == (min(values), max(values))
    big = entry(delegates={"xnnpack": DelegateResult("ok", latency_ms=latency(1.0, n=1000))})
    assert parse(html.render([big])).count("latency", "circle", "lat-head") == latency_plot.MAX_DOTS


def test_the_page_is_self_contained_and_escapes_every_name():
    hostile = entry(model='m"><script>alert(1)</script>', variant="<img src=https://x.test/a>",
                    checks=[Check("size.max", 2, 1, "fail", "bytes",
                                  reason='<a href="http://evil.test">x</a>')],
                    warnings=["<b>bold</b>"])
    entries, baselines = known_entries()
    own = html.render(entries, baselines)
    # Not even in the text: the page names no URL of its own (inline SVG needs no xmlns).
    assert not re.search(r"https?://", own), re.search(r".{40}https?://.{40}", own)
    assert "url(" not in own and "@import" not in own
    page = html.render([*entries, hostile], baselines)
    marks = parse(page)
    # A name that holds a URL stays text: no element of the page gets it as src or href.
    assert not [u for u in marks.urls if re.match(r"\s*(https?:)?//", u, re.I)], marks.urls
    assert not re.search(r"""<[^>]*\b(src|href)\s*=\s*["']?\s*https?://""", page, re.I)
    assert "script" not in marks.tags and "img" not in marks.tags and "a" not in marks.tags
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "&lt;b&gt;bold&lt;/b&gt;" in page
    assert "<style>" in page  # inline CSS


def test_empty_and_large_runs_render():
    empty = html.render([])
    assert "No model variant was checked." in empty
    marks = parse(empty)
    assert set(marks.boxes) == {"latency", "budget", "size"} and not marks.counts
    page = html.render(many_entries(300))
    large = parse(page)
    # 15 size.max failures and 300 accuracy.min within 10% of their limit; 585 passes fold.
    assert large.count("budget", "circle", "budget-dot") == 15 + 300
    assert large.count("folded-budget", "circle", "budget-dot") == budget_plot.MAX_BUDGET_ROWS
    assert "585 more checks pass" in page and "185 more in the Checks table" in page
    assert large.count("size", "rect", "size-bar") == 300
    # The variants box shows ten rows and scrolls: the plots start at the same place.
    assert large.boxes["latency"][1] == html.HEADER_HEIGHT + html.variants_height(10) + 30


def test_a_few_slow_runs_do_not_squeeze_the_latency_axis():
    values = [1.0 + 0.001 * i for i in range(200)] + [30.0]  # one run slowed 30x by a neighbour
    slow = entry(delegates={"xnnpack": DelegateResult("ok", latency_ms=latency(1.0, n=10))})
    assert slow.measurement.delegates["xnnpack"].latency_ms is not None
    slow.measurement.delegates["xnnpack"].latency_ms.samples = values
    page = html.render([slow])
    assert "slower runs at the edge" in page
    x = [float(v) for v in re.findall(r'class="mark lat-head" cx="([\d.]+)"', page)]
    assert len(x) == len(values)
    # The bulk spreads over most of the axis; the slow run sits at its right end.
    assert max(x) == latency_plot.LAT_RIGHT and sorted(x)[-2] > latency_plot.LAT_LEFT + 0.8 * (
        latency_plot.LAT_RIGHT - latency_plot.LAT_LEFT)


def test_the_base_size_comes_from_a_regression_check_too():
    compared = entry(checks=[Check("regression.size", 24_000, 24_240, "pass", "bytes",
                                   baseline=23_000, delta=1_000)])
    page = html.render([compared])
    assert parse(page).count("size", "line", "size-base") == 1
    assert "base 22.5 KiB (+4.3%)" in page


# ---------------------------------------------------------------- per sample by batch size


def batched_entries() -> list[Entry]:
    """Two variants measured at batch sizes 1, 8 and 32: int8 under xnnpack (every size ran)
    and builtin (32 refused), float32 under xnnpack; a third variant without batches."""
    from pytest_tflite.results import BatchResult

    def batches(median_at_one: float, refused: tuple[int, ...] = ()) -> list[BatchResult]:
        found = []
        for size in (1, 8, 32):
            if size in refused:
                found.append(BatchResult(size, "unsupported", f"cannot run at batch {size}: no"))
                continue
            at = latency(median_at_one * size ** 0.6, n=20, seed=size)
            found.append(BatchResult(size, "ok", latency_ms=at,
                                     per_sample_ms=(at.median or 0) / size,
                                     input_shapes=[[size, 8]]))
        return found

    return [
        entry(delegates={
            "xnnpack": DelegateResult("ok", latency_ms=latency(0.5), batches=batches(0.5)),
            "builtin": DelegateResult("ok", latency_ms=latency(0.8),
                                      batches=batches(0.8, refused=(32,)))}),
        entry(variant="float32", delegates={
            "xnnpack": DelegateResult("ok", latency_ms=latency(1.5), batches=batches(1.5))}),
        entry(variant="float16", delegates={"xnnpack": DelegateResult("ok", latency_ms=latency(1.0))}),
    ]


def test_the_batch_plot_has_a_dot_per_batch_that_ran_and_a_line_per_delegate():
    page = html.render(batched_entries())
    marks = parse(page)
    assert marks.count("batch", "circle", "batch-point") == 3 + 2 + 3  # builtin's 32 refused
    plot = page[page.index('id="plot-batch"'):]
    plot = plot[:plot.index("</figure>")]
    assert plot.count("<polyline") == 3  # one line per (variant, delegate) with batches
    assert "(1 batch size failed)" in plot and "batch 32, " in plot
    assert ">32</text>" in plot and ">1</text>" in plot  # the x axis names the batch sizes
    assert not parse(html.render(known_entries()[0])).boxes.get("batch")  # none without batches


def test_times_carry_their_unit_and_checks_find_their_registry_row():
    assert [figure.format_time(v) for v in (0.000412, 0.48, 1.234, 250.0, 2400.0)] == [
        "0.412 µs", "480 µs", "1.23 ms", "250 ms", "2.4 s"]
    paths = {metric: key.path if (key := figure.registry_key(metric)) else None for metric in (
        "size.max", "latency.xnnpack.median", "accuracy.gpu.min", "fidelity.cross.min_cosine",
        "fidelity.xnnpack.min_cosine", "regression.latency.builtin", "sparsity.layers.conv.min",
        "memory.planned_arena", "memory.builtin.arena", "latency.xnnpack.per_sample.median",
        "no.such.key")}
    assert paths == {
        "size.max": "size.max", "latency.xnnpack.median": "latency.<delegate>.median",
        "accuracy.gpu.min": "accuracy.min", "fidelity.cross.min_cosine": "fidelity.cross.min_cosine",
        "fidelity.xnnpack.min_cosine": "fidelity.min_cosine",
        "regression.latency.builtin": "regression.latency",
        "sparsity.layers.conv.min": "sparsity.layers.<layer>.min",
        "memory.planned_arena": "memory.planned_arena",
        "memory.builtin.arena": "memory.<delegate>.arena",
        "latency.xnnpack.per_sample.median": "latency.<delegate>.per_sample.median",
        "no.such.key": None}


def test_checks_table_has_one_row_per_variant_and_figure_with_where_to_change() -> None:
    """The Dense 64 -> 96 case: int8's size.max and regression.size are one "file size" row
    (63,250 B, 61.8 KiB, against 45,670 B, 44.6 KiB), naming both limits and the budget file."""
    from tests.unit.reports.dense_growth import BUDGET, dense_growth_entries

    page = html.render(dense_growth_entries())
    section = page[page.index("<h2>Checks"):page.index("</details>", page.index("<h2>Checks"))]
    failed = section[:section.index("<details>")]
    rows = re.findall(r'<tr class="verdict-fail">(.*?)</tr>', failed)
    cells = [re.findall(r"<td[^>]*>(.*?)</td>", r) for r in rows]
    keys = [(c[1], c[2]) for c in cells]
    assert len(keys) == len(set(keys)), keys  # at most one failed row per variant and figure
    size = next(c for c in cells if c[1] == "int8" and c[2] == "file size")
    assert size[3] == "44.6 → 61.8 KiB (+17.2 KiB, +38.5%)"
    assert "size.max 48.0 KiB" in size[4] and "regression.size" in size[4]
    assert size[6].startswith(f"{BUDGET} [variants.int8] size.max")
    assert "--tflite-update-budgets --tflite-loosen" in size[6]
