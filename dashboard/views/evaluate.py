"""Evaluate: how far to trust an explanation (faithfulness, localisation on real ground truth,
randomisation sanity check), each score next to a random map and a centred blob with a paired
test over images, the ground truth drawn over the maps; and a bias finder. Tables and figures
come from :mod:`explain.evaluation.figures`: this page only wires widgets to them."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import streamlit as st

from dashboard import evaluation_data, results, sources, state
from dashboard.method_choice import offered
from dashboard.widgets import page, show_error
from explain import METHOD_INFO, ExplainError
from explain.evaluation import METRICS, evaluate, find_bias, markdown_report, shapes_bias_study
from explain.evaluation.figures import (
    BIAS_COLUMNS,
    BIAS_MODELS,
    VERDICT_STYLES,
    bias_table,
    curves_figure,
    draw_boxes,
    leaderboard_table,
    method_title,
    styled_leaderboard,
    verdict_table,
)
from explain.render import overlay

#: Metrics chosen at first: localisation on the ground truth, and the two confidence measures
#: (one pass each); the curves (deletion, insertion, ROAD) and the randomisation check cost many
#: passes per image and are a click away.
FIRST_METRICS = [
    "pointing_game",
    "energy_pointing_game",
    "box_accuracy",
    "localisation_error",
    "average_drop",
    "increase_in_confidence",
]
DATASETS = {
    "shapes": "Built-in shapes (object masks)",
    "folder": "Images folder + ground truth",
    "zip": "Zip upload + ground truth",
}
SUBSETS = {"all": "All images", "small objects": "Objects smaller than half the image"}
#: The result's tables by category, the ground truth first.
CATEGORY_TITLES = {
    "localisation": "Does the map land on the object?",
    "faithfulness": "Does the map show what the model uses?",
    "randomisation": "Does the map change when the model does?",
}
BOX_COLOUR = (255, 255, 255)
SHOWN_METHODS = 4
PICTURE_WIDTH = 210

ctx = page(
    "Evaluate explanations",
    "A map is only worth showing if it is faithful to the model, lands on the object, "
    "and changes when the model changes. Every score sits next to what a random map "
    "and a plain centred blob get, with a paired test over the images.",
)
handle, pictures, model_key = ctx.handle, ctx.pictures, ctx.model_key

leaderboard_tab, bias_tab = st.tabs(["Leaderboard", "Bias finder"])
BIAS_EXAMPLES = (1, 3)  # a square and a star of the held-out split


def _bias_pictures() -> None:
    """The demonstration in pictures: the same shapes with and without the marker, as each
    model explains them (Grad-CAM at its default layer)."""
    from explain.builtin.shapes import CLASSES, make_sample

    st.markdown("**The same images with and without the marker, as each model sees them**")
    samples = [
        (make_sample(i, 1000, marker=marker), marker)
        for i in BIAS_EXAMPLES
        for marker in ("class", "none")
    ]
    for spec, title in BIAS_MODELS.items():
        model = sources.get_model(sources.ModelChoice(spec))
        key = sources.ModelChoice(spec).key
        cols = st.columns([0.9] + [1] * len(samples), vertical_alignment="center")
        cols[0].markdown(f"**{title}**  \n`{spec}`")
        for col, (sample, marker) in zip(cols[1:], samples, strict=True):
            picture = sources.Picture.of("bias", sample.image)
            probs = results.predict(key, model, picture)
            result = results.cams(key, model, picture, "gradcam", (model.default_layer,))
            top = int(probs.argmax())
            verdict = "✓" if top == sample.label else "✗"
            col.image(
                overlay(picture.pixels, result.maps[model.default_layer][0], 0.5),
                width="stretch",
                caption=f"{'with' if marker == 'class' else 'no'} marker · a "
                f"{CLASSES[sample.label]} · answer: {model.labels[top]} {probs[top]:.0%} {verdict}",
            )
    st.caption(
        "Red = where the map says the model looked. The biased model looks at the corner "
        "marker and loses its answer when the marker is gone; the clean model looks at the shape."
    )


def _upload(widget) -> evaluation_data.Upload | None:
    return None if widget is None else evaluation_data.Upload(widget.name, widget.getvalue())


def _form() -> None:
    """The dataset, methods, layers and metrics; runs the evaluation when submitted."""
    kind = st.segmented_control(
        "Dataset",
        list(DATASETS),
        default="shapes",
        format_func=DATASETS.get,
        key="eval_source",
        help="Ground truth: a boxes CSV (file, label, x0, y0, x1, y1), a COCO JSON, a folder "
        "of Pascal VOC .xml files or a folder of PNG masks.",
    )
    kind = kind or "shapes"
    with st.form("evaluate_form"):
        data_col, size_col = st.columns([2, 1], gap="medium")
        with data_col:
            folder = truth = ""
            images = truth_file = None
            if kind == "folder":
                roots = ", ".join(str(r) for r in sources.data_roots())
                folder = st.text_input(
                    "Images folder",
                    key="eval_folder",
                    placeholder="data/imagenet-val/images",
                    help=f"A folder under: {roots} (set GCE_DATA_ROOTS to change the list).",
                )
                truth = st.text_input(
                    "Ground truth (boxes CSV, COCO JSON, VOC or mask folder)",
                    key="eval_truth",
                    placeholder="found next to the images when empty",
                )
            elif kind == "zip":
                images = st.file_uploader("Zip of images", type=["zip"], key="eval_zip")
                truth_file = st.file_uploader(
                    "Ground truth: CSV, COCO JSON, or a zip of VOC .xml / PNG masks",
                    type=["csv", "json", "zip"],
                    key="eval_truth_file",
                )
            else:
                st.markdown(
                    "Shapes drawn by the project, the held-out split the built-in models never "
                    "saw in training; each comes with its object mask."
                )
        with size_col:
            n_images = st.slider("Images", 4, 300, 24, 2, key="eval_n")
            steps = st.slider("Steps per deletion / insertion curve", 5, 50, 10, key="eval_steps")
        method_col, layer_col = st.columns([2, 1], gap="medium")
        names = offered(handle)
        methods = method_col.multiselect(
            "Methods",
            names,
            default=[m for m in ("gradcam", "gradcampp", "eigencam") if m in names],
            format_func=lambda m: METHOD_INFO[m].title,
            key="eval_methods",
        )
        layers = layer_col.multiselect(
            "Layers",
            [i.name for i in handle.map_layers],
            default=[handle.default_layer],
            key=f"eval_layers@{state.token('model')}",  # each model offers its own
        )
        metrics = st.multiselect(
            "Metrics",
            list(METRICS),
            default=FIRST_METRICS,
            format_func=lambda m: f"{METRICS[m].title} {METRICS[m].arrow}",
            key="eval_metrics",
            help="Deletion, insertion and ROAD run the model many times per image; the "
            "randomisation check re-randomises copies of the model: both are slower.",
        )
        submitted = st.form_submit_button("Run", type="primary")
    if not submitted:
        return
    if not methods or not layers or not metrics:
        st.warning("Choose at least one method, layer and metric.")
        return
    bar = st.progress(0.0, text="Reading the images and their ground truth…")
    try:
        dataset, described = evaluation_data.open_dataset(
            kind,
            folder=folder,
            truth=truth,
            images=_upload(images),
            truth_file=_upload(truth_file),
            count=n_images,
        )
        result = evaluate(
            handle,
            dataset,
            methods,
            layers,
            metrics,
            max_images=n_images,
            steps=steps,
            progress=lambda d, t, m: bar.progress(min(1.0, d / max(t, 1)), text=m),
        )
        st.session_state["eval_result"] = (model_key, result, dataset, described)
    except ExplainError as exc:
        show_error(exc)
    finally:
        bar.empty()


def _subset(result) -> str:
    sizes = result.params.get("subsets", {})
    if len(result.subsets) < 2:
        return "all"
    chosen = st.segmented_control(
        "Images scored",
        result.subsets,
        default="all",
        format_func=lambda s: f"{SUBSETS.get(s, s)} ({sizes.get(s, '?')})",
        key="eval_subset",
        help="Boxes are large on ImageNet (about half the image), so a centred blob already "
        "scores high: the small objects are where a map has to find the object.",
    )
    return chosen or "all"


def _one_value(metric: str, value: float) -> str:
    """A metric's value on one image: a share of images is a yes or no there (✓ when it is
    the good answer), anything else its number."""
    info = METRICS[metric]
    if info.display_unit != "% of images" or not np.isfinite(value):
        return f"{info.title} {info.format(value)}"
    good = value > 0 if info.higher_is_better else value == 0
    return f"{info.title} {'✓' if good else '✗'}"


def _verdicts(result, subset: str, metrics: list[str], intervals: bool):
    """The paired tests of ``metrics``: per method and metric its mean, then against each
    baseline (the centre first: the one to beat on ImageNet) one cell with the baseline's mean,
    the verdict and its p-value (and the difference with its interval when asked), so that the
    table fits a narrow page."""
    table = verdict_table(result, subset)
    table = table[table["metric"].isin([METRICS[m].column_title for m in metrics])]
    shown = table[["method", "metric", "mean"]].set_axis(["Method", "Metric", "Mean"], axis=1)
    for baseline, short in (("centre (Gaussian)", "centre"), ("random", "random")):
        if baseline not in table:
            continue
        cells = []
        for row in table.to_dict("records"):
            extra = f"; {row[f'diff vs {baseline} [CI]']}" if intervals else ""
            cells.append(
                f"{row[f'vs {baseline}']} (baseline {row[baseline]}, "
                f"p = {row[f'p vs {baseline}']}{extra})"
            )
        shown[f"vs {short}"] = cells
    # Method and metric as the index (unique together): a static table always shows one.
    styler = shown.set_index(["Method", "Metric"]).style
    return styler.map(_verdict_style, subset=[c for c in shown.columns if c.startswith("vs ")])


def _verdict_style(cell: str) -> str:
    """A verdict cell's colour (better green, worse red), as in ``styled_verdicts``."""
    return next((css for v, css in VERDICT_STYLES.items() if cell.startswith(v + " (")), "")


