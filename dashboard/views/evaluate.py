"""Evaluate: how far to trust an explanation (faithfulness, localisation, randomisation sanity
check, each next to a random and a centred-Gaussian baseline), and a bias finder."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import streamlit as st

from dashboard import results, scores, sources, state
from dashboard.widgets import page, show_error
from explain import METHOD_INFO, ExplainError
from explain.evaluation import METRICS, evaluate, find_bias, shapes_bias_study
from explain.render import overlay

QUICK_METRICS = [
    "deletion",
    "insertion",
    "average_drop",
    "increase_in_confidence",
    "pointing_game",
    "energy_pointing_game",
]

ctx = page(
    "Evaluate explanations",
    "A map is only worth showing if it is faithful to the model, lands on the object, "
    "and changes when the model changes. Every score sits next to what a random map "
    "and a plain centred blob would get.",
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
    for spec, title in scores.BIAS_MODELS.items():
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


def _curve_figure(result, metric: str) -> go.Figure:
    frame = result.mean_curves(metric)
    fig = go.Figure()
    for (method, layer), part in frame.groupby(["method", "layer"], sort=False):
        name = scores.who(method, layer)
        x = part["x"]
        if metric.startswith("sanity_") and result.stages:
            x = [
                result.stages[int(i) - 1] if 0 < int(i) <= len(result.stages) else i
                for i in part["x"]
            ]
        fig.add_trace(
            go.Scatter(
                x=x,
                y=part["mean"],
                mode="lines+markers",
                name=name,
                line=dict(dash="dot" if layer == "" else "solid"),
            )
        )
    info = METRICS[metric]
    fig.update_layout(
        height=340,
        margin=dict(l=10, r=10, t=40, b=10),
        title=f"{info.title} ({scores.ARROW[info.direction]} is better)",
        legend=dict(orientation="h", y=-0.3),
        yaxis_title="score"
        if not metric.startswith("sanity_")
        else "similarity to the original map",
        xaxis_title="fraction of pixels"
        if not metric.startswith("sanity_")
        else "randomised from the head down to",
    )
    return fig


with leaderboard_tab:
    with st.form("evaluate_form"):
        cols = st.columns(3)
        with cols[0]:
            source = st.radio(
                "Dataset", ("Built-in shapes (with object masks)", "Folder"), key="eval_source"
            )
            folder = st.text_input("Folder (one sub-folder per class)", key="eval_folder")
            n_images = st.slider("Images", 8, 200, 24, 4, key="eval_n")
        with cols[1]:
            methods = st.multiselect(
                "Methods",
                list(METHOD_INFO),
                default=["gradcam", "gradcampp", "eigencam"],
                format_func=lambda m: METHOD_INFO[m].title,
                key="eval_methods",
            )
            layers = st.multiselect(
                "Layers",
                [i.name for i in handle.map_layers],
                default=[handle.default_layer],
                key=f"eval_layers@{state.token('model')}",  # each model offers its own
            )
        with cols[2]:
            metrics = st.multiselect(
                "Metrics",
                list(METRICS),
                default=QUICK_METRICS,
                format_func=lambda m: f"{METRICS[m].title} {scores.ARROW[METRICS[m].direction]}",
                key="eval_metrics",
                help="The randomisation check re-randomises copies of the model: slower.",
            )
            steps = st.slider("Steps per deletion / insertion curve", 5, 50, 10, key="eval_steps")
        submitted = st.form_submit_button("Run", type="primary")

    if submitted:
        if not methods or not layers or not metrics:
            st.warning("Choose at least one method, layer and metric.")
        else:
            bar = st.progress(0.0, text="Starting…")
            try:
                data = (
                    "builtin:shapes"
                    if source.startswith("Built-in")
                    else (sources.allowed_path(folder.strip()) if folder.strip() else None)
                )
                if data is None:
                    raise ExplainError("Type the path of a folder first.")
                result = evaluate(
                    handle,
                    data,
                    methods,
                    layers,
                    metrics,
                    max_images=n_images,
                    steps=steps,
                    progress=lambda d, t, m: bar.progress(min(1.0, d / max(t, 1)), text=m),
                )
                st.session_state["eval_result"] = (model_key, result)
            except ExplainError as exc:
                show_error(exc)
            finally:
                bar.empty()

    stored = st.session_state.get("eval_result")
    if stored is None:
        st.info(
            "Choose methods, layers and metrics, then press **Run**. On the built-in "
            "shapes the object masks are known, so localisation can be scored too."
        )
    else:
        key, result = stored
        if key != model_key:
            st.warning("These results were computed with another model; press Run to update.")
        for note in result.notes:
            st.caption(note)
        st.subheader("Leaderboard")
        st.caption(
            "Means over images. ↑: higher is better; ↓: lower is better. The best value of "
            "each column is highlighted in green. Hover a column name for what it measures."
        )
        board = scores.scaled(result.summary, "mean")
        st.dataframe(
            scores.styled(board),
            width="stretch",
            key="eval_leaderboard",
            column_config={
                m: st.column_config.NumberColumn(scores.column(m), help=METRICS[m].description)
                for m in board.columns
            },
        )
        st.download_button(
            "Download all scores (CSV)",
            lambda: result.table.to_csv(index=False),  # made when clicked
            file_name="evaluation.csv",
            mime="text/csv",
            key="eval_csv",
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
                    _curve_figure(result, metric), width="stretch", key=f"eval_curve_{metric}"
                )
        st.subheader("One image at a time")
        images = result.table[["image", "name"]].drop_duplicates()
        pick = st.selectbox(
            "Image",
            images["image"].tolist(),
            format_func=lambda i: str(images.set_index("image").loc[i, "name"]),
            key="eval_image",
        )
        per_image = scores.scaled(result.table[result.table["image"] == pick], "value")
        st.dataframe(
            scores.styled(per_image),
            width="stretch",
            column_config={
                m: st.column_config.NumberColumn(scores.column(m), help=METRICS[m].description)
                for m in per_image.columns
            },
        )

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
            scores.bias_table(study.table),
            hide_index=True,
            width="stretch",
            column_config={
                name: st.column_config.NumberColumn(format=fmt, help=tip)
                for name, (fmt, tip) in scores.BIAS_FORMATS.items()
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
            shown = overlay(view, heat, 0.5)
            right, bottom = max(int(x0), int(x1) - 1), max(int(y0), int(y1) - 1)
            shown[int(y0) : bottom + 1, [int(x0), right]] = (255, 255, 255)  # the box's outline
            shown[[int(y0), bottom], int(x0) : right + 1] = (255, 255, 255)
            col.image(shown, caption=picture.name, width="stretch")
