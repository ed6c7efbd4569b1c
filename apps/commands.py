"""The commands every task has, `train`, `evaluate` and `export`, built for a task.

A task's `cli.py` calls `task_group` with its declaration and the words it wants
printed, then adds the verbs that are its own (`predict`, `generate`, ...). The
flags of `train` come from the task's settings dataclass; `evaluate` and `export`
take the shared flags here plus any the task passes in.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from apps import runner
from apps.config import resolve
from apps.options import (
    SectionedCommand,
    argument,
    examples_for,
    field_option,
    option,
    settings_options,
    typed_flags,
)
from apps.task import Task

MODEL_HELP = ("A run directory, an exported SavedModel version, or a model base directory "
              "(saved_models/NAME: its newest version).")


@dataclass
class TaskTexts:
    """What a task's commands say: help texts and how reports are shown."""

    group_help: str
    examples: str
    train_help: str
    summarize: Callable[[dict[str, Any]], str]  # the validation report after `train`
    show_report: Callable[[dict[str, Any]], str]  # `evaluate` without --json
    exported: str  # what the export holds, after "Exported PATH"


def task_group(task: Task, texts: TaskTexts, evaluate_options: Sequence = (),
               export_options: Sequence = ()) -> click.Group:
    group = click.Group(task.name, help=texts.group_help, epilog=texts.examples)
    group.add_command(_train(task, texts))
    group.add_command(_evaluate(task, texts, evaluate_options))
    group.add_command(_export(task, texts, export_options))
    return group


def _with(options: Sequence, command):
    for decorate in reversed(options):
        command = decorate(command)
    return command


def _train(task: Task, texts: TaskTexts) -> click.Command:
    @click.pass_context
    def train(ctx, config_file, output, overwrite, quiet, **_):
        settings = resolve(task.settings_class, config_file, typed_flags(ctx))
        run_dir, report = runner.train(task, settings, output, overwrite,
                                       verbose=0 if quiet else 1)
        click.echo(texts.summarize(report))
        if report.get("stopped_by_time_budget"):
            click.echo(f"Stopped by the time budget after {report['epochs_run']} epoch(s).")
        click.echo(f"Run directory: {run_dir}")

    train = _with([
        settings_options(task.settings_class),
        option("--config", "config_file", type=click.Path(path_type=Path),
               help="YAML or JSON file of settings (keys as the flags, without dashes); "
                    "flags given on the command line win."),
        option("--output", "-o", type=click.Path(path_type=Path),
               help=f"Run directory [default: runs/{task.name}-<time>]. Run the same command "
                    "again to resume an interrupted run."),
        option("--overwrite", is_flag=True,
               help="Replace what --output holds instead of resuming."),
        option("--quiet", is_flag=True, help="No progress bars."),
    ], train)
    return click.command("train", cls=SectionedCommand, help=texts.train_help,
                         epilog=examples_for(texts.examples, "train"))(train)


def _evaluate(task: Task, texts: TaskTexts, options: Sequence) -> click.Command:
    def evaluate(model, data, as_json, **task_options):
        report = runner.evaluate(task, model, data, **task_options)
        click.echo(json.dumps(report, ensure_ascii=False) if as_json
                   else texts.show_report(report))

    evaluate = _with([
        argument("model", type=click.Path(path_type=Path), help=MODEL_HELP),
        option("--data", required=True, section="data", help="Data to score: a file or "
               "tfds:NAME[:SPLIT] (TFDS sets default to their test split)."),
        *[field_option(task.settings_class, key) for key in task.column_options],
        *options,
        option("--json", "as_json", is_flag=True, help="Print one JSON object."),
    ], evaluate)
    return click.command("evaluate", cls=SectionedCommand,
                         epilog=examples_for(texts.examples, "evaluate"), help=(
        f"Score MODEL (a run directory or an exported SavedModel) on held-out data.\n\n"
        f"The {task.title}'s metrics, as `train` reports them for the validation data."))(
            evaluate)


def _export(task: Task, texts: TaskTexts, options: Sequence) -> click.Command:
    def export(run_dir, model_base_path, name, gpu_only, **task_options):
        path = runner.export(task, run_dir, model_base_path, name, gpu_only, **task_options)
        click.echo(f"Exported {path} ({texts.exported})")

    export = _with([
        argument("run_dir", type=click.Path(path_type=Path),
                 help="A finished (or interrupted) training run directory."),
        option("--model-base-path", type=click.Path(path_type=Path), default="saved_models",
               show_default=True, help="Root of the TF Serving layout <name>/<version>/."),
        option("--name", default=task.name, show_default=True, help="Model name."),
        *options,
        option("--gpu-only", is_flag=True,
               help="Hold cuDNN kernels (fastest on GPU hosts, unusable on CPU hosts). "
                    "By default the export holds a recurrence every host runs."),
    ], export)
    return click.command("export", cls=SectionedCommand,
                         epilog=examples_for(texts.examples, "export"), help=(
        "Export RUN_DIR's best model as the next SavedModel version (atomic).\n\n"
        "TF Serving and `apps serve` pick it up from <model-base-path>/<name>/<version>/."))(
            export)

