"""Peak memory of loading a full-size HotPotQA file: the streaming loader against ``json.load``.

HotPotQA's train file is one 540 MB JSON array. This script writes a synthetic
file of the same shape (``--size-mb``, default 600 MB: ``_id``, ``question``,
``answer``, ``type``, ``level``, ``supporting_facts`` and ten ``[title, sentences]``
context pairs of HotPotQA's lengths, with escaped non-ASCII as the original has),
then runs each variant in a fresh Python process and reads its peak resident
memory (``VmHWM``):

- ``stream``: ``load_hotpotqa`` (the records are read one at a time);
- ``env``: ``HotPotQAEnv`` in the distractor setting (the loader plus the env; the
  open setting's index over every paragraph is a separate, measured-elsewhere cost:
  ``benchmarks/search_speed.py``);
- ``whole``: ``json.load`` of the whole file, then the same conversion per record
  (what the loader did before it streamed).

Each variant also reports its resident memory after imports (``base``) and after
loading (``held``: the tasks kept), its time, and a SHA-256 digest of every field of
every task; the digests must be equal.

Usage::

    python benchmarks/loader_memory.py                         # /tmp/swirl_hotpot_600mb.json
    python benchmarks/loader_memory.py --size-mb 50 --out /tmp/loader_memory_small.json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import platform
import random
import string
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from swirl_agents.flags import add_flags, from_flags

VARIANTS = ("stream", "env", "whole")


@dataclass
class Args:
    """Arguments of the benchmark (each is a command-line flag)."""

    path: str = "/tmp/swirl_hotpot_600mb.json"
    """the generated HotPotQA-format file (written when missing or of another size)"""
    size_mb: int = 600
    """size of the generated file in MB (10^6 bytes)"""
    seed: int = 0
    """seed of the generated text"""
    variants: str = ",".join(VARIANTS)
    """comma-separated variants to measure, each in a fresh process"""
    out: str = "results/loader_memory.json"
    """where the JSON result is written"""
    child: str = ""
    """internal: run one variant in this process and print its measurements"""


def generate(path: Path, size_mb: int, seed: int) -> int:
    """Write a HotPotQA-format JSON array of about ``size_mb`` MB to ``path``; return its records.

    Lengths follow the published train file: ~10 paragraphs a question, ~4 sentences
    a paragraph, ~130 characters a sentence, ~20-character titles, ~100-character
    questions. Titles come from a pool (popular articles recur across questions, as
    in HotPotQA); a third of paragraphs have an accented word (as in the published sample),
    written as a ``\\u`` escape like the original.
    """
    rng = random.Random(seed)
    letters = string.ascii_lowercase
    words = ["".join(rng.choices(letters, k=rng.randint(2, 10))) for _ in range(50_000)]
    words += [word[:-1] + rng.choice("–ōłšćé") for word in words[:250]]  # a third of paragraphs
    sentences = [
        " " + " ".join(rng.choices(words, k=rng.randint(10, 26))).capitalize() + "."
        for _ in range(200_000)
    ]
    target, written, count = size_mb * 10**6, 0, 0
    titles = [" ".join(rng.choices(words, k=rng.randint(1, 4))).title() for _ in range(400_000)]
    with path.open("w", encoding="utf-8") as handle:
        handle.write("[")
        while written < target:
            context = []
            for title in rng.sample(titles, 10):
                chosen = rng.choices(sentences, k=rng.randint(2, 6))
                context.append([title, [chosen[0][1:], *chosen[1:]]])
            gold = rng.sample(range(10), 2)
            record = {
                "supporting_facts": [[context[g][0], rng.randint(0, 1)] for g in gold],
                "level": rng.choice(["easy", "medium", "hard"]),
                "question": rng.choice(sentences)[1:-1] + "?",
                "context": context,
                "answer": " ".join(rng.choices(words, k=rng.randint(1, 3))),
                "_id": f"{rng.getrandbits(96):024x}",
                "type": rng.choice(["bridge", "comparison"]),
            }
            text = (", " if count else "") + json.dumps(record)
            handle.write(text)
            written += len(text)
            count += 1
        handle.write("]")
    return count


def digest(tasks: list[Any]) -> str:
    """SHA-256 of every field of every task, meta included, in order."""
    sha = hashlib.sha256()
    for task in tasks:
        fields = (
            task.id,
            task.question,
            task.answers,
            task.gold_path,
            [(passage.title, passage.text, passage.id) for passage in task.passages],
            task.supporting,
            task.answerable,
            task.unique_sound_path,
            task.meta,
        )
        sha.update(repr(fields).encode())
    return sha.hexdigest()


def _status_kib(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {key}")


def run_child(variant: str, path: str) -> dict[str, Any]:
    """Load ``path`` one way in this process; memory in MiB, time in seconds."""
    from swirl_envs.tasks.hotpotqa import HotPotQAEnv, hotpotqa_task, load_hotpotqa

    base = _status_kib("VmRSS")
    start = time.perf_counter()
    if variant == "stream":
        tasks = load_hotpotqa(path, split="train")
    elif variant == "env":
        tasks = HotPotQAEnv(path, split="train", search="distractor").tasks
    elif variant == "whole":
        with open(path, encoding="utf-8") as handle:
            records = json.load(handle)
        tasks = [hotpotqa_task(record, index) for index, record in enumerate(records)]
        del records
    else:
        raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}.")
    seconds = time.perf_counter() - start
    return {
        "variant": variant,
        "tasks": len(tasks),
        "seconds": round(seconds, 1),
        "base_mib": round(base / 1024),
        "held_mib": round(_status_kib("VmRSS") / 1024),
        "peak_mib": round(_status_kib("VmHWM") / 1024),
        "digest": digest(tasks),
    }


def main() -> None:
    """Generate the file if needed, measure each variant in a fresh process, print and save."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_flags(parser, Args)
    args = from_flags(Args, parser.parse_args())
    if args.child:
        print(json.dumps(run_child(args.child, args.path)))
        return
    path = Path(args.path)
    if not path.is_file() or abs(path.stat().st_size - args.size_mb * 10**6) > 10**6:
        start = time.perf_counter()
        records = generate(path, args.size_mb, args.seed)
        print(f"wrote {path}: {records} records in {time.perf_counter() - start:.0f} s")
    rows = []
    for variant in args.variants.split(","):
        command = [sys.executable, __file__, "--path", str(path), "--child", variant]
        output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
        rows.append(json.loads(output.strip().splitlines()[-1]))
        print(_row(rows[-1]), flush=True)
    same = len({row["digest"] for row in rows}) == 1
    print(f"all variants give the same tasks: {same}")
    result = {
        "args": asdict(args),
        "file_bytes": path.stat().st_size,
        "python": platform.python_version(),
        "same_tasks": same,
        "variants": rows,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(f"wrote {args.out}")
    if not same:
        sys.exit("the variants' tasks differ")


def _row(row: dict[str, Any]) -> str:
    return (
        f"{row['variant']:>7}: {row['tasks']} tasks, peak {row['peak_mib']} MiB, "
        f"held {row['held_mib']} MiB (base {row['base_mib']} MiB), {row['seconds']} s"
    )


if __name__ == "__main__":
    main()
