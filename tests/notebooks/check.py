#!/usr/bin/env python3
"""Checks notebooks executed headlessly, with advx's own kernel or evcxr's.

    check.py --advx BIN --work DIR [--figures DIR] [--committed DIR] [--update DIR] EXECUTED.ipynb...
    check.py --self-test

For each executed notebook:

- every code cell ran without an error output, a stderr stream or a
  failed advx cell, except that cells tagged `advx-error` must show an
  advx error, as a caret diagnostic (in an advx-kernel notebook they are
  also tagged `raises-exception`, so that nbclient runs on past them);
- every rich output comes from advx (it carries the data block
  application/vnd.advx+json: no `:timing` or stray Debug output), but
  the advx kernel's progress displays (metadata advx.progress);
- the advx code (each cell of an advx-kernel notebook; the DSL an evcxr
  notebook's cells pass to `s.cell(...)`, `run` or `execute`) is run again
  by `advx run` as a script, one `# %%` cell per cell or call, and the two agree
  output by output: the same titles and figure stems, the same numbers in
  the data (results.yaml), the same text, the HTML table wherever advx's
  output has one, and a decodable image wherever advx's output is a
  figure;
- the notebook has at least one figure and one table.

With --committed, outputs of the committed notebook of the same name are
compared with the fresh ones; differences are reported as warnings (numbers
may move in the last digits between CPUs). With --update, notebooks that
pass are written into that folder, less nbclient's per-cell timestamps.

Exit status: 0 when every notebook passes, 1 otherwise.
"""

import argparse
import base64
import json
import math
import re
import struct
import subprocess
import sys
from pathlib import Path

DATA_MIME = "application/vnd.advx+json"
ERROR_TAG = "advx-error"
# The `ename` of the advx kernel's errors (src/session/mod.rs, CellError::kind).
ADVX_ERRORS = {"SyntaxError", "NameError", "RuntimeError", "Interrupted"}
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Numbers in results may differ from the notebook's only by float noise.
REL_TOL = 1e-6
ABS_TOL = 1e-9
# Timings differ from run to run: data keys and table columns left out.
TIMING_KEYS = {"seconds"}
TIMING_COLUMN = re.compile(r"(/s|seconds|time)$")


# ---------------------------------------------------------------- DSL text


def rust_strings(source):
    """The string literals passed to `.cell(`, `.run(` or `.execute(` calls, in order."""
    found = []
    for m in re.finditer(r"\.\s*(?:cell|run|execute)\s*\(\s*", source):
        literal = string_literal(source, m.end())
        if literal is None:
            raise ValueError(f"cannot read the string after {source[m.start():m.end() + 20]!r}")
        found.append(literal)
    return found


def string_literal(source, at):
    """The value of the Rust string literal starting at `at`, or None."""
    raw = re.match(r'r(#*)"', source[at:])
    if raw:
        hashes = raw.group(1)
        start = at + raw.end()
        end = source.find('"' + hashes, start)
        return None if end < 0 else source[start:end]
    if not source.startswith('"', at):
        return None
    out, i = [], at + 1
    escapes = {"n": "\n", "t": "\t", "r": "\r", "0": "\0", "\\": "\\", '"': '"', "'": "'"}
    while i < len(source):
        c = source[i]
        if c == '"':
            return "".join(out)
        if c == "\\":
            nxt = source[i + 1]
            if nxt in escapes:
                out.append(escapes[nxt])
                i += 2
            elif nxt == "\n":  # line continuation: skip the newline and indentation
                i += 2
                while i < len(source) and source[i] in " \t\n":
                    i += 1
            elif nxt == "u":
                close = source.index("}", i)
                out.append(chr(int(source[i + 3:close], 16)))
                i = close + 1
            else:
                raise ValueError(f"unsupported escape \\{nxt}")
            continue
        out.append(c)
        i += 1
    return None


def script_of(cells, kernel):
    """The .advx script: one `# %%` cell per advx cell, or per DSL string of an evcxr notebook."""
    parts = []
    kept = [text(cell["source"]) for cell in cells if ERROR_TAG not in tags(cell)]
    codes = kept if kernel == "advx" else [dsl for source in kept for dsl in rust_strings(source)]
    for k, dsl in enumerate(codes):
        parts.append(f"# %% call {k + 1}\n{dsl.strip()}\n")
    return "\n".join(parts)


# ----------------------------------------------------------- notebook side


