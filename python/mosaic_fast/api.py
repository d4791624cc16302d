"""The public entry point: :class:`Experiment` runs a Mosaic Learning network of your model on your data.

::

    import mosaic_fast as mf

    exp = mf.Experiment(model=make_net, train=(x_train, y_train), test=(x_test, y_test),
                        nodes=64, K=8, degree=8, partition="dirichlet", alpha=0.1, rounds=100)
    result = exp.run(out="runs/mine")     # out=None: in memory only
    result.metrics                        # pandas DataFrame, one row per evaluation
    result.params                         # final float32 (n, d) parameters
    result.node_model(3)                  # node 3's model as a torch.nn.Module

Settings take the names of the command line and the TOML files (:data:`mosaic_fast.settings.SETTINGS`);
the command line runs every experiment through this class too.
"""

from __future__ import annotations

import copy
import dataclasses
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .engine.experiment import Callbacks, Outcome, RunState, execute
from .engine.inputs import UserCode
from .errors import MosaicTypeError, MosaicValueError
from .launch import launched_by_torchrun
from .results.layout import config_of
from .settings import ExperimentConfig, coerce_settings
from .user_code import File, label_of

__all__ = ["Experiment", "Result", "RunState"]


class Experiment:
    """One Mosaic Learning experiment: a model, data, settings, and optional user code.

    Args:
        model: a built-in model name (``"gn-lenet"``, ``"lstm"``, ``"mf"``), a
            ``"module:factory"`` reference, a callable returning a ``torch.nn.Module`` (called once,
            under a seeded RNG: every node starts from that one initial model), or a module
            instance (copied). None: the dataset's built-in model.
        train: a built-in dataset name (``"fashion-mnist"``, ...), a ``"module:loader"`` reference
            (a function returning ``(train, test)``), a torch Dataset of ``(input, target)`` pairs,
            or an ``(inputs, targets)`` pair of tensors or arrays.
        test: the test data, in the same forms as ``train`` (only with your own ``train``).
        loss: ``(outputs, targets) -> scalar mean loss``; default cross-entropy for integer
            targets, mean squared error for float targets.
        metric: ``"accuracy"``, ``"rmse"``, ``"mse"``, ``"mae"`` or ``(outputs, targets) ->
            float`` over the test set (give it ``lower_is_better = True`` when it is an error).
        optimizer: ``"sgd"``, ``"adam"``, ``"adamw"``, a ``"module:Class"`` reference, a
            ``torch.optim.Optimizer`` class or a factory ``params -> Optimizer`` (elementwise rules
            only: one optimizer over the (n, d) buffer must equal n per-node optimizers).
        topology: a built-in graph mode, ``"edges:FILE"``, a callable ``(round, fragment) -> edge
            list`` (rows ``(src, dst)``: dst receives src's fragment), a static edge list, or the
            path of an edge-list / adjacency file.
        fragmenter: ``"contiguous"``, ``"random"``, ``"blocks"``, ``"assignment:FILE"``, or an
            integer array giving every coordinate's fragment.
        partition: ``"iid"``, ``"dirichlet"``, ``"shards"``, ``"natural"``, or one array of training
            sample indices per node (disjoint, none empty).
        on_round_end: ``f(state)`` or a list of them, called after every round.
        on_evaluate: ``f(state, metrics)`` or a list, called after every evaluation; a dict it
            returns adds extra metrics (name -> number) to ``metrics.jsonl`` and the summary.
        trackers: experiment trackers to send the run to: ``"tensorboard"``, ``"mlflow"``,
            ``"wandb"`` (the ``tracker`` setting; each an optional extra) and/or your own
            :class:`mosaic_fast.tracking.Tracker` objects.
        **settings: every other setting by name (``nodes=64, K=8, rounds=100, lr=0.05, ...``).

    Raises:
        MosaicValueError, MosaicTypeError: a bad setting or object, in one line naming it.
    """

    def __init__(
        self,
        model: Any = None,
        train: Any = None,
        test: Any = None,
        *,
        loss: Callable[..., Any] | None = None,
        metric: str | Callable[..., Any] | None = None,
        optimizer: Any = None,
        topology: Any = None,
        fragmenter: Any = None,
        partition: Any = None,
        on_round_end: Callable[..., Any] | Sequence[Callable[..., Any]] | None = None,
        on_evaluate: Callable[..., Any] | Sequence[Callable[..., Any]] | None = None,
        trackers: str | Sequence[Any] | None = None,
        **settings: Any,
    ) -> None:
        # What was passed, so that replace() can rebuild the experiment with some of it changed.
        self._arguments = dict(
            model=model,
            train=train,
            test=test,
            loss=loss,
            metric=metric,
            optimizer=optimizer,
            topology=topology,
            fragmenter=fragmenter,
            partition=partition,
            on_round_end=on_round_end,
            on_evaluate=on_evaluate,
            trackers=trackers,
            **settings,
        )
        values = coerce_settings(settings) if settings else {}
        self._trackers = _trackers(trackers, values)
        objects = _objects(values, model, optimizer, topology, fragmenter, partition)
        objects.update(_data(values, train, test))
        if metric is not None:
            objects["metric"] = metric
        if loss is not None:
            objects["loss"] = loss
        self.user = UserCode(**objects)
        self.callbacks = Callbacks(_listed(on_round_end), _listed(on_evaluate))
        self.config: ExperimentConfig = ExperimentConfig(**values).resolved()

    @classmethod
    def from_config(cls, config: ExperimentConfig, **objects: Any) -> Experiment:
        """An experiment of ``config``'s settings (plus any Python objects, as in the constructor:
        they override the settings that hold their labels)."""
        given = {k: v for k, v in objects.items() if v is not None}
        settings = {k: v for k, v in config.to_dict().items() if k not in given}
        if "train" in given:
            settings.pop("dataset")
        return cls(**given, **settings)

    def replace(self, **changes: Any) -> Experiment:
        """A new experiment with some arguments changed: settings or objects (``K=1``,
        ``topology=my_graph``, ``model=other_factory``); everything else stays."""
        arguments = dict(self._arguments)
        for name in changes:
            if name in _SETTING_ALIASES and name not in arguments:
                arguments.pop(_SETTING_ALIASES[name], None)
        arguments.update(changes)
        if "dataset" in changes and isinstance(arguments.get("train"), str):
            arguments.pop("train")
        if "train" in changes and isinstance(changes["train"], str):
            arguments.pop("dataset", None)
        return Experiment(**arguments)

    def run(
        self,
        out: str | os.PathLike[str] | None = None,
        *,
        resume: bool = False,
        quiet: bool = False,
        group: str | os.PathLike[str] | None = None,
    ) -> Result:
        """Run the experiment; write the run folder ``out`` (None: keep everything in memory).

        ``resume`` continues the run in ``out`` from its checkpoint (or returns the finished run).
        Shows a progress bar unless ``quiet`` (on a terminal; elsewhere one line per evaluation).
        ``group``: the folder above this run's folder when it is one of several tracked together
        (a sweep passes its folder): trackers file the runs together (MLflow parent run, W&B
        group). The trackers finish in the background after this returns (figures drawn and
        sent, final writes): :func:`mosaic_fast.tracking.wait` waits for them, as does the next
        tracked run and the interpreter's exit.

        Raises:
            RunDiverged: the loss or the parameters became non-finite (the folder records it).
            RunInterrupted: SIGINT/SIGTERM; the round finished and a checkpoint was written.
            CallbackError: a callback raised; everything written so far stays.
        """
        callbacks = self.callbacks
        if self.config.tracker is not None or self._trackers:
            from .tracking import Tracking, TrackingGroup, build_trackers

            trackers = build_trackers(self.config.tracker, self._trackers, config=self.config)
            tracking = Tracking(trackers, TrackingGroup.of(group) if group is not None else None)
            callbacks = dataclasses.replace(callbacks, observers=[*callbacks.observers, tracking])
        outcome = execute(
            self.config, out, quiet=quiet, resume=resume, user=self.user, callbacks=callbacks
        )
        return Result(outcome, self.config, Path(out) if out is not None else None)

    @classmethod
    def resume(cls, out: str | os.PathLike[str], *, quiet: bool = False, **objects: Any) -> Result:
        """Continue the run in ``out`` with the settings it was started with.

        A run made with Python objects (a model factory, data) needs the same objects again.
        It resumes as this process was launched: under torchrun, sharded over its ranks (any
        number: checkpoints hold the whole network), else in one process.
        """
        cfg = dataclasses.replace(config_of(out), distributed=launched_by_torchrun())
        return cls.from_config(cfg, **objects).run(out, resume=True, quiet=quiet)

    def __repr__(self) -> str:
        c = self.config
        return f"Experiment(dataset={c.dataset!r}, model={c.model!r}, nodes={c.nodes}, K={c.K})"