def _one_image(result, dataset) -> None:
    """One evaluated image: the ground truth drawn over each method's map, with its scores."""
    st.subheader("One image at a time")
    images = result.images
    if images.empty:
        return
    names = images.set_index("image")["name"]
    pick = st.selectbox(
        "Image", names.index.tolist(), format_func=lambda i: str(names[i]), key="eval_image"
    )
    row = images.set_index("image").loc[pick]
    target = int(row["target"])
    scored = result.table[result.table["image"] == pick]
    try:
        picture, boxes = evaluation_data.truth_of(handle, dataset, str(row["name"]))
        view = results.model_view(model_key, handle, picture)
    except ExplainError as exc:
        show_error(exc)
        return
    label = handle.labels[target] if 0 <= target < handle.num_classes else "?"
    shown = [m for m in result.params.get("methods", []) if m in METHOD_INFO][:SHOWN_METHODS]
    layer = result.params.get("layers", [handle.default_layer])[0]
    # Pictures of a fixed width in a row that wraps: side by side when wide, stacked when not.
    row_of = st.container(horizontal=True, gap="medium", key="eval_one_image")
    cols = [row_of.container(width=PICTURE_WIDTH) for _ in range(1 + len(shown))]
    cols[0].image(
        draw_boxes(view, boxes, BOX_COLOUR, width=2),
        width="stretch",
        caption=f"Ground truth: {len(boxes)} box(es) · explained: {label}",
    )
    for col, method in zip(cols[1:], shown, strict=True):
        try:
            heat = results.cams(model_key, handle, picture, method, (layer,), target).maps[layer]
        except ExplainError as exc:
            col.warning(f"{METHOD_INFO[method].title}: {str(exc).splitlines()[0]}")
            continue
        mine = scored[(scored["method"] == method) & (scored["layer"] == layer)]
        facts = [
            _one_value(m, v)
            for m, v in zip(mine["metric"], mine["value"], strict=True)
            if METRICS[m].category == "localisation"
        ]
        col.image(
            draw_boxes(overlay(view, heat[0], 0.5), boxes, BOX_COLOUR, width=2),
            width="stretch",
            caption=" · ".join([method_title(method, layer), *facts]),
        )
    per_image = leaderboard_table(scored, value="value")
    for category, columns in _by_category(per_image):
        st.caption(CATEGORY_TITLES[category])
        st.table(styled_leaderboard(per_image[columns], mark_best=False, titles=True))


