"""The report's pages: the matrix of cases and targets, and one case's page, as HTML.

Pure rendering of what `harness.report` prepares (the matrix, a run's records with their
wire logs): no files, no names decided here. Every page is self-contained — inline CSS,
inline SVG (`harness.timeline`), no script, no link out — and every text on it passes
through `e()`: redacted (`harness.wire.redact`), control characters made visible, escaped.
Wire text is shown with C's escapes set apart (`\\n`, `\\0`), since fonts often lack the
control pictures the JSON holds.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterator, Mapping
from typing import Any

from streamproof.harness import timeline
from streamproof.harness.verdict import Level
from streamproof.harness.wire import (
    ClientSide,
    ExchangeLog,
    Gap,
    UpstreamSide,
    pictured,
    redact,
    walk,
)

LEVELS = [level.value for level in Level]


def index_html(table: Mapping[str, Any]) -> str:
    """The matrix (`harness.report.matrix`) as a page."""
    targets = table["targets"]
    head = "".join(
        f'<th class="target" scope="col" title="{e(t["name"])}">'
        f"{e(t['label']).replace('/', '/<wbr>')}</th>"
        for t in targets
    )
    body: list[str] = []
    open_cases = 0
    for group in table["groups"]:
        settled = [_settled(case, targets) for case in group["cases"]]
        open_cases += settled.count(False)
        body.append(
            f'<tr class="group{" settled" if all(settled) else ""}" id="group-{group["group"]}">'
            f'<th colspan="{3 + len(targets)}" '
            f'scope="rowgroup">{group["group"]} · {e(group["name"])} '
            f"<small>{_plural(len(group['cases']), 'case')}</small></th></tr>"
        )
        previous = ""
        for case, done in zip(group["cases"], settled, strict=True):
            cells = "".join(_cell(case["verdicts"].get(t["slug"])) for t in targets)
            number, _, variant = case["id"].partition("[")
            again = number == previous  # another variant of the case above: its title again
            previous = number
            shown = f'<span class="variant">[{e(variant)}</span>' if variant else ""
            row_class = ' class="settled"' if done else ""
            body.append(
                f'<tr id="c-{e(case["slug"])}"{row_class}><th scope="row" class="id">'
                f'{e(number)}{shown}</th><td class="strength">{e(case["strength"])}</td>'
                f'<td class="title{" again" if again else ""}">{e(case["title"])}</td>'
                f"{cells}</tr>"
            )
    totals = "".join(f"<td>{_counts(t['counts'])}</td>" for t in targets)
    cards = "".join(_target_card(t) for t in targets)
    generated = f"streamproof {e(table['streamproof'])} · generated {e(table['generated'])}"
    every = sum(len(g["cases"]) for g in table["groups"])
    nothing = "" if targets else "<p>No results yet: run <code>pytest suites/</code>.</p>"
    nothing += "".join(f'<p class="note">Not shown: {e(what)}</p>' for what in table["unreadable"])
    return _page(
        "streamproof conformance report",
        f"""<header><h1>streamproof conformance report</h1><p class="meta">{generated}</p>
{_legend()}</header>
<section class="targets">{cards}</section>{nothing}
<input type="checkbox" id="only-open" checked>
<label for="only-open" class="filter">show only the {_plural(open_cases, "case")} that some target
did not PASS (untick to see all {_plural(every, "case")})</label>
<table class="matrix"><thead><tr><th scope="col">case</th><th scope="col">strength</th>
<th scope="col">title</th>{head}</tr></thead>
<tbody>{"".join(body)}</tbody>
<tfoot><tr><th colspan="3" scope="row">verdicts</th>{totals}</tr></tfoot></table>""",
    )


def _settled(case: Mapping[str, Any], targets: list[Mapping[str, Any]]) -> bool:
    """Every target that ran the case passed it (or only recorded it): a row to hide."""
    verdicts = [case["verdicts"].get(t["slug"]) for t in targets]
    return all(v is None or v["verdict"] in ("PASS", "INFO") for v in verdicts)


def _plural(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _cell(verdict: Mapping[str, Any] | None) -> str:
    if verdict is None:
        return '<td class="v none" title="not run against this target">—</td>'
    level = str(verdict["verdict"])
    accepted = verdict.get("accepted")
    tip = verdict.get("reason") or level
    if accepted is not None:
        tip = f"accepted: {accepted} — {tip}"
    mark = '<small class="acc">accepted</small>' if accepted is not None else ""
    return (
        f'<td class="v {_level_class(level)}{" accepted" if accepted is not None else ""}">'
        f'<a href="{e(verdict["page"])}" title="{e(tip[:300])}">{e(level)}{mark}</a></td>'
    )


def _target_card(target: Mapping[str, Any]) -> str:
    counts: Mapping[str, int] = target["counts"]
    total = sum(counts.values()) or 1
    bar = "".join(
        f'<span class="{_level_class(level)}" style="width:{100 * counts[level] / total:.2f}%" '
        f'title="{counts[level]} {level}"></span>'
        for level in LEVELS
        if counts[level]
    )
    when = str(target.get("finished") or "")[:19].replace("T", " ")
    offers = target.get("offers")
    offered = (
        ""
        if offers is None
        else f'<p class="offers">offers: {e(", ".join(offers)) if offers else "chat only"}'
        + (f" · timers: {e(target['timers'])}" if target.get("timers") else "")
        + "</p>"
    )
    later = target.get("merged") or []
    partial = ""
    if later:
        ids = [i for m in later for i in m.get("cases", [])]
        shown = ", ".join(ids[:8]) + (f" and {len(ids) - 8} more" if len(ids) > 8 else "")
        last = str(later[-1].get("finished") or "")[:19].replace("T", " ")
        differ = [
            f"{key} {m[key] if isinstance(m[key], str) else ', '.join(m[key])}"
            for m in later
            for key in ("timers", "offers")
            if m.get(key) is not None
        ]
        partial = (
            f'<p class="partial">partial: {e(shown)} from {_plural(len(later), "later run")}'
            f" (the last {e(last)} UTC), the rest from the run below"
            + (f"; the later runs had {e('; '.join(differ))}" if differ else "")
            + "</p>"
        )
    if target.get("partial"):
        partial += '<p class="partial">a partial run: only some cases were run</p>'
    failed = "".join(
        f"<li>{group['group']} · {e(group['name'])}: "
        + ", ".join(
            f'<a class="{_level_class(c["verdict"])}" href="{e(c["page"])}" '
            f'title="{e(c["title"])}">{e(c["id"])}</a>'
            for c in group["cases"]
        )
        + "</li>"
        for group in target.get("failed") or []
    )
    failures = f'<ul class="failed">{failed}</ul>' if failed else ""
    soak = target.get("soak")
    if soak:
        found = "no violation" if soak["ok"] else _plural(int(soak["violations"] or 0), "violation")
        failures += (
            f'<p class="soak"><a href="{e(soak["page"])}">chaos soak</a>: '
            f"{e(soak['streams'])} streams, {e(found)}</p>"
        )
    return (
        f'<div class="card"><h2>{e(target["label"])}</h2>'
        f'<p class="desc">{e(target["description"])}</p>{offered}'
        f'<div class="bar">{bar}</div><p>{_counts(counts)}</p>{failures}{partial}'
        f'<p class="meta">streamproof {e(target.get("streamproof"))} · run {e(when)} UTC · '
        f"{e(target.get('duration_s'))} s · "
        f'<a href="{e(target["results"])}">results.json</a></p></div>'
    )


def _counts(counts: Mapping[str, int]) -> str:
    return " ".join(
        f'<span class="n {_level_class(level)}" title="{level}">{counts[level]} {level}</span>'
        for level in LEVELS
        if counts.get(level)
    )


def _legend() -> str:
    meaning = {
        "PASS": "the requirement held, and its premise happened",
        "NON-STRICT": "no client harmed, but a careful proxy would do better",
        "FAIL": "a client is harmed, whatever the case's strength",
        "INFO": "unspecified behaviour, recorded",
        "NOT-OFFERED": "a feature the target never claimed; it failed honestly without it",
        "SKIP": "the case could not apply",
        "ERROR": "not judged: streamproof failed, or the target never started",
    }
    chips = "".join(
        f'<li><span class="chip {_level_class(level)}">{level}</span> {meaning[level]}</li>'
        for level in LEVELS
    )
    return (
        f'<ul class="legend">{chips}<li><span class="chip none">—</span> not run</li>'
        '<li><a href="docs/verdicts.md">what each verdict means, and why</a></li></ul>'
    )


# --- a case's page -----------------------------------------------------------------------


def case_html(
    run: Mapping[str, Any],
    record: Mapping[str, Any],
    *,
    target: str,
    about: str,
    group: str,
    back: str,
    log: str | None = None,
    docs: str | None = None,
) -> str:
    """The page of one case of a run: `target` names what ran and `about` says what it is,
    `group` names the case's group, `back` links to the case's row of the matrix, `log` to
    the output of the target's process that served the case (None: none was kept)."""
    level = str(record.get("verdict"))
    accepted = record.get("accepted")
    axes = ""
    if record.get("content") is not None:
        axes = (
            f'<p class="axes">content <b>{e(record["content"])}</b> · ending '
            f"<b>{e(record.get('ending'))}</b></p>"
        )
    reason = str(record.get("reason") or "")
    short = reason if len(reason) <= 320 else reason[:319] + "…"
    verdict = (
        f'<div class="verdict {_level_class(level)}"><span class="chip {_level_class(level)}">'
        f"{e(level)}</span>"
        + (f' <span class="acc">accepted: {e(accepted)}</span>' if accepted is not None else "")
        + f"<p>{e(short or 'no finding to report')}</p>{axes}</div>"
    )
    observed = [part for part in reason.split("; ") if part] or ["—"]
    facts = [
        ("target", f"{e(target)} — {e(about)}"),
        ("strength", e(record.get("strength"))),
        ("group", e(group)),
        ("test", f"<code>{e(record.get('nodeid'))}</code>"),
        ("run", f"{e(run.get('finished'))} · case took {e(record.get('duration_s'))} s"),
        ("streamproof", e(run.get("streamproof"))),
    ]
    if log is not None:
        facts.insert(1, ("target's log", f'<a href="{e(log)}">its output during the run</a>'))
    wire = record.get("wire")
    exchanges: list[ExchangeLog] = wire["exchanges"] if wire else []
    sections = [
        _exchange_html(x, open_=n in (0, len(exchanges) - 1) or len(exchanges) <= 3)
        for n, x in enumerate(exchanges)
    ]
    if wire and wire.get("left_out"):
        sections.append(
            f'<p class="note">{wire["left_out"]} more exchanges of this case are not shown.</p>'
        )
    if not sections:
        sections.append('<p class="note">This case recorded no exchange on the wire.</p>')
    title = f"{record['id']} {record.get('title', '')}"
    return _page(
        f"{title} — {target}",
        f"""<nav><a href="{e(back)}">← the matrix</a> · {e(target)}</nav>
<header><h1><span class="id">{e(record["id"])}</span> {e(record.get("title", ""))}</h1>
{verdict}</header>
<section class="claim"><h2>The claim</h2>
<blockquote>{e(record.get("requirement", ""))}</blockquote>
<p class="source">— {_cited(e(record.get("source", "")), docs)}</p>
<h3>Expected</h3><p>{e(record.get("expected", ""))}</p>
<h3>Observed</h3><ul class="observed">{"".join(f"<li>{e(o)}</li>" for o in observed)}</ul>
<dl>{"".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in facts)}</dl></section>
<section class="wire"><h2>On the wire</h2>{_wire_help()}{timeline.legend()}
{"".join(sections)}</section>""",
    )


