"""The stage layer: the one implementation of every SWiRL stage.

::

    make_env -> generate -> judge -> filter -> train -> evaluate

with, beside them, ``export_dataset`` and ``import_dataset``: trajectory files to and from
a ``datasets.Dataset`` in TRL's conversational format, for other trainers and for sharing;
and ``merge_shards``, which joins the outputs of ``generate`` or ``judge`` run as N shards
(``shard=Shard(i, n)``) on N machines.

Each stage is a function here; the ``swirl`` subcommands parse arguments and call
one of them, and ``swirl demo``, ``benchmarks/*.py`` and ``examples/`` sequence them.
A stage reads and writes files with stable schemas (trajectory JSONL, judged JSONL,
a ``from_pretrained`` checkpoint folder, a JSON report) and resumes after a kill
without losing or repeating work. ``run_stage`` adds a completion marker on top, for
recipes that chain several stages.

Errors a user can fix (a missing file, an unknown env id, bad settings) are raised
as ``StageError`` with a one-line message; the CLI prints it and exits non-zero.
"""

from swirl_agents.stages.envs import make_env
from swirl_agents.stages.errors import StageError
from swirl_agents.stages.evaluate import evaluate, model_policy, score_episodes
from swirl_agents.stages.export import export_dataset, import_dataset, import_file, to_dataset
from swirl_agents.stages.filter import filter_file
from swirl_agents.stages.generate import close_policy, generate
from swirl_agents.stages.judge import JudgeSettings, judge
from swirl_agents.stages.markers import DONE, run_stage, stage_summary, write_json
from swirl_agents.stages.shards import Shard, merge_shards
from swirl_agents.stages.train import train

__all__ = [
    "DONE",
    "JudgeSettings",
    "Shard",
    "StageError",
    "close_policy",
    "evaluate",
    "export_dataset",
    "filter_file",
    "generate",
    "import_dataset",
    "import_file",
    "judge",
    "make_env",
    "merge_shards",
    "model_policy",
    "run_stage",
    "score_episodes",
    "stage_summary",
    "to_dataset",
    "train",
    "write_json",
]
