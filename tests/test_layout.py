"""How the project is laid out for its readers: imports that run one way, a command line
whose every option says what it does and its default, seeds as a count, a range or a
list, a dry run that prints each run's command, and a results tree that keeps only the
figures a page shows and each report's runs in one file."""
import argparse
import ast
import os
import shlex
import subprocess
import sys

import pytest

import run_experiments as rx

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Each module imports only those before it here.
ORDER = ("autograd_lite", "nets", "fastpaths", "rundir", "mfcg", "run_experiments")


def imported(module):
    """The project's modules that `module` imports, anywhere in it (inside functions too)."""
    with open(os.path.join(ROOT, f"{module}.py")) as fh:
        tree = ast.parse(fh.read())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module.split(".")[0])
    return names & set(ORDER)


@pytest.mark.parametrize("module", ORDER)
def test_imports_run_one_way(module):
    above = set(ORDER[ORDER.index(module):])
    assert not imported(module) & above, f"{module} imports {sorted(imported(module) & above)}"


def test_the_order_is_checked_against_a_cycle():
    """The check above sees an import inside a function: fastpaths reached back into mfcg
    that way once."""
    assert "mfcg" in imported("run_experiments") and "rundir" in imported("mfcg")


def _actions():
    parser = rx.build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for command, p in sub.choices.items():
        for action in p._actions:
            if not isinstance(action, argparse._HelpAction):
                yield command, action


def test_every_option_says_what_it_does_and_its_default():
    seen = 0
    for command, action in _actions():
        name = f"{command} {'/'.join(action.option_strings) or action.dest}"
        assert action.help, f"{name} has no help line"
        if action.option_strings:
            assert "default" in action.help or "required" in action.help, f"{name}: {action.help}"
        seen += 1
    assert seen >= 30


@pytest.mark.parametrize("text, seeds", [("5", [0, 1, 2, 3, 4]), ("1", [0]), ("20-23", [20, 21, 22, 23]),
                                         ("7-7", [7]), ("0,5,9", [0, 5, 9]), ("9,0", [9, 0]), ("12,", [12])])
def test_seeds_are_a_count_a_range_or_a_list(text, seeds):
    assert rx.parse_seeds(text) == seeds
    assert rx.parse_seeds(rx.seeds_text(seeds)) == seeds   # what a dry run names reads back the same


@pytest.mark.parametrize("text, message", [("0", "a count is at least 1"), ("3-1", "a range runs upwards"),
                                           ("x", "expected a count (5), a range (20-23) or a list"),
                                           ("1,1", "expected distinct non-negative seeds"),
                                           ("2-x", "expected a count (5), a range (20-23) or a list"),
                                           ("1,,2", "a list has a seed between each two commas"),
                                           (",", "a list has a seed between each two commas"),
                                           ("0-999999", "1000000 seeds, at most 1000")])
def test_bad_seeds_are_one_line(text, message):
    with pytest.raises(rx.UsageError, match=f"--seeds {text}: .*" + message.replace("(", r"\(").replace(")", r"\)")):
        rx.parse_seeds(text)


def test_a_dry_run_prints_each_run_and_runs_nothing(tmp_path):
    p = subprocess.run([sys.executable, os.path.join(ROOT, "run_experiments.py"), "reproduce", "--algos", "b,m",
                        "--variants", "mf", "--seeds", "20-21", "--set", "langevin_steps=3,5", "--dry-run"],
                       cwd=tmp_path, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert len(lines) == 8 and not os.listdir(tmp_path)
    parser = rx.build_parser()
    made = set()
    for line in lines:
        argv = shlex.split(line)
        assert argv[:2] == [sys.executable, os.path.join(ROOT, "run_experiments.py")]
        args = parser.parse_args(argv[2:])   # each line is a `run` this command line takes
        assert args.command == "run" and args.mf and args.preset == "quick"
        made.add((args.algo, args.seed, tuple(args.set)))
        assert args.out == rx.default_run_dir("runs", "quick", args.algo, args.seed, True,
                                              dict(s.split("=") for s in args.set))
    assert made == {(a, s, (f"langevin_steps={L}",)) for a in "bm" for s in (20, 21) for L in (3, 5)}
    assert "seeds 20-21: 8 run(s) to do, 0 finished" in p.stderr


def test_every_committed_figure_is_shown_on_a_page():
    """A figure under docs/results that no page (README.md, docs/*.md) shows is weight
    without a reader: `report --figures` draws only those a page names."""
    import re
    pages = [os.path.join(ROOT, "README.md")] + [os.path.join(ROOT, "docs", f)
                                                 for f in os.listdir(os.path.join(ROOT, "docs")) if f.endswith(".md")]
    shown = set()
    for page in pages:
        with open(page) as fh:
            for link in re.findall(r"\(([^)\s]+\.png)\)", fh.read()):
                shown.add(os.path.normpath(os.path.join(os.path.dirname(page), link)))
    figures = {os.path.join(top, f) for top, _, files in os.walk(os.path.join(ROOT, "docs", "results"))
               for f in files if f.endswith(".png")}
    assert shown <= figures, f"a page shows a missing figure: {sorted(shown - figures)[:3]}"
    assert not figures - shown, f"{len(figures - shown)} figures no page shows, e.g. {sorted(figures - shown)[:3]}"


def test_every_committed_report_keeps_its_runs_in_one_archive():
    """A report's runs are one file, runs.zip, holding exactly the copies its summary.json
    lists (a file per run made a results tree of over a thousand files)."""
    import json
    import zipfile
    reports = [top for top, _, files in os.walk(os.path.join(ROOT, "docs", "results"))
               if "summary.json" in files and "runs.zip" in files]
    assert len(reports) > 50
    for top in reports:
        with open(os.path.join(top, "summary.json")) as fh:
            copies = json.load(fh)["copies"]
        with zipfile.ZipFile(os.path.join(top, "runs.zip")) as zf:
            members = zf.namelist()
        assert copies == [f"runs.zip/{m}" for m in members], top
        assert not os.path.exists(os.path.join(top, "runs")), f"{top} still keeps runs one file each"