def text(value):
    return "".join(value) if isinstance(value, list) else (value or "")


def tags(cell):
    return cell.get("metadata", {}).get("tags", [])


def decode_image(mime, payload, base64_svg=False):
    """The image's bytes and (width, height), (0, 0) for SVG; raises when it
    is not one. PNGs are base64, SVGs text (base64 in `data:` URIs)."""
    if mime == "image/png":
        data = base64.b64decode(payload, validate=False)
        if not data.startswith(PNG_SIGNATURE) or data[12:16] != b"IHDR":
            raise ValueError("not a PNG")
        width, height = struct.unpack(">II", data[16:24])
        if width == 0 or height == 0:
            raise ValueError("an empty PNG")
        return data, (width, height)
    if mime == "image/svg+xml":
        svg = base64.b64decode(payload).decode() if base64_svg else payload
        if "<svg" not in svg:
            raise ValueError("not an SVG")
        return svg.encode(), (0, 0)
    raise ValueError(f"unexpected image type {mime}")


DATA_URI = re.compile(r'<img src="data:(image/(?:png|svg\+xml));base64,([A-Za-z0-9+/=]+)"')


def cell_outputs(cell):
    """Problems of one executed cell, and its advx outputs as dicts with
    title, figure, data, text, html and image (mime, bytes) where shown."""
    problems, shown, errors = [], [], []
    expect_error = ERROR_TAG in tags(cell)
    stderr = "".join(text(o.get("text")) for o in cell.get("outputs", []) if o.get("output_type") == "stream" and o.get("name") == "stderr")
    for o in cell.get("outputs", []):
        kind = o.get("output_type")
        if kind == "error":
            trace = strip_ansi("\n".join(o.get("traceback", [])))
            if expect_error and o.get("ename") in ADVX_ERRORS:
                errors.append(trace)
            else:
                problems.append(f"error output: {o.get('evalue', '')}\n{trace}")
        elif kind in ("execute_result", "display_data"):
            if o.get("metadata", {}).get("advx", {}).get("progress"):
                continue
            data = o.get("data", {})
            block = data.get(DATA_MIME)
            if block is None:
                problems.append(f"an output that advx did not make ({', '.join(sorted(data))}): {text(data.get('text/plain'))[:200]!r}")
                continue
            if isinstance(block, str):
                block = json.loads(block)
            problems += bundle_problems(data, block["outputs"], shown)
            if "error" in block:
                errors.append(block["error"])
                if block["error"] not in text(data.get("text/plain")):
                    problems.append("the error is not in the text the cell shows")
    if expect_error:
        if not errors:
            problems.append("tagged advx-error, but advx reported no error")
        elif not all(looks_like_diagnostic(e) for e in errors):
            problems.append(f"tagged advx-error, but the error is not a caret diagnostic:\n{errors[0]}")
    else:
        problems += [f"the advx cell failed:\n{e}" for e in errors]
    if stderr:
        problems.append(f"stderr:\n{strip_ansi(stderr)}")
    return problems, shown


def looks_like_diagnostic(error):
    """miette's report: where (`[cell N:line:col]`), the numbered source
    line, and a marker under the culprit."""
    return (re.search(r"\[cell \d+:\d+:\d+\]", error) is not None and re.search(r"^ *\d+ │ ", error, re.M) is not None
            and re.search(r"[\^┬]", error) is not None)


def bundle_problems(data, outputs, shown):
    problems = []
    plain, html = text(data.get("text/plain")), text(data.get("text/html"))
    if len(outputs) == 1:
        o = dict(outputs[0], text=plain, html=html or None, image=None)
        if o.get("figure"):
            try:
                o["image"] = ("image/png",) + decode_image("image/png", text(data.get("image/png")))
            except (ValueError, TypeError) as e:
                problems.append(f"figure {o['figure']}: no PNG ({e})")
            if "image/svg+xml" in data:
                try:
                    decode_image("image/svg+xml", text(data["image/svg+xml"]))
                except ValueError as e:
                    problems.append(f"figure {o['figure']}: bad SVG ({e})")
        shown.append(o)
        return problems
    # src/session/jupyter.rs writes `<div class="advx-output">BODY</div>` per output, one a line.
    parts = [p.rsplit("</div>", 1)[0] for p in html.split('<div class="advx-output">')[1:]]
    if parts:
        parts[-1] = parts[-1].rsplit("</div>", 1)[0]
    if len(parts) != len(outputs):
        return [f"{len(outputs)} outputs, but {len(parts)} parts in the HTML"]
    for o, part in zip(outputs, parts):
        o = dict(o, text=plain, html=part, image=None)
        if o.get("figure"):
            m = DATA_URI.search(part)
            if not m:
                problems.append(f"figure {o['figure']}: no inline image")
            else:
                try:
                    o["image"] = (m.group(1),) + decode_image(m.group(1), m.group(2), base64_svg=True)
                except ValueError as e:
                    problems.append(f"figure {o['figure']}: {e}")
        shown.append(o)
    return problems