def _cited(source: str, docs: str | None) -> str:
    """An escaped source with each `docs/NAME.md` it cites linked to the copy beside the
    report (`docs`: the link to that folder; None: no copies, no links)."""
    if docs is None:
        return source
    return re.sub(r"docs/([\w-]+\.md)", lambda m: f'<a href="{docs}/{m[1]}">{m[0]}</a>', source)


def _wire_help() -> str:
    return (
        '<p class="note">Times are milliseconds since the client sent the request; the fake '
        "provider and the client share one clock. Bytes are shown as UTF-8 text; what is "
        'not printable is set apart: <span class="esc">\\n</span> is LF, '
        '<span class="esc">\\r</span> CR, <span class="esc">\\0</span> NUL, '
        '<span class="esc">⟨U+FEFF⟩</span> an invisible character, '
        '<span class="esc">⟨e2 82⟩</span> bytes that are not UTF-8 (half a character, '
        "cut by a split).</p>"
    )


def _exchange_html(x: ExchangeLog, *, open_: bool) -> str:
    client = x["client"]
    error = f" ({client['error']})" if client["error"] else ""
    lines = [
        f"client: {_status(client['status'])} · {client['outcome']} · transport "
        f"{client['transport']}{error} · {client['count']} reads, {client['bytes']} B"
    ]
    lines += [
        f"upstream #{a['attempt']}{' on /' + a['route'] if a['route'] else ''}: "
        f"{_status(a['status'])} · faults {', '.join(a['faults']) or 'none'} · ending "
        f"{a['ending']} · {a['count']} writes, {a['bytes']} B"
        for a in x["upstream"]
    ] or ["upstream: no attempt reached the fake provider"]
    headers = "".join(
        f"<tr><th>{e(name)}</th><td>{e(value)}</td></tr>"
        for name, value in client["headers"].items()
    )
    headers_html = (
        f"<details><summary>response headers the client got</summary>"
        f'<table class="headers">{headers}</table></details>'
        if headers
        else ""
    )
    return f"""<details class="exchange"{" open" if open_ else ""}>
<summary><b>{e(x["title"])}</b> <code>{e(x["model"])}</code></summary>
<p class="summary">{"<br>".join(e(line) for line in lines)}</p>
<div class="picture">{timeline.svg(x)}</div>{headers_html}
{_wire_table(x)}</details>"""