def _by_category(board) -> list[tuple[str, list[str]]]:
    """The metric columns of a leaderboard, one group per category (the ground truth first):
    a few columns each, so that a table fits a narrow page."""
    found = []
    for category in CATEGORY_TITLES:
        columns = [m for m in board.columns if METRICS[m].category == category]
        if columns:
            found.append((category, columns))
    return found


with leaderboard_tab:
    _form()
    stored = st.session_state.get("eval_result")
    if stored is None:
        st.info(
            "Choose a dataset, methods, layers and metrics, then press **Run**. The built-in "
            "shapes come with their object masks; your own photos need ground truth (boxes "
            "or masks) for the localisation scores."
        )
    else:
        key, result, dataset, described = stored
        if key != model_key:
            st.warning("These results were computed with another model; press Run to update.")
        st.caption(f"{result.params.get('images', '?')} images: {described}")
        for note in result.notes:
            st.caption(note)
        subset = _subset(result)
        st.caption(
            "Means over images; ↑: higher is better, ↓: lower is better; the best value of "
            "each column is starred on green. "
            f"Below each table, every method against the random map and the centred blob, "
            f"image by image: {result.params.get('test', 'paired')} test, p-value "
            "Holm-adjusted; “better” only where the difference is significant."
        )
        intervals = st.toggle(
            "Show each difference with its "
            f"{round(100 * result.params.get('confidence', 0.95))}% interval",
            key="eval_intervals",
        )
        board = leaderboard_table(result, subset)
        for category, columns in _by_category(board):
            st.subheader(CATEGORY_TITLES[category])
            # Static tables: their headers wrap, so no column is cut off at any width.
            st.table(styled_leaderboard(board[columns], titles=True))
            st.caption("Against the baselines, image by image:")
            st.table(_verdicts(result, subset, columns, intervals))
        with st.expander("What the numbers mean"):
            for m in board.columns:
                st.markdown(f"**{METRICS[m].column_title}**: {METRICS[m].description}")
        row = st.container(horizontal=True, gap="small")
        row.download_button(
            "All scores (CSV)",
            lambda: result.table.to_csv(index=False),  # made when clicked
            file_name="evaluation.csv",
            mime="text/csv",
            key="eval_csv",
            on_click="ignore",
        )
        row.download_button(
            "Report (Markdown)",
            lambda: markdown_report(result),
            file_name="evaluation.md",
            mime="text/markdown",
            key="eval_report",
            on_click="ignore",
        )
        curves = [
            m
            for m in ("deletion", "insertion", "sanity_spearman")
            if any(k[2] == m for k in result.curves)
        ]
        if curves:
            cols = st.columns(len(curves))
            for col, metric in zip(cols, curves, strict=True):
                col.plotly_chart(
                    curves_figure(result, metric), width="stretch", key=f"eval_curve_{metric}"
                )
        if key == model_key:  # its classes and maps belong to the model that made them
            _one_image(result, dataset)