def strip_ansi(s):
    return re.sub(r"\x1b\[[0-9;]*m", "", s)


# ------------------------------------------------------------ comparison


def recorded_float(value):
    """The number a recorded `{"$float": "nan" | "inf" | "-inf"}` stands for
    (JSON has no NaN or infinity; results.yaml writes YAML floats), else the
    value itself."""
    if isinstance(value, dict) and len(value) == 1 and value.get("$float") in ("nan", "inf", "-inf"):
        return float(value["$float"])
    return value


def numbers_differ(a, b, path="data"):
    """Where two JSON values differ beyond float noise, or None. A notebook's
    `{"$float": "nan"}` and results.yaml's `.nan` are the same number."""
    a, b = recorded_float(a), recorded_float(b)
    if isinstance(a, bool) or isinstance(b, bool):
        return None if a == b else f"{path}: {a!r} != {b!r}"
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        if math.isnan(a) and math.isnan(b):
            return None
        return None if math.isclose(a, b, rel_tol=REL_TOL, abs_tol=ABS_TOL) else f"{path}: {a!r} != {b!r}"
    if isinstance(a, dict) and isinstance(b, dict):
        if a.keys() != b.keys():
            return f"{path}: keys {sorted(a)} != {sorted(b)}"
        for k in a.keys() - TIMING_KEYS:
            d = numbers_differ(a[k], b[k], f"{path}.{k}")
            if d:
                return d
        return None
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return f"{path}: {len(a)} items != {len(b)}"
        for i, (x, y) in enumerate(zip(a, b)):
            d = numbers_differ(x, y, f"{path}[{i}]")
            if d:
                return d
        return None
    if isinstance(a, str) and isinstance(b, str) and nan_text(a) and nan_text(b):
        return None
    return None if a == b else f"{path}: {a!r} != {b!r}"


def nan_text(s):
    return s.lower() in (".nan", "nan")


def compare(shown, expected):
    """Problems between the notebook's outputs and `advx run`'s. Each
    expected output has title, data, figure (stem or None), text, html."""
    problems = []
    if len(shown) != len(expected):
        problems.append(f"the notebook shows {len(shown)} outputs, advx run {len(expected)}: "
                        f"{[o['title'] for o in shown]} vs {[o['title'] for o in expected]}")
    for k, (got, want) in enumerate(zip(shown, expected)):
        where = f"output {k + 1} ({want['title']})"
        if got.get("title") != want["title"]:
            problems.append(f"{where}: title {got.get('title')!r}")
            continue
        if got.get("figure") != want["figure"]:
            problems.append(f"{where}: figure {got.get('figure')!r}, advx run saved {want['figure']!r}")
        if want["figure"] and got.get("image") is None:
            problems.append(f"{where}: advx run made a figure; the notebook shows no image")
        difference = numbers_differ(got.get("data"), want["data"])
        if difference:
            problems.append(f"{where}: numbers differ from advx run: {difference}")
        if want["html"] is not None:
            if got.get("html") is None:
                problems.append(f"{where}: advx run made an HTML table; the notebook shows none")
            elif without_timings(want["html"]) != without_timings(got["html"]):
                problems.append(f"{where}: HTML differs from advx run:\n{got['html'][:1500]}\n--- advx run:\n"
                                f"{want['html'][:1500]}")
        elif want["text"] not in got["text"]:
            # Text beside an HTML table repeats it, timings included: the table is compared instead.
            problems.append(f"{where}: text differs from advx run:\n{got['text'][:800]}\n--- advx run:\n"
                            f"{want['text'][:800]}")
    return problems