def _status(status: int | None) -> str:
    return "no status" if status is None else f"status {status}"


def _wire_table(x: ExchangeLog) -> str:
    """Both sides' rows and events, in time order: the client left, the upstream right."""
    lines = sorted(_wire_lines(x), key=lambda line: (line[0], line[1]))
    rows = []
    for ms, _, side, cell in lines:
        left, right = (cell, "") if side == "client" else ("", cell)
        rows.append(
            f'<tr class="{side}"><td class="ms">{ms:.2f}</td><td>{left}</td><td>{right}</td></tr>'
        )
    return (
        '<table class="log"><thead><tr><th>ms</th><th>client (what the proxy sent it)</th>'
        "<th>upstream (what the fake provider wrote)</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def _wire_lines(x: ExchangeLog) -> Iterator[tuple[float, int, str, str]]:
    """(ms, order at equal times, side, cell html) for every row and event of `x`."""
    client = x["client"]
    yield 0.0, 0, "client", _event("sent the request")
    for a in x["upstream"]:
        name = f"#{a['attempt']}"
        route = f" on /{a['route']}" if a["route"] else ""
        faults = f", faults {', '.join(a['faults'])}" if a["faults"] else ""
        yield a["received_ms"], 1, "upstream", _event(f"{name} request received{route}{faults}")
        yield from _rows(a, "upstream", f"{name} ", a["bytes"] - a["not_kept"])
        if a["ended_ms"] is not None:
            text = f"{name} ended: {a['ending']}"
            if a["status"] is not None:
                text += f" (status {a['status']})"
            yield a["ended_ms"], 3, "upstream", _event(text, str(a["ending"]))
        if a["peer_closed_ms"] is not None:
            yield a["peer_closed_ms"], 4, "upstream", _event(f"{name} the proxy hung up", "hangup")
        if a["not_kept"]:
            yield (
                a["ended_ms"] or 0.0,
                5,
                "upstream",
                _event(f"{name} the journal kept no text for the last {a['not_kept']} bytes"),
            )
    if client["headers_ms"] is not None:
        yield client["headers_ms"], 1, "client", _event(f"status {client['status']} and headers")
    yield from _rows(client, "client", "", client["bytes"])
    if client["ended_ms"] is not None:
        error = f" ({client['error']})" if client["error"] else ""
        text = f"stream ended: {client['outcome']}, transport {client['transport']}{error}"
        yield client["ended_ms"], 3, "client", _event(text, client["transport"])


def _rows(
    side: ClientSide | UpstreamSide, kind: str, prefix: str, kept: int
) -> Iterator[tuple[float, int, str, str]]:
    """The rows of one side; `kept` bytes of it have text (the journal keeps 64 KiB)."""
    verb = "read" if kind == "client" else "write"
    for entry in walk(side["rows"], side["count"], side["bytes"]):
        if isinstance(entry, Gap):
            at = entry.after_ms if entry.after_ms is not None else entry.before_ms or 0.0
            text = f"{prefix}… {entry.rows} {verb}s ({entry.bytes} bytes) not listed here"
            yield at, 2, kind, _event(text, "gap")
            continue
        index, ms, offset, size, text, more = entry
        what = "not kept by the journal" if offset + size > kept and not text else "more"
        cut = f'<span class="more">… {more} bytes {what}</span>' if more else ""
        yield (
            ms,
            2,
            kind,
            f'<div class="row"><span class="n">{e(prefix)}{verb} {index + 1} · {size} B</span>'
            f'<code class="bytes">{_bytes(text)}{cut}</code></div>',
        )


def _event(text: str, kind: str = "") -> str:
    return f'<span class="event {e(kind)}">{e(text)}</span>'


# Pictures are unambiguous in the JSON, but many fonts lack them: pages show C's escapes,
# set apart from the text, so a JSON string's own `\n` is never taken for a line end.
_ESCAPES = {chr(0x2400 + code): f"\\x{code:02x}" for code in range(0x20)} | {
    "␀": "\\0",
    "␉": "\\t",
    "␊": "\\n",
    "␍": "\\r",
    "\u2421": "\\x7f",
}
_MARKS = re.compile(r"(␊|␍(?!␊))|⟨[0-9a-fA-F U+]{1,40}⟩|[\u2400-\u2421]")


def _bytes(text: str) -> str:
    """Wire text as HTML: escapes stand out, and a line break follows each line end."""

    def mark(match: re.Match[str]) -> str:
        shown = _ESCAPES.get(match[0]) or match[0]
        return f"<i>{shown}</i>" + ("\n" if match[1] else "")

    return _MARKS.sub(mark, html.escape(redact(text), quote=False))


# --- shared ------------------------------------------------------------------------------


def e(value: object) -> str:
    """Any value as HTML text: redacted, controls made visible, escaped."""
    return html.escape(redact(pictured("" if value is None else str(value))))


def _level_class(level: str) -> str:
    return "v-" + level.lower().replace("-", "")


def _page(title: str, body: str) -> str:
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{e(title)}</title><style>{CSS}</style></head>
<body>{body}</body></html>
"""


CSS = """
:root{--pass:#1a7f37;--pass-bg:#d3f5dc;--ns:#8a5a00;--ns-bg:#ffeaa3;--fail:#b3161f;
--fail-bg:#ffd2d0;--info:#0a58ca;--info-bg:#d6e8ff;--skip:#57606a;--skip-bg:#eaeef2;
--error:#6f2dbd;--error-bg:#ead9ff;--line:#d0d7de;--muted:#57606a;--up:#0969da;--client:#1a7f37}
*{box-sizing:border-box}
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1f2328;
margin:0;padding:20px 28px;background:#fff}
h1{font-size:22px;margin:4px 0 6px}h2{font-size:17px;margin:22px 0 8px}h3{font-size:14px;
margin:14px 0 4px}a{color:#0a58ca}code{font:12px/1.4 ui-monospace,SFMono-Regular,Menlo,
Consolas,monospace}
.meta,.note,.source{color:var(--muted);font-size:12.5px}
nav{font-size:13px;margin-bottom:8px}
.legend{list-style:none;display:flex;flex-wrap:wrap;gap:6px 16px;padding:0;margin:10px 0;
font-size:12.5px;color:var(--muted)}
.chip{display:inline-block;min-width:74px;text-align:center;font-weight:600;font-size:11.5px;
padding:2px 6px;border-radius:4px}
.v-pass{background:var(--pass-bg);color:var(--pass)}.v-nonstrict{background:var(--ns-bg);
color:var(--ns)}.v-fail{background:var(--fail-bg);color:var(--fail)}.v-info{
background:var(--info-bg);color:var(--info)}.v-skip{background:var(--skip-bg);
color:var(--skip)}.v-notoffered{background:var(--skip-bg);color:var(--skip);
font-style:italic}.v-error{background:var(--error-bg);color:var(--error)}
.none{background:#fafbfc;color:#8c959f}
.targets{display:flex;flex-wrap:wrap;gap:12px;margin:14px 0 18px}
.card{border:1px solid var(--line);border-radius:8px;padding:10px 14px;min-width:280px;
max-width:440px;flex:1}
.card h2{margin:0 0 2px;font-size:16px}.card p{margin:4px 0}.desc{color:#1f2328;
word-break:break-word}
.bar{display:flex;height:10px;border-radius:5px;overflow:hidden;margin:8px 0;
background:var(--skip-bg)}.bar span{display:block}
.bar .v-pass{background:#2da44e}.bar .v-nonstrict{background:#d4a72c}.bar .v-fail{
background:#cf222e}.bar .v-info{background:#218bff}.bar .v-skip{background:#afb8c1}
.bar .v-error{background:#8250df}.bar .v-notoffered{background:#d0d7de}
.n{display:inline-block;font-size:11.5px;font-weight:600;padding:1px 6px;border-radius:4px;
margin:1px 2px 1px 0}
table.matrix{border-collapse:separate;border-spacing:0;width:100%}
.matrix th,.matrix td{border-bottom:1px solid #eaeef2;padding:3px 8px;text-align:left;
vertical-align:middle}
.matrix thead th{position:sticky;top:0;background:#fff;border-bottom:2px solid var(--line);
font-size:12px;color:var(--muted);z-index:1}
.matrix th.target{text-align:center;color:#1f2328;font-size:12.5px;min-width:112px;
max-width:170px;overflow-wrap:anywhere}
.matrix tr.group th{background:#f6f8fa;font-size:13.5px;padding:7px 8px;
border-top:1px solid var(--line)}
.matrix tr.group small{color:var(--muted);font-weight:400;margin-left:6px}
.matrix .id{font:600 12.5px ui-monospace,Menlo,Consolas,monospace;white-space:nowrap}
.matrix .variant{font-weight:400;color:#6e7781}.matrix .title.again{color:#8c959f}
.matrix .strength{font-size:11.5px;color:var(--muted)}.matrix .title{width:100%}
.matrix td.v{text-align:center;padding:2px 3px;min-width:104px;border-left:2px solid #fff}
.matrix td.v a{display:block;color:inherit;text-decoration:none;font-weight:600;
font-size:11.5px;padding:3px 4px;border-radius:3px}
.matrix td.v a:hover{outline:2px solid currentColor}
.matrix td.accepted a{background:repeating-linear-gradient(135deg,transparent 0 5px,
rgba(255,255,255,.55) 5px 10px)}
.acc{font-weight:400;font-size:10px;margin-left:4px;text-transform:lowercase}
.matrix tbody tr:hover td,.matrix tbody tr:hover th{filter:brightness(.97)}
.matrix tfoot td{vertical-align:top;text-align:center;padding-top:8px}
.verdict{border-radius:8px;padding:10px 14px;margin:10px 0}
.verdict .chip{background:#fff}.verdict p{margin:6px 0 0;color:#1f2328}
.axes b{font-family:ui-monospace,Menlo,Consolas,monospace}
.claim blockquote{margin:6px 0;padding:6px 12px;border-left:4px solid var(--line);
background:#f6f8fa}
dl{display:grid;grid-template-columns:max-content 1fr;gap:3px 14px;font-size:13px;
margin:14px 0}dt{color:var(--muted)}dd{margin:0;word-break:break-word}
.exchange{border:1px solid var(--line);border-radius:8px;padding:8px 12px;margin:12px 0}
.exchange>summary{cursor:pointer;font-size:14px}.exchange>summary code{color:var(--muted);
word-break:break-all}
.summary{font-size:12.5px;color:var(--muted)}
.picture{overflow-x:auto;margin:6px 0}
#only-open:checked~table.matrix tr.settled{display:none}
label.filter{display:inline-block;margin:.6em 0 .4em .3em}
.card ul.failed{margin:.3em 0;padding-left:1.1em;font-size:.9em}.card ul.failed a{
font-weight:600;margin-right:.15em}.card .offers,.card .partial{font-size:.85em;color:var(--muted)}
ul.timeline-legend{display:flex;flex-wrap:wrap;gap:.2em 1.4em;list-style:none;padding:0;
margin:.4em 0 1em;font-size:.85em;color:var(--muted)}ul.timeline-legend li{display:flex;
align-items:center;gap:.4em}svg.timeline.mark{width:24px;height:34px;background:none}
svg.timeline{width:100%;height:auto;font:11px system-ui,sans-serif;background:#fff}
svg .lane{fill:#fbfcfd;stroke:#eaeef2}svg .name{font-weight:600;fill:#1f2328}
svg .detail{fill:var(--muted);font-size:10.5px}
svg .axis line{stroke:#eaeef2}svg .axis text{fill:var(--muted);font-size:10.5px}
svg .span{stroke-width:2;opacity:.35}svg .span.up{stroke:var(--up)}svg .span.client{
stroke:var(--client)}
svg circle.up{fill:var(--up)}svg circle.client{fill:var(--client)}
svg .tick{stroke-width:1.6}svg .tick.up{stroke:var(--up)}svg .tick.client{stroke:var(--client)}
svg .end{stroke-width:2.5}svg .end.up{stroke:var(--up)}svg .end.client{stroke:var(--client)}
svg .reset path{stroke:#cf222e;stroke-width:3}
svg .stall{fill:url(#hatch);stroke:#d4a72c}svg text.stall{fill:#8a5a00;font-weight:600;
stroke:none}
svg .hangup path{fill:#e16f24}svg .hangup-label{fill:#bc4c00;font-weight:600}
svg .gap{fill:none;stroke:#8250df;stroke-width:1.5}
svg .open{stroke:var(--up);stroke-width:2;stroke-dasharray:4 4;opacity:.6}
svg .activity{opacity:.2}svg .activity.up{fill:var(--up)}svg .activity.client{
fill:var(--client)}svg .reset-label{fill:#b3161f;font-weight:600}
svg .flag line{stroke:#1f2328}svg .flag path{fill:#1f2328}
svg .end-label{fill:var(--muted);font-weight:600}
details.exchange details{margin:6px 0;font-size:12.5px}
table.headers{border-collapse:collapse;font:12px ui-monospace,Menlo,Consolas,monospace}
table.headers th{text-align:left;padding:1px 12px 1px 0;color:var(--muted);font-weight:400}
table.log{border-collapse:collapse;width:100%;table-layout:fixed;margin-top:6px}
table.log th{font-size:12px;color:var(--muted);text-align:left;border-bottom:2px solid
var(--line);padding:3px 6px}
table.log th:first-child{width:76px}
table.log td{vertical-align:top;padding:2px 6px;border-bottom:1px solid #f0f2f4;
font-size:12px}
table.log td.ms{font:11.5px ui-monospace,Menlo,Consolas,monospace;color:var(--muted);
text-align:right}
table.log tr.client td:nth-child(2){border-left:3px solid var(--client)}
table.log tr.upstream td:nth-child(3){border-left:3px solid var(--up)}
.row{display:flex;gap:8px;align-items:baseline}
.bytes{flex:1;min-width:0;white-space:pre-wrap;word-break:break-all;background:#f6f8fa;
padding:1px 5px;border-radius:3px}
.log .n{flex:0 0 112px;font-size:11px;color:var(--muted);font-weight:400;padding:0;
margin:0;white-space:nowrap}
ul.observed{margin:4px 0;padding-left:20px}ul.observed li{margin:1px 0}
.esc,.bytes i{font-style:normal;color:#bc4c00;background:#fff1e5;border-radius:2px}
.more{color:#8250df;font-style:italic;margin-left:6px}
.event{font-style:italic;color:var(--muted)}
.event.reset,.event.hangup{color:#b3161f;font-weight:600}.event.stall,.event.timed_out{
color:#8a5a00;font-weight:600}.event.gap{color:#8250df}
"""