with bias_tab:
    st.markdown(
        "**Does a model rely on something it should not?** The share of the map that "
        "falls on a region, compared with the share that falls on the object."
    )
    if st.button("Run the built-in demonstration (shapes vs shapes-biased)", key="bias_demo"):
        with st.spinner("Explaining 240 test images with both models…"):
            st.session_state["bias_study"] = shapes_bias_study(n=60)
    study = st.session_state.get("bias_study")
    if study is not None:
        for model, verdict in study.verdicts.items():
            st.markdown(f"- **{model}**: {verdict}")
        _bias_pictures()
        st.dataframe(
            bias_table(study),
            hide_index=True,
            width="stretch",
            column_config={
                name: st.column_config.NumberColumn(format=fmt, help=tip)
                for name, (fmt, tip) in BIAS_COLUMNS.items()
            },
        )

    st.divider()
    st.markdown(
        "**Check a region of your own** (a watermark, a ruler, a caption…) on the "
        "images in the sidebar, with the current model. Coordinates are in the "
        f"model's input ({handle.input_size[1]} × {handle.input_size[0]} pixels)."
    )
    h, w = handle.input_size
    scope = f"{state.token('model')}.{state.token('images')}"  # the box and report belong here
    first_view = results.model_view(model_key, handle, pictures[0])
    drawing = go.Figure(go.Image(z=first_view))
    drawing.update_layout(
        dragmode="select",
        height=320,
        margin=dict(l=0, r=0, t=30, b=0),
        title="Drag a box on the image, or type it below",
    )
    drawn = st.plotly_chart(
        drawing, key="bias_draw", on_select="rerun", selection_mode="box", width="content"
    )
    boxes = (drawn.selection.get("box") if drawn and drawn.selection else None) or []
    if boxes and boxes[-1].get("x") and boxes[-1].get("y"):
        xs, ys = sorted(boxes[-1]["x"]), sorted(boxes[-1]["y"])
        box = (
            int(np.clip(round(xs[0]), 0, w - 1)),
            int(np.clip(round(ys[0]), 0, h - 1)),
            int(np.clip(round(xs[1]), 1, w)),
            int(np.clip(round(ys[1]), 1, h)),
        )
        if st.session_state.get("bias_drawn") != box:  # a new drawing fills the fields once
            st.session_state["bias_drawn"] = box
            for name, value in zip(("x0", "y0", "x1", "y1"), box, strict=True):
                st.session_state[f"bias_{name}@{scope}"] = value
    cols = st.columns(4)
    # The fields start on the bottom-right corner; a drawn box sets them through their keys.
    start = {"x0": int(w * 0.75), "y0": int(h * 0.75), "x1": w, "y1": h}
    for name, value in start.items():
        st.session_state.setdefault(f"bias_{name}@{scope}", value)
    x0 = cols[0].number_input("left (px)", 0, w - 1, key=f"bias_x0@{scope}")
    y0 = cols[1].number_input("top (px)", 0, h - 1, key=f"bias_y0@{scope}")
    x1 = cols[2].number_input("right (px)", 1, w, key=f"bias_x1@{scope}")
    y1 = cols[3].number_input("bottom (px)", 1, h, key=f"bias_y1@{scope}")
    if st.button("Measure", key="bias_measure"):
        if x1 <= x0 or y1 <= y0:
            st.warning("The box needs right > left and bottom > top.")
        else:
            try:
                views = [results.model_view(model_key, handle, p) for p in pictures]
                report = find_bias(
                    handle,
                    np.stack(views),
                    (int(x0), int(y0), int(x1), int(y1)),
                    region_name="the box",
                )
                st.session_state["bias_report"] = (scope, report, views)
            except ExplainError as exc:
                show_error(exc)
    stored_report = st.session_state.get("bias_report")
    if stored_report is not None and stored_report[0] != scope:  # made for other images/model
        stored_report = None
    if stored_report is not None:
        _, report, views = stored_report
        st.success(report.verdict)
        st.caption(report.details)
        cols = st.columns(min(6, len(views)))
        for col, picture, view in zip(cols, pictures, views, strict=False):
            heat = results.cams(model_key, handle, picture, report.method, (report.layer,)).maps[
                report.layer
            ][0]
            shown = draw_boxes(overlay(view, heat, 0.5), [(x0, y0, x1, y1)], BOX_COLOUR)
            col.image(shown, caption=picture.name, width="stretch")