@dataclass
class Result:
    """What :meth:`Experiment.run` returns.

    Attributes: ``summary`` (the ``summary.json`` record), ``history`` (the evaluation records),
    ``config`` (the resolved settings), ``out`` (the run folder, or None).
    """

    outcome: Outcome
    config: ExperimentConfig
    out: Path | None

    @property
    def summary(self) -> dict[str, Any]:
        return self.outcome.summary

    @property
    def history(self) -> list[dict[str, Any]]:
        return self.outcome.history

    @property
    def trainer_strategy(self) -> str | None:
        """The strategy that trained the nodes (what ``trainer="auto"`` chose); None when a
        finished folder was only read back."""
        sim = self.outcome.simulation
        return sim.strategy if sim is not None else None

    @property
    def metrics(self) -> Any:
        """The evaluation records as a pandas DataFrame (the ``metrics.jsonl`` columns)."""
        import pandas as pd

        return pd.DataFrame.from_records(self.history)

    @property
    def params(self) -> Any:
        """The final parameters, a float32 CPU tensor (n, d): row i is node i's flat model."""
        return self._simulation().params().detach().to("cpu", copy=True)

    def node_model(self, i: int) -> Any:
        """Node ``i``'s final model as a standalone ``torch.nn.Module`` (CPU, eval mode)."""
        return self._simulation().node_model(i)

    def _simulation(self) -> Any:
        sim = self.outcome.simulation
        if sim is None:
            raise MosaicValueError(
                f"the run in {str(self.out)!r} had finished before; its final parameters are not "
                "stored (only metrics): run again into a new folder to get them"
            )
        return sim


