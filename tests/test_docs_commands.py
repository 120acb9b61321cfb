"""Every ``mmbench`` command shown in README.md and docs/*.md runs as written, so the docs cannot drift.

Commands are read from the pages' shell code blocks (``\\`` continuations joined, comments,
pipes and redirections cut; files the page writes with ``cat > FILE <<'EOF'`` are written first)
and run in this process, in page order, in one working folder. Budgets are made tiny
(``--n-trials 1 --max-epochs 1 --no-plots --quiet`` appended to each search). To keep the suite
fast, only :data:`TRAINED` searches train; every other ``mmbench search`` runs the real flag
parsing, task resolution, ``search:`` checks, data loading and search-space construction
(:func:`~mmbench.search.study.plan_search`, where a drifted flag, task or parameter name fails)
and stops before the first trial. Commands that cannot run here are skipped by :data:`SKIP_RULES`,
each with its reason, and the test lists how many each rule skipped.
"""

from __future__ import annotations

import contextlib
import re
import shlex
from pathlib import Path

from tests.cli import run_cli

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

#: (regex on the command, reason): commands that need what a test machine has not.
SKIP_RULES: list[tuple[str, str]] = [
    (r"\.\./shared|--all-tasks|--suite core|\b(petfinder|av-digits\S*)\b", "needs the ../shared data sets"),
    (r"postgresql://|https?://|journal:///shared", "needs a database or tracking server"),
    (r"\$RUN\b", "needs a trained run id (covered by tests/test_evaluation_end_to_end.py)"),
    (r"my[-_]\w+|new_rows\.jsonl|\.\.\.", "names a file or task the reader supplies"),
    (r"--device cuda", "needs a GPU"),
    (r"(leaderboard|report) --task synth-unique", "reads the runs of evaluation.md's search (robustness, baselines and "
     "seeds: minutes of training; covered by tests/test_evaluation_end_to_end.py)"),
    (r"/scratch", "names a folder of the reader's machine"),
]
#: Searches that really train (two trials, one epoch): the README's own example and the plugin page's, whose runs
#: later commands read.
TRAINED = {
    "mmbench search synth-mixed --fusions early,late --set train.lr=1e-3 --seed 1",
    "mmbench search example-blobs --n-trials 2 --max-epochs 1 --fusions example_sum --encoders x1=embedding.gated "
    "--encoders x2=embedding.gated",
}
TINY = ["--n-trials", "1", "--max-epochs", "1", "--no-plots", "--quiet"]


def documented_commands() -> tuple[list[tuple[str, str]], dict[str, str]]:
    """``(page, command)`` in page order, and the files the pages write (name -> content)."""
    commands: list[tuple[str, str]] = []
    files: dict[str, str] = {}
    for page in PAGES:
        for block in shell_blocks(page.read_text(encoding="utf-8")):
            for name, content in re.findall(r"cat > (\S+) <<'EOF'\n(.*?)\nEOF", block, re.S):
                files[name] = content + "\n"
            block = re.sub(r"cat > \S+ <<'EOF'\n.*?\nEOF", "", block, flags=re.S)
            for line in re.sub(r"\s*\\\n\s*", " ", block).splitlines():
                line = re.split(r"\s+#|\s\||\s>\s", line.strip())[0]
                for part in re.split(r"&&|;|\bdo\b", line):  # `pip install . && mmbench search`, shell loops
                    command = part.strip().rstrip("&").strip()
                    if re.match(r"(\w+=\S+ )?mmbench(\s|$)", command):
                        commands.append((page.name, command))
    return commands, files


def shell_blocks(text: str) -> list[str]:
    """The bodies of the page's fenced blocks tagged bash, sh, console or nothing."""
    blocks, body, language = [], None, ""
    for line in text.splitlines():
        if line.startswith("```"):
            if body is None:
                body, language = [], line[3:].strip()
            else:
                if language in ("bash", "sh", "console", ""):
                    blocks.append("\n".join(body))
                body = None
        elif body is not None:
            body.append(line)
    return blocks


class Planned(BaseException):
    """Raised where a plan-only search would start its first trial."""


def plan_only(monkeypatch) -> None:
    import mmbench.search.study as study

    def run_search(settings, *, registry=None, reporter=None):
        from mmbench.registry import get_registry

        study.plan_search(settings, registry or get_registry())
        raise Planned

    def run_suite(settings, tasks, *, registry=None, reporter_for=None):
        for task in tasks:
            with contextlib.suppress(Planned):
                run_search(settings.replace(task=task), registry=registry)
        raise Planned

    monkeypatch.setattr(study, "run_search", run_search)
    monkeypatch.setattr(study, "run_suite", run_suite)


def run(argv: list[str], env: dict[str, str]) -> tuple[int | str, str]:
    """(exit code or ``"planned"``, stderr) of ``mmbench ARGV`` in this process."""
    try:
        result = run_cli(*argv, env=env)
    except Planned:
        return "planned", ""
    return result.returncode, result.stderr


def test_the_pages_show_commands_and_every_skip_rule_is_used():
    commands, _ = documented_commands()
    assert len(commands) > 30
    for pattern, reason in SKIP_RULES:
        assert any(re.search(pattern, c) for _, c in commands), f"skip rule {pattern!r} ({reason}) matches nothing"
    assert TRAINED <= {c for _, c in commands}, "a TRAINED command is no longer in the docs"


def test_every_documented_command_runs(monkeypatch, one_torch_thread):
    commands, files = documented_commands()
    for name, content in files.items():
        Path(name).write_text(content)
    trained = [(p, c) for p, c in commands if c in TRAINED]
    ordered = trained + [(p, c) for p, c in commands if c not in TRAINED]  # later commands read the trained runs
    failures, skipped = [], {reason: 0 for _, reason in SKIP_RULES}
    for page, command in ordered:
        rule = next((reason for pattern, reason in SKIP_RULES if re.search(pattern, command)), None)
        if rule:
            skipped[rule] += 1
            continue
        words = shlex.split(command)
        env = dict(w.split("=", 1) for w in words[: words.index("mmbench")])
        argv = words[words.index("mmbench") + 1:]
        if argv[0] == "search":
            argv += TINY + (["--n-trials", "2"] if command in TRAINED else [])  # an ensemble needs two runs
        if command not in TRAINED and argv[0] == "search":
            with monkeypatch.context() as patch:
                plan_only(patch)
                code, err = run(argv, env)
        else:
            code, err = run(argv, env)
        if code not in (0, "planned") or "Traceback" in err:
            failures.append(f"{page}: {command} -> exit {code}: {err.strip()[-300:]}")
    print({reason: n for reason, n in skipped.items()})
    assert not failures, "\n".join(failures)
