"""The commands every task has, `train`, `evaluate` and `export`, built for a task.

A task's `cli.py` calls `task_group` with its declaration and the words it wants
printed, then adds the verbs that are its own (`predict`, `generate`, ...). The
flags of `train` come from the task's settings dataclass; `evaluate` and `export`
take the shared flags here plus any the task passes in.
"""

from __future__ import annotations

import contextlib
import json
import shlex
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
from click.core import ParameterSource

from apps import runner, transfer
from apps.config import load_config_file, resolve
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
    def train(ctx, config_file, output, overwrite, quiet, **settings_flags):
        # the settings flags (declared from the dataclass) are read typed from ctx
        flags = typed_flags(ctx)
        settings = resolve(task.settings_class, config_file, flags)
        given = set(flags) | (set(load_config_file(config_file)) if config_file else set())
        settings = transfer.adopt_tokenizer(settings, given, task)
        output = runner.run_directory(task, settings, output)
        click.echo(f"Run directory: {output}", err=True)
        with interrupted_says_how_to_resume(ctx, output):
            run_dir, report = runner.train(task, settings, output, overwrite,
                                           verbose=0 if quiet else 1)
        click.echo(texts.summarize(report))
        click.echo(best_epoch_line(report))
        if report.get("stopped_by_time_budget"):
            click.echo(f"Stopped by the time budget after {report['epochs_run']} epoch(s).")
        click.echo(f"Run directory: {run_dir}")

    train = _with([
        settings_options(task.settings_class),
        option("--config", "config_file", type=click.Path(path_type=Path),
               help="YAML or JSON file of settings (keys as the flags, without dashes); "
                    "flags given on the command line win."),
        option("--output", "-o", type=click.Path(path_type=Path),
               help=f"Run directory [default: runs/{task.name}-<data>-<digest of the "
                    "settings>, printed at the start]. Run the same command again to resume "
                    "an interrupted run (after a finished one, it starts a new directory)."),
        option("--overwrite", is_flag=True,
               help="Replace what --output holds instead of resuming."),
        option("--quiet", is_flag=True, help="No progress bars or progress lines (the "
               "tokenizer's included)."),
    ], train)
    return click.command("train", cls=SectionedCommand, help=texts.train_help,
                         epilog=examples_for(texts.examples, "train"))(train)


def best_epoch_line(report: dict[str, Any]) -> str:
    """The monitored metric of the best epoch, as history.csv holds it."""
    value = report.get("best_value")
    shown = f"{value:.4f}" if isinstance(value, float) else str(value)
    return (f"Chosen by {report.get('monitor')}: {shown} at epoch {report['best_epoch']} of "
            f"{report['epochs_run']} (as history.csv holds it).")


def resume_command(ctx: click.Context, output: Path) -> str:
    """The command that resumes this run: the flags as typed (without --overwrite),
    with the run directory named."""
    words = ["apps", *ctx.command_path.split()[1:]]
    for param in ctx.command.params:
        name = param.name
        if (name in ("output", "overwrite") or not isinstance(param, click.Option)
                or ctx.get_parameter_source(name) != ParameterSource.COMMANDLINE):
            continue
        value = ctx.params[name]
        if param.is_flag and param.secondary_opts:
            words.append(param.opts[0] if value else param.secondary_opts[0])
        elif param.is_flag:
            words += [param.opts[0]] if value else []
        else:
            words += [param.opts[0], str(value)]
    return shlex.join([*words, "--output", str(output)])


@contextlib.contextmanager
def interrupted_says_how_to_resume(ctx: click.Context, output: Path):
    """Ctrl-C: one line saying what was kept and the command that resumes, exit 130."""
    try:
        yield
    except KeyboardInterrupt:
        from apps.layout import RunDirectory

        run = RunDirectory(Path(output))
        if run.is_resumable():
            state = run.read_state()
            kept = (f"epoch {state['epoch'] + 1} up to step {state['step']}" if state["step"]
                    else f"{state['epoch']} epoch(s)")
            click.echo(f"\nInterrupted; the last backup holds {kept}. Resume with: "
                       f"{resume_command(ctx, output)}", err=True)
        else:
            click.echo("\nInterrupted before the first backup: nothing was kept.", err=True)
        ctx.exit(130)


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
    def export(run_dir, model_base_path, name, gpu_only, arithmetic, **task_options):
        path = runner.export(task, run_dir, model_base_path, name, gpu_only,
                             arithmetic=arithmetic, **task_options)
        click.echo(f"Exported {path} ({texts.exported})")

    export = _with([
        argument("run_dir", type=click.Path(path_type=Path),
                 help="A finished (or interrupted) training run directory."),
        option("--model-base-path", type=click.Path(path_type=Path), default="saved_models",
               show_default=True, help="Root of the TF Serving layout <name>/<version>/."),
        option("--name", default=task.name, show_default=True, help="Model name."),
        *options,
        option("--average-last", type=click.IntRange(min=1),
               help="Export the mean of the last N kept epochs' weights instead of the best "
                    "epoch's (train with --keep-epochs N to keep them)."),
        option("--gpu-only", is_flag=True,
               help="Hold cuDNN kernels (fastest on GPU hosts, unusable on CPU hosts). "
                    "By default the export holds a recurrence every host runs."),
        option("--precision", "arithmetic", default="float32", show_default=True,
               type=click.Choice(["float32", "mixed_bfloat16", "auto"]),
               help="The graph's products (weights stay float32): mixed_bfloat16 decodes "
                    "faster on CPUs with AMX, a little less exactly (docs/benchmarks.md); "
                    "auto: mixed_bfloat16 on a host without GPU whose CPU has AMX."),
    ], export)
    return click.command("export", cls=SectionedCommand,
                         epilog=examples_for(texts.examples, "export"), help=(
        "Export RUN_DIR's best model as the next SavedModel version (atomic).\n\n"
        "TF Serving and `apps serve` pick it up from <model-base-path>/<name>/<version>/."))(
            export)