# Settings that an argument of another name also sets.
_SETTING_ALIASES = {"dataset": "train"}


def _trackers(trackers: str | Sequence[Any] | None, values: dict[str, Any]) -> list[Any]:
    """The tracker objects among ``trackers``; the names go into the ``tracker`` setting."""
    tracker_list = [trackers] if isinstance(trackers, str) else list(trackers or ())
    names = [t for t in tracker_list if isinstance(t, str)]
    if names:
        if "tracker" in values:
            raise MosaicValueError("the trackers are given twice (trackers= and tracker=)")
        values["tracker"] = ",".join(names)
    return [t for t in tracker_list if not isinstance(t, str)]


def _objects(
    values: dict[str, Any],
    model: Any,
    optimizer: Any,
    topology: Any,
    fragmenter: Any,
    partition: Any,
) -> dict[str, Any]:
    """The Python objects among the arguments that settings can also name; their labels (or
    the strings given) go into ``values``."""
    objects: dict[str, Any] = {}
    for name, value in (
        ("model", _model_factory(model)),
        ("optimizer", optimizer),
        ("topology", _topology(topology)),
        ("fragmenter", fragmenter),
        ("partition", partition),
    ):
        if value is None:
            continue
        if name in values:
            raise MosaicValueError(f"{name} is given twice (as an argument and a setting)")
        if isinstance(value, str):
            values[name] = value
        else:
            values[name], objects[name] = label_of(value), value
    return objects


def _data(values: dict[str, Any], train: Any, test: Any) -> dict[str, Any]:
    """The user's data objects (none for a built-in dataset, whose name goes into ``values``)."""
    if isinstance(train, os.PathLike):
        raise MosaicTypeError("train must be a dataset name, a Dataset or (inputs, targets)")
    if isinstance(train, str):
        if test is not None:
            raise MosaicValueError(f"test= is not used with the built-in dataset {train!r}")
        if "dataset" in values:
            raise MosaicValueError("the dataset is given twice (train= and dataset=)")
        values["dataset"] = train
        return {}
    if train is not None:
        if test is None:
            raise MosaicValueError("test data is missing: pass test= with your own train=")
        pair = isinstance(train, (tuple, list))
        values.setdefault("dataset", "<data>" if pair else label_of(train))
        return {"train": train, "test": test}
    if test is not None:
        raise MosaicValueError("test= needs train= (your own training data)")
    return {}


def _listed(callbacks: Any) -> list[Callable[..., Any]]:
    if callbacks is None:
        return []
    listed = list(callbacks) if isinstance(callbacks, (list, tuple)) else [callbacks]
    for fn in listed:
        if not callable(fn):
            raise MosaicTypeError(f"callback {fn!r} is not callable")
    return listed


def _model_factory(model: Any) -> Any:
    """A module instance becomes a factory of copies; everything else is passed on."""
    from torch import nn

    if isinstance(model, nn.Module):
        return _Copies(model)
    return model


class _Copies:
    """Factory of deep copies of one module instance (every node starts from it)."""

    def __init__(self, module: Any) -> None:
        self.module = module
        self.__qualname__ = type(module).__name__

    def __call__(self) -> Any:
        return copy.deepcopy(self.module)


def _topology(topology: Any) -> Any:
    if isinstance(topology, os.PathLike):
        return File("topology", "edges", os.fspath(topology)).text
    return topology
