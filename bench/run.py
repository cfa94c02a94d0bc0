"""The benchmark: flashgen against a plain genanki/mistune/pygments script, in one run, as ratios.

    python bench/run.py [--questions 100000] [--work bench/work]

1. generates a library from ../shared/corpus (bench/generate.py);
2. times bench/plain.py on it: the baseline, the job done the obvious way;
3. times flashgen: a cold build (empty output, lock and render cache), a warm
   rebuild with nothing changed, and a rebuild after one answer changed in one
   file; wall time, questions per second, peak memory of the whole process
   tree (workers included), .apkg bytes per note;
4. times the parser on 4 MB and 8 MB of adversarial text (linear: ratio ~2);
5. measures the ceiling on the cold-build ratio: the CPU time of rendering every
   unique note once and packaging it (work no build can skip), and of the whole
   cold build in one process, each divided by the cores.

Every figure is printed as a ratio to the baseline of the same run, with its target.
The baseline has no incremental mode: its one run is the reference for all three builds.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import shutil
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
sys.path.insert(0, ROOT)

from generate import generate  # noqa: E402


def _tree_rss(pid: int) -> int:
    """Memory of a process and all its descendants, in bytes: the sum of their PSS.

    PSS charges each shared page to its sharers in equal parts, so forked workers
    (which share the parent's pages) are neither hidden nor counted twice.
    """
    total = 0
    stack = [pid]
    while stack:
        p = stack.pop()
        try:
            with open(f"/proc/{p}/smaps_rollup") as handle:
                for line in handle:
                    if line.startswith("Pss:"):
                        total += int(line.split()[1]) * 1024
                        break
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as handle:
                    stack += [int(c) for c in handle.read().split()]
        except (OSError, ValueError):
            continue
    return total


def measure(command: list[str], env: dict | None = None) -> tuple[float, int]:
    """(wall seconds, peak resident bytes of the process tree) of a command."""
    started = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peak = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, _tree_rss(process.pid))
            time.sleep(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    _, err = process.communicate()
    elapsed = time.perf_counter() - started
    done.set()
    sampler.join()
    if process.returncode not in (0, 1):
        raise SystemExit(f"{' '.join(command)} failed ({process.returncode}):\n{err.decode(errors='replace')[-2000:]}")
    return elapsed, peak


def cpu_seconds(command: list[str], env: dict | None = None) -> float:
    """CPU seconds (user + system) a command and its children used."""
    import resource

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def folder_bytes(folder: str, suffix: str = ".apkg") -> int:
    return sum(os.path.getsize(os.path.join(folder, n)) for n in os.listdir(folder) if n.endswith(suffix))


def adversarial(size: int, seed: int) -> str:
    rng = random.Random(seed)
    pieces = ["$", "$$", "`", "```", "<", ">", ":p ", "??x", "x??", "---", "[", "]", "(", ")", "#### ", "\n", " ", "word", "\\(", "**Rating: 8/10**"]
    out, length = [], 0
    while length < size:
        piece = rng.choice(pieces)
        out.append(piece)
        length += len(piece)
    return "".join(out)


def parse_seconds(text: str) -> float:
    from flashgen.parse import parse_text

    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        parse_text(text, "adversarial.md")
        best = min(best, time.perf_counter() - started)
    return best


def necessary_work(library: str) -> tuple[float, float, int]:
    """CPU seconds, in one process, of the two things no cold build can skip: (render, package, unique notes).

    Rendering every unique note once (mistune + pygments) and writing every note
    into a package (genanki, SQLite, deflate) are required work; a cold build
    cannot take less wall time than their sum divided by the cores, whatever
    else it does. Printed beside the cold build, so the ceiling on its ratio is
    a measured figure.
    """
    from flashgen.build import plan
    from flashgen.package import PackageNote, package_bytes
    from flashgen.render import render_card

    the_plan = plan([library], jobs=1)
    render = package = 0.0
    for book in the_plan.books:
        notes = [n for chapter in book.chapters for n in chapter.notes]
        started = time.process_time()
        cards = [render_card(n.title, n.question, n.answer, n.context) for n in notes]
        render += time.process_time() - started
        started = time.process_time()
        package_bytes(
            [
                PackageNote(n.key, (c.question.html, c.answer.html, c.title.html, c.context.html, n.book), (), book.title, 0, i + 1)
                for i, (n, c) in enumerate(zip(notes, cards))
            ],
            [],
            0,
        )
        package += time.process_time() - started
    return render, package, len(the_plan.deduped.notes)


def main() -> int:
    parser = argparse.ArgumentParser(description="flashgen benchmark")
    parser.add_argument("--questions", type=int, default=100_000)
    parser.add_argument("--work", default=os.path.join(HERE, "work"))
    parser.add_argument("--corpus", default=os.path.join(ROOT, "..", "shared", "corpus"))
    args = parser.parse_args()

    work = os.path.abspath(args.work)
    library = os.path.join(work, "library")
    os.makedirs(work, exist_ok=True)
    info = generate(args.corpus, library, args.questions)
    questions = info["questions"]
    python = sys.executable
    flashgen = [python, "-m", "flashgen.cli"]
    env = {**os.environ, "PYTHONPATH": ROOT, "SOURCE_DATE_EPOCH": "1767225600"}

    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, {platform.system()}")
    print(f"library: {questions} questions in {info['files']} files, {info['books']} books (generated from {args.corpus})")

    plain_out = os.path.join(work, "plain-out")
    shutil.rmtree(plain_out, ignore_errors=True)
    plain_time, plain_peak = measure([python, os.path.join(HERE, "plain.py"), library, plain_out], env)
    plain_bytes = folder_bytes(plain_out)

    out, lock, cache = (os.path.join(work, name) for name in ("out", "flashgen.lock", "cache"))
    for path in (out, cache):
        shutil.rmtree(path, ignore_errors=True)
    if os.path.exists(lock):
        os.remove(lock)
    build = flashgen + ["build", library, "-o", out, "--lock", lock, "--cache-dir", cache, "-q"]
    cold_time, cold_peak = measure(build, env)
    notes_built = _notes(build, env)
    fg_bytes = folder_bytes(out)
    warm_time, warm_peak = measure(build, env)

    victim = os.path.join(library, "book-000", "flashcards-part-03.md")
    with open(victim, encoding="utf-8") as handle:
        original = handle.read()
    with open(victim, "w", encoding="utf-8") as handle:
        handle.write(original.replace("\nx??", "\nOne more line in this answer.\nx??", 1))
    one_time, one_peak = measure(build, env)

    small, large = adversarial(4 << 20, 1), adversarial(8 << 20, 2)
    t4, t8 = parse_seconds(small), parse_seconds(large)
    render_cpu, package_cpu, unique_notes = necessary_work(library)
    one_out, one_lock = os.path.join(work, "out-one-process"), os.path.join(work, "one-process.lock")
    shutil.rmtree(one_out, ignore_errors=True)
    if os.path.exists(one_lock):
        os.remove(one_lock)
    whole_cpu = cpu_seconds(flashgen + ["build", library, "-o", one_out, "--lock", one_lock, "--no-cache", "--jobs", "1", "-q"], env)
    cores = os.cpu_count() or 1

    rows = [
        ("cold build (empty output, lock, cache)", plain_time / cold_time, ">=", 5.0, f"{cold_time:.1f}s vs {plain_time:.1f}s, {questions / cold_time:,.0f} q/s"),
        ("warm rebuild, nothing changed", plain_time / warm_time, ">=", 30.0, f"{warm_time:.2f}s"),
        ("rebuild after one answer changed", plain_time / one_time, ">=", 10.0, f"{one_time:.2f}s"),
        (".apkg size", fg_bytes / plain_bytes, "<=", 0.3, f"{fg_bytes / notes_built:,.0f} B/note vs {plain_bytes / questions:,.0f} B/question; {fg_bytes / 1e6:.1f} MB vs {plain_bytes / 1e6:.1f} MB"),
        ("peak memory (process tree, PSS)", max(cold_peak, warm_peak, one_peak) / plain_peak, "<=", 1.5, f"{max(cold_peak, warm_peak, one_peak) / 1e6:.0f} MB vs {plain_peak / 1e6:.0f} MB"),
        ("peak memory, absolute (MB)", max(cold_peak, warm_peak, one_peak) / 1e6, "<", 500.0, "at this library size"),
        ("adversarial parse 8 MB / 4 MB", t8 / t4, "<=", 2.5, f"{t4:.2f}s vs {t8:.2f}s (linear: ~2)"),
    ]
    print(f"\n{'figure':<42} {'measured':>9} {'target':>9}  result  detail")
    failed = 0
    for name, value, op, target, detail in rows:
        ok = value >= target if op == ">=" else (value <= target if op == "<=" else value < target)
        failed += not ok
        unit = "" if "MB)" in name else "x"
        print(f"{name:<42} {value:>8.2f}{unit} {op + ' ' + str(target):>9}  {'ok  ' if ok else 'MISS'}    {detail}")
    floor = (render_cpu + package_cpu) / cores
    print(
        f"\nceiling on the cold-build ratio on this machine (measured in one process, not a target):\n"
        f"  rendering the {unique_notes:,} unique notes once (mistune + pygments): {render_cpu:.1f} s of CPU "
        f"({render_cpu / unique_notes * 1000:.2f} ms/note)\n"
        f"  writing them into packages (genanki, SQLite, deflate): {package_cpu:.1f} s of CPU\n"
        f"  on {cores} cores no cold build takes less than {floor:.1f} s, nor beats the plain script by more than "
        f"{plain_time / floor:.2f}x, before any parsing or deduplication\n"
        f"  the whole cold build in one process (--jobs 1 --no-cache): {whole_cpu:.1f} s of CPU; split perfectly "
        f"over {cores} cores: {whole_cpu / cores:.1f} s, {plain_time / (whole_cpu / cores):.2f}x"
    )
    print(f"\n{len(rows) - failed} of {len(rows)} targets met")
    return 0 if not failed else 1


def _notes(build: list[str], env: dict) -> int:
    import json

    result = subprocess.run(build[:-1] + ["--json"], env=env, capture_output=True, text=True)
    return json.loads(result.stdout)["notes"]


if __name__ == "__main__":
    sys.exit(main())