def without_timings(html):
    """The HTML with the cells of timing columns (`examples/s`) blanked."""
    def table(m):
        t = m.group(0)
        headers = [re.sub(r"<[^>]+>", "", h).strip() for h in re.findall(r"<th[^>]*>(.*?)</th>", t, flags=re.S)]
        timing = {i for i, h in enumerate(headers) if TIMING_COLUMN.search(h)}
        if not timing:
            return t

        def row(r):
            cells = re.findall(r"<td[^>]*>.*?</td>", r.group(1), flags=re.S)
            return "<tr>" + "".join("<td>*</td>" if i in timing else c for i, c in enumerate(cells)) + "</tr>"

        return re.sub(r"<tr>(.*?)</tr>", lambda r: row(r) if "<td" in r.group(1) else r.group(0), t, flags=re.S)

    return re.sub(r"<table.*?</table>", table, html, flags=re.S)


def run_outputs(results, run_notebook):
    """advx run's outputs in order, from results.yaml (numbers, figure
    files) and the notebook it wrote (text and HTML)."""
    bundles = [o["data"] for c in run_notebook["cells"] if c["cell_type"] == "code"
               for o in c.get("outputs", []) if o.get("output_type") == "display_data"]
    records = [o for cell in results["cells"] for o in cell.get("outputs", [])]
    if len(bundles) != len(records):
        raise ValueError(f"results.yaml has {len(records)} outputs, the run's notebook {len(bundles)}")
    out = []
    for record, bundle in zip(records, bundles):
        png = record.get("png")
        out.append({
            "title": record["title"],
            "data": record.get("data"),
            "figure": Path(png).stem if png else None,
            "text": text(bundle.get("text/plain")),
            "html": text(bundle["text/html"]) if "text/html" in bundle else None,
        })
    return out


# ------------------------------------------------------------------ driver


def check(executed, advx, work, repo, figures_dir=None, committed_dir=None):
    """(problems, warnings, summary) for one executed notebook."""
    import yaml

    nb = json.loads(Path(executed).read_text())
    name = Path(executed).stem
    problems, warnings, shown = [], [], []
    code_cells = [c for c in nb["cells"] if c["cell_type"] == "code"]
    kernel = nb.get("metadata", {}).get("kernelspec", {}).get("name")
    if kernel not in ("advx", "rust"):
        problems.append(f"the kernelspec is {kernel!r}, neither advx's nor evcxr's \"rust\"")
    for n, cell in enumerate(code_cells, 1):
        if ":timing" in text(cell["source"]):
            problems.append(f"code cell {n}: `:timing` adds outputs that change every run")
        cell_problems, outputs = cell_outputs(cell)
        problems += [f"code cell {n}: {p}" for p in cell_problems]
        if ERROR_TAG not in tags(cell):
            shown += outputs

    script = script_of(code_cells, kernel)
    folder = Path(work) / name
    (folder / "notebooks").mkdir(parents=True, exist_ok=True)
    models = folder / "models"
    if not models.exists():
        models.symlink_to(Path(repo).resolve() / "models")
    # Data folders beside the notebooks (own-model's images), as the notebook sees them.
    for data in (Path(repo).resolve() / "notebooks").iterdir():
        link = folder / "notebooks" / data.name
        if data.is_dir() and not link.exists():
            link.symlink_to(data)
    script_path = folder / "notebooks" / f"{name}.advx"
    script_path.write_text(script)
    out = folder / "out"
    run = subprocess.run([advx, "run", str(script_path), "--out", str(out), "--to", "ipynb"],
                         capture_output=True, text=True)
    if run.returncode != 0:
        problems.append(f"advx run of the notebook's cells failed ({run.returncode}):\n{run.stderr[-3000:]}")
        return problems, warnings, f"{name}: advx run failed"
    results = yaml.safe_load((out / "results.yaml").read_text())
    run_nb = json.loads((out / f"{name}.ipynb").read_text())
    expected = run_outputs(results, run_nb)
    problems += compare(shown, expected)

    figures = [o for o in shown if o.get("image")]
    tables = [o for o in shown if o.get("html") and "<table" in o["html"]]
    if not figures:
        problems.append("no figure")
    if not tables:
        problems.append("no HTML table")
    if figures_dir:
        Path(figures_dir).mkdir(parents=True, exist_ok=True)
        for o in figures:
            mime, data, _ = o["image"]
            ext = "png" if mime == "image/png" else "svg"
            (Path(figures_dir) / f"{name}-{o['figure']}.{ext}").write_bytes(data)
    if committed_dir:
        warnings += staleness(Path(committed_dir) / f"{name}.ipynb", shown)
    summary = (f"{name}: {len(code_cells)} code cells, {len(shown)} outputs ({len(figures)} figures, "
               f"{len(tables)} tables) match advx run")
    return problems, warnings, summary


