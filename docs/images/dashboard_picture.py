"""Make docs/images/dashboard.png: a real demo run on the dashboard, in the terminal and as a comment.

    python docs/images/dashboard_picture.py [--out docs/images/dashboard.png] [--keep DIR]

1. ``workmill demo`` runs the example platform repo (real modules, real ledger).
2. The stages are set as the workflow jobs set them, with ``workmill dashboard update``;
   the run table comes from the demo's own summary rows (``publish_run``).
3. The top half is the output of ``workmill dashboard show`` (ANSI → HTML by rich); the
   bottom half is the stored comment body rendered by markdown-it-py (CommonMark +
   tables, as GitHub renders it, GitHub-like CSS) — both screenshotted by headless Chromium.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

SHA = "7d3f0c2b9a6e41d58c0f2e7b3a9d6c1e5f4b8a20"
RUN_ENV = {
    "GITHUB_SERVER_URL": "https://github.com",
    "GITHUB_REPOSITORY": "acme/platform",
    "GITHUB_RUN_ID": "7701234567",
}
STAGES = [
    ("validate", "success", None),
    ("maintenance", "success", None),
    ("plan", "success", None),
    ("execute", "success", "3 shards"),
    ("settle", "success", None),
    ("smoke", "skipped", "no module changed"),
]
CSS = """
body { margin: 0; background: #f6f8fa; font-family: -apple-system, "Segoe UI", Helvetica,
  Arial, sans-serif; }
h1.cap { font-size: 15px; color: #57606a; font-weight: 600; margin: 18px 24px 8px; }
pre.term { margin: 0 24px; background: #0d1117; color: #e6edf3; padding: 14px 18px;
  border-radius: 6px; font: 13px/1.35 "DejaVu Sans Mono", monospace; white-space: pre; }
pre.term code { font: inherit; }
.comment { margin: 0 24px 24px; background: #fff; border: 1px solid #d0d7de;
  border-radius: 6px; }
.comment .hdr { background: #f6f8fa; border-bottom: 1px solid #d0d7de; padding: 8px 16px;
  font-size: 14px; color: #57606a; border-radius: 6px 6px 0 0; }
.comment .hdr b { color: #1f2328; }
.md { padding: 16px; font-size: 14px; line-height: 1.5; color: #1f2328; }
.md h2 { font-size: 20px; border-bottom: 1px solid #d0d7de; padding-bottom: 6px; margin-top: 0; }
.md h3 { font-size: 16px; }
.md table { border-collapse: collapse; margin: 8px 0 12px; }
.md th, .md td { border: 1px solid #d0d7de; padding: 5px 12px; }
.md th { background: #f6f8fa; font-weight: 600; }
.md tr:nth-child(2n) td { background: #f6f8fa; }
.md code { background: rgba(175,184,193,.2); padding: 1px 5px; border-radius: 5px;
  font: 12px "DejaVu Sans Mono", monospace; }
.md a { color: #0969da; text-decoration: none; }
"""


def workmill(*args: str, cwd: Path, env: dict[str, str] | None = None) -> str:
    full = {**os.environ, **(env or {})}
    out = subprocess.run(
        [sys.executable, "-m", "workmill", *args],
        cwd=cwd,
        env=full,
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode != 0:
        raise SystemExit(f"workmill {' '.join(args)} failed:\n{out.stderr}")
    return out.stdout


def demo_dashboard(work: Path) -> tuple[str, str]:
    """Run the demo, fill its dashboard; (ANSI output of `dashboard show`, the comment body)."""
    from workmill.dashboard import publish_run
    from workmill.orchestrator.demo import run_demo

    out = run_demo(work / "demo")
    repo = out.repo
    configured = set(repo.config.dashboard.stages)
    for key, status, note in STAGES:
        if key not in configured:
            continue
        args = ["dashboard", "update", "--sha", SHA, "--stage", key, "--status", status]
        workmill(*args, *(["--note", note] if note else []), cwd=repo.root, env=RUN_ENV)
    publish_run(repo, out.result.summary_rows(), {"WORKMILL_DASHBOARD_SHA": SHA, **RUN_ENV})
    env = {"FORCE_COLOR": "1", "COLUMNS": "118", "TERM": "xterm-256color"}
    shown = workmill("dashboard", "show", "--sha", SHA, cwd=repo.root, env=env)
    body = workmill("dashboard", "show", "--sha", SHA, "--markdown", cwd=repo.root)
    return shown, body


def page(shown: str, body: str) -> str:
    from markdown_it import MarkdownIt
    from rich.console import Console
    from rich.text import Text

    console = Console(record=True, width=118, file=open(os.devnull, "w"))  # noqa: SIM115
    console.print(Text.from_ansi(shown))
    term = console.export_html(inline_styles=True, code_format="{code}")
    rendered = MarkdownIt("commonmark", {"html": True}).enable("table").render(body)
    return f"""<!doctype html><html><head><meta charset="utf-8"><style>{CSS}</style></head>
<body>
<h1 class="cap">$ workmill dashboard show --sha {SHA[:12]}</h1>
<pre class="term"><code>{term}</code></pre>
<h1 class="cap">The same dashboard as the pull-request comment (Markdown rendered)</h1>
<div class="comment"><div class="hdr"><b>github-actions</b> bot commented · edited</div>
<div class="md">{rendered}</div></div>
</body></html>"""


def screenshot(html_path: Path, out: Path, size: str) -> None:
    exe = next((shutil.which(n) for n in ("chromium", "chromium-browser") if shutil.which(n)), None)
    if exe is None:
        raise SystemExit("chromium not found")
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run(
            [
                exe,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--hide-scrollbars",
                f"--user-data-dir={profile}",
                f"--window-size={size}",
                f"--screenshot={out}",
                html_path.as_uri(),
            ],
            check=True,
            capture_output=True,
            timeout=120,
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path(__file__).with_name("dashboard.png"))
    ap.add_argument("--size", default="1060,1480", help="Chromium window WIDTH,HEIGHT")
    ap.add_argument("--keep", type=Path, default=None, help="keep the demo repo and HTML here")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="wm-dash-")) if args.keep is None else args.keep
    work.mkdir(parents=True, exist_ok=True)
    shown, body = demo_dashboard(work)
    html_path = work / "dashboard.html"
    html_path.write_text(page(shown, body), encoding="utf-8")
    (work / "dashboard.md").write_text(body, encoding="utf-8")
    screenshot(html_path, args.out.resolve(), args.size)
    print(f"{args.out} (from {html_path}; {len(body)} characters of Markdown)")


if __name__ == "__main__":
    main()