def staleness(committed_path, shown):
    if not committed_path.exists():
        return [f"{committed_path} is missing"]
    nb = json.loads(committed_path.read_text())
    old = []
    for cell in nb["cells"]:
        if cell["cell_type"] == "code" and ERROR_TAG not in tags(cell):
            old += cell_outputs(cell)[1]
    if not old:
        return [f"{committed_path.name} is committed without outputs"]
    if len(old) != len(shown):
        return [f"{committed_path.name} shows {len(old)} outputs, a run now {len(shown)}: run scripts/notebooks.sh --update"]
    for k, (a, b) in enumerate(zip(old, shown)):
        d = numbers_differ(a.get("data"), b.get("data"))
        if d or a.get("title") != b.get("title"):
            return [f"{committed_path.name} output {k + 1} ({b.get('title')}) differs from a run now "
                    f"({d or 'title'}): run scripts/notebooks.sh --update"]
    return []


# -------------------------------------------------------------- self-test


def self_test():
    """The checks fail where they should, on made-up notebooks."""
    png = base64.b64encode(PNG_SIGNATURE + b"\0\0\0\rIHDR" + struct.pack(">II", 4, 3) + b"\0" * 8).decode()
    data_ok = {"text/plain": "[figure: x]", "image/png": png,
               DATA_MIME: {"outputs": [{"title": "grid(d)", "figure": "cell2-grid", "data": {"figure": "x"}}]}}
    cell = lambda outputs, source="s.run(\"show grid(d)\")?", cell_tags=(): {
        "cell_type": "code", "source": source, "metadata": {"tags": list(cell_tags)}, "outputs": outputs}
    result = lambda data: {"output_type": "execute_result", "data": data, "metadata": {}}
    stderr = lambda s: {"output_type": "stream", "name": "stderr", "text": s}

    problems, shown = cell_outputs(cell([result(data_ok)]))
    assert problems == [] and shown[0]["image"][2] == (4, 3), (problems, shown)
    assert cell_outputs(cell([stderr("thread panicked")]))[0], "stderr is a failure"
    assert cell_outputs(cell([{"output_type": "error", "ename": "E", "evalue": "x", "traceback": []}]))[0]
    assert cell_outputs(cell([result({"text/plain": "Took 3ms", "text/html": "Took 3ms"})]))[0], ":timing"
    broken = dict(data_ok, **{"image/png": base64.b64encode(b"GIF89a").decode()})
    assert cell_outputs(cell([result(broken)]))[0], "a figure that is not a PNG"
    missing = {k: v for k, v in data_ok.items() if k != "image/png"}
    assert cell_outputs(cell([result(missing)]))[0], "a figure without its image"
    caret = "  × unknown name `fc10`\n   ╭─[cell 5:1:6]\n 1 │ show fc10\n   ·      ──┬─\n"
    failed = lambda error: result({"text/plain": f"{error}", DATA_MIME: {"outputs": [], "error": error}})
    assert cell_outputs(cell([failed(caret)], cell_tags=[ERROR_TAG]))[0] == []
    assert cell_outputs(cell([failed(caret)]))[0], "an advx error where none is expected"
    assert cell_outputs(cell([], cell_tags=[ERROR_TAG]))[0], "an expected error that did not happen"
    assert cell_outputs(cell([failed("Error: boom")], cell_tags=[ERROR_TAG]))[0], "not a diagnostic"
    assert cell_outputs(cell([failed(caret), stderr("x")], cell_tags=[ERROR_TAG]))[0], "stderr beside it"

    want = [{"title": "grid(d)", "data": {"figure": "x"}, "figure": "cell2-grid", "text": "[figure: x]", "html": None}]
    assert compare(shown, want) == []
    assert compare(shown, want * 2), "a missing output"
    assert compare(shown, [dict(want[0], figure="cell3-grid")]), "another figure stem"
    table = [{"title": "e", "data": {"rate": 0.25}, "figure": None, "text": "25.00%", "html": "<table></table>"}]
    got = [{"title": "e", "data": {"rate": 0.25 + 1e-12}, "figure": None, "text": "25.00%", "html": "<table></table>",
            "image": None}]
    assert compare(got, table) == [], "float noise is not a difference"
    assert compare([dict(got[0], data={"rate": 0.26})], table), "a different number"
    nan = float("nan")
    assert compare([dict(got[0], data={"rate": {"$float": "nan"}})], [dict(table[0], data={"rate": nan})]) == []
    assert compare([dict(got[0], data={"rate": {"$float": "-inf"}})], [dict(table[0], data={"rate": -math.inf})]) == []
    assert compare([dict(got[0], data={"rate": {"$float": "inf"}})], [dict(table[0], data={"rate": nan})]), "inf is not nan"
    assert compare([dict(got[0], data={"rate": "NaN"})], [dict(table[0], data={"rate": nan})]), "a string is no number"
    plain = [dict(table[0], html=None)]
    assert compare([dict(got[0], html=None)], plain) == []
    assert compare([dict(got[0], html=None, text="26.00%")], plain), "a different text"
    assert compare([dict(got[0], html=None)], table), "a missing table"
    timed = ("<table><thead><tr><th>model</th><th>examples/s</th></tr></thead>"
             "<tbody><tr><td>fc100</td><td>{}</td></tr></tbody></table>")
    assert compare([dict(got[0], html=timed.format("1.5"), data={"rate": 0.25, "seconds": 3})],
                   [dict(table[0], html=timed.format("2.5"), data={"rate": 0.25, "seconds": 4})]) == []
    assert compare([dict(got[0], html=timed.format("1.5").replace("fc100", "fc200"))],
                   [dict(table[0], html=timed.format("2.5"))]), "a different model"

    source = 's.run(r#"model m = onnx "a.onnx""#)?;\ns.execute("show m\\n\\"x\\"")'
    assert rust_strings(source) == ['model m = onnx "a.onnx"', 'show m\n"x"'], rust_strings(source)
    script = script_of([cell([], source), cell([], 's.run("show nope")?', [ERROR_TAG])], "rust")
    assert script.count("# %%") == 2 and "nope" not in script, script
    script = script_of([cell([], "show x"), cell([], "show nope", [ERROR_TAG])], "advx")
    assert script == "# %% call 1\nshow x\n", script
    merged = ('<div class="advx-outputs">\n<div class="advx-output"><table></table></div>\n'
              f'<div class="advx-output"><img src="data:image/png;base64,{png}" alt="g"></div>\n</div>')
    block = {"outputs": [{"title": "t", "figure": None, "data": {}}, {"title": "g", "figure": "cell1-g", "data": {}}]}
    problems, shown = cell_outputs(cell([result({"text/plain": "a", "text/html": merged, DATA_MIME: block})]))
    assert problems == [] and shown[1]["image"] is not None and shown[0]["html"] == "<table></table>", problems
    svg = base64.b64encode(b"<svg></svg>").decode()
    merged_svg = merged.replace(f"data:image/png;base64,{png}", f"data:image/svg+xml;base64,{svg}")
    problems, shown = cell_outputs(cell([result({"text/plain": "a", "text/html": merged_svg, DATA_MIME: block})]))
    assert problems == [] and shown[1]["image"][1] == b"<svg></svg>", problems
    not_svg = merged.replace(f"data:image/png;base64,{png}", f"data:image/svg+xml;base64,{png}")
    assert cell_outputs(cell([result({"text/plain": "a", "text/html": not_svg, DATA_MIME: block})]))[0]
    print("check.py self-test: ok")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("notebooks", nargs="*")
    parser.add_argument("--advx", default="target/release/advx")
    parser.add_argument("--work", default="target/notebooks/check")
    parser.add_argument("--repo", default=".")
    parser.add_argument("--figures")
    parser.add_argument("--committed")
    parser.add_argument("--update")
    parser.add_argument("--self-test", action="store_true")
    args = parser.parse_args()
    if args.self_test:
        self_test()
        return 0
    failed = False
    for path in args.notebooks:
        problems, warnings, summary = check(path, args.advx, args.work, args.repo, args.figures, args.committed)
        for w in warnings:
            print(f"warning: {w}", file=sys.stderr)
        if problems:
            failed = True
            print(f"FAIL {path}", file=sys.stderr)
            for p in problems:
                print("  - " + p.replace("\n", "\n    "), file=sys.stderr)
        else:
            print(f"ok   {summary}")
    if args.update and not failed:
        for path in args.notebooks:
            nb = json.loads(Path(path).read_text())
            for cell in nb["cells"]:
                cell.get("metadata", {}).pop("execution", None)
            dest = Path(args.update) / Path(path).name
            dest.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")
            print(f"updated {dest}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
