"""Training on several devices or machines: `--strategy=default|mirrored|multi_worker|tpu`.

- `default`: TensorFlow's default strategy, one device (what a run without the flag does).
- `mirrored`: `tf.distribute.MirroredStrategy` over this machine's GPUs, or its logical CPU
  devices when it has no GPU.
- `multi_worker`: `tf.distribute.MultiWorkerMirroredStrategy` over the machines that the
  `TF_CONFIG` environment variable lists, one process per machine.
- `tpu`: `tf.distribute.TPUStrategy` on the TPU at `--tpu` (`grpc://host:port`, a Cloud TPU
  name, or `local` on a TPU VM).

Every strategy is synchronous data parallelism: the model's variables are mirrored on every
replica, each step splits one batch of `TrainConfig.batch_size` windows (the GLOBAL batch) across
the replicas, and the gradients are summed across them before one update. So a run gives
the same loss for the same global batch whatever the replica count (once the Keras 3 traps
that `kerasgen.training.keras_fixes` patches are out of the way).

`TF_CONFIG` is JSON naming the cluster and this process's place in it, e.g. for the second of
two workers:

    {"cluster": {"worker": ["10.0.0.1:2222", "10.0.0.2:2222"]},
     "task": {"type": "worker", "index": 1}}

The chief (the `chief` task, or worker 0 when the cluster has no `chief` job) alone writes the
work folder's files and the export; every worker takes part in every collective step
(training, evaluation), since each step waits for all of them.
"""

import json
import os
import re
import socket
import tempfile

import tensorflow as tf

from kerasgen.errors import UserInputError

STRATEGIES = ("default", "mirrored", "multi_worker", "tpu")

# The jobs of a TF_CONFIG cluster that MultiWorkerMirroredStrategy trains with.
_WORKER_JOBS = ("chief", "worker")
_ADDRESS = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[^\s:\[\]/]+):(\d+)$")  # host:port, [IPv6]:port
_TPU_CONNECT_TIMEOUT_SECONDS = 10  # TensorFlow waits forever for an unreachable TPU worker
_STRATEGIES_MADE = {}  # (name, tpu) -> the strategy this process made (see make_strategy)


class DistributionError(UserInputError):
    """A strategy cannot be set up as asked: a bad `TF_CONFIG`, `--tpu` or `--strategy`."""


def parse_tf_config(text):
    """Reads and checks a `TF_CONFIG` value for `MultiWorkerMirroredStrategy`.

    Args:
        text: the environment variable's value.

    Returns:
        The parsed dict: `{"cluster": {job: [address, ...]}, "task": {"type", "index"}}`.

    Raises:
        DistributionError: one line naming the field at fault: not JSON, not an object,
            missing `cluster` or `task`, a job other than chief and worker, an address that is
            not `host:port`, more than one chief, a task type not in the cluster, an index out
            of range.
    """
    try:
        config = json.loads(text)
    except json.JSONDecodeError as error:
        raise DistributionError(f"TF_CONFIG is not JSON: {error}") from None
    if not isinstance(config, dict):
        raise DistributionError(f"TF_CONFIG must be a JSON object, not {type(config).__name__}")
    if "cluster" not in config:
        raise DistributionError('TF_CONFIG has no "cluster" (the job name -> addresses map)')
    if "task" not in config:
        raise DistributionError(
            'TF_CONFIG has no "task" (this process\'s {"type": ..., "index": ...})'
        )
    cluster, task = config["cluster"], config["task"]
    if not isinstance(cluster, dict) or not cluster:
        raise DistributionError(
            'TF_CONFIG "cluster" must map job names to lists of "host:port" addresses'
        )
    for job, addresses in cluster.items():
        if job not in _WORKER_JOBS:
            raise DistributionError(
                f'TF_CONFIG "cluster" has job {job!r}; the multi_worker strategy uses '
                f"{' and '.join(_WORKER_JOBS)} only"
            )
        if not isinstance(addresses, list) or not addresses:
            raise DistributionError(
                f'TF_CONFIG "cluster.{job}" must be a non-empty list of "host:port" addresses'
            )
        for position, address in enumerate(addresses):
            match = _ADDRESS.match(address) if isinstance(address, str) else None
            if match is None or not 0 < int(match.group(2)) < 65536:
                raise DistributionError(
                    f'TF_CONFIG "cluster.{job}[{position}]" is {address!r}, not a "host:port" '
                    "address"
                )
    if len(cluster.get("chief", [])) > 1:
        raise DistributionError('TF_CONFIG "cluster.chief" must hold one address')
    all_addresses = [address for addresses in cluster.values() for address in addresses]
    if len(set(all_addresses)) < len(all_addresses):
        raise DistributionError('TF_CONFIG "cluster" lists an address twice')
    if not isinstance(task, dict):
        raise DistributionError('TF_CONFIG "task" must be an object: {"type": ..., "index": ...}')
    if "type" not in task:
        raise DistributionError('TF_CONFIG "task" has no "type" (e.g. "worker")')
    if task["type"] not in cluster:
        raise DistributionError(
            f'TF_CONFIG "task.type" is {task["type"]!r}, not a job of "cluster" '
            f"({', '.join(cluster)})"
        )
    index = task.get("index")
    if isinstance(index, bool) or not isinstance(index, int):
        raise DistributionError(
            f'TF_CONFIG "task.index" must be an integer, not {index!r}'
            if "index" in task
            else 'TF_CONFIG "task" has no "index"'
        )
    size = len(cluster[task["type"]])
    if not 0 <= index < size:
        raise DistributionError(
            f'TF_CONFIG "task.index" is {index}, out of range for the {size} '
            f'"{task["type"]}" address{"es" if size > 1 else ""}'
        )
    return config


def is_chief_task(task_type, task_index, jobs):
    """Whether a task is the cluster's chief: the `chief` task, or worker 0 without one.

    Args:
        task_type: e.g. "worker".
        task_index: the task's index within its job.
        jobs: the cluster's job names.
    """
    if "chief" in jobs:
        return task_type == "chief"
    return task_type == "worker" and task_index == 0


def check_time_budget(strategy_name, time_budget_seconds):
    """Refuses a wall-time budget across machines.

    Each worker would read its own clock: one that stops a step before the others leaves them
    waiting in a collective, and their learning rates (a `BudgetedSchedule` follows the clock)
    would differ. One machine's strategies share one clock and are fine.

    Raises:
        DistributionError: `time_budget_seconds` with `multi_worker`.
    """
    if time_budget_seconds and strategy_name == "multi_worker":
        raise DistributionError(
            "--time_budget_seconds cannot be used with --strategy=multi_worker (each worker "
            "would stop by its own clock, at a different step); bound the run with --epochs "
            "and --steps_per_epoch instead"
        )


def make_strategy(name, *, tpu=None):
    """The `tf.distribute.Strategy` called `name`.

    `multi_worker` must be made before TensorFlow runs anything in the process (it configures
    the collective ops), so trainers call this first.

    Args:
        name: one of `STRATEGIES`.
        tpu: for `tpu`, the TPU's address: `grpc://host:port`, a Cloud TPU name, or `local`.

    Returns:
        The strategy; `tf.distribute.get_strategy()` (the default one) for `default`. A
        process makes each strategy once and returns it again to later calls: two strategies
        of the same devices in one process number their collective operations alike, and
        TensorFlow then mixes up the second's with the first's ("Shape mismatch in the
        collective instance").

    Raises:
        DistributionError: unknown name; `--tpu` without `--strategy=tpu` or the reverse; an
            unreachable TPU; `multi_worker` without `TF_CONFIG`, or with a malformed one.
    """
    if name not in STRATEGIES:
        raise DistributionError(
            f"Unknown strategy {name!r}; valid strategies: {', '.join(STRATEGIES)}"
        )
    if tpu and name != "tpu":
        raise DistributionError(f"--tpu={tpu} is given, but --strategy is {name}, not tpu")
    if name == "default":
        return tf.distribute.get_strategy()
    if (name, tpu) in _STRATEGIES_MADE:
        return _STRATEGIES_MADE[name, tpu]
    if name == "mirrored":
        # Without GPUs, TensorFlow would mirror onto CPU:0 alone; the logical CPU devices (one
        # unless configured) let a CPU-only machine test the multi-replica path.
        devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
        strategy = tf.distribute.MirroredStrategy([device.name for device in devices])
    elif name == "multi_worker":
        strategy = _multi_worker_strategy()
    else:
        strategy = _tpu_strategy(tpu)
    _STRATEGIES_MADE[name, tpu] = strategy
    return strategy


def _multi_worker_strategy():
    if not os.environ.get("TF_CONFIG"):
        raise DistributionError(
            "--strategy=multi_worker needs the TF_CONFIG environment variable (the cluster's "
            'addresses and this process\'s task, e.g. {"cluster": {"worker": ["host1:2222", '
            '"host2:2222"]}, "task": {"type": "worker", "index": 0}})'
        )
    tf_config = parse_tf_config(os.environ["TF_CONFIG"])
    _check_own_port_free(tf_config)
    try:
        return tf.distribute.MultiWorkerMirroredStrategy()
    except RuntimeError as error:
        if "program startup" not in str(error):
            raise
        raise DistributionError(
            "--strategy=multi_worker must be set up before TensorFlow runs anything in the "
            "process; start training in a fresh process"
        ) from None


def _check_own_port_free(tf_config):
    """Refuses, in one line, a TF_CONFIG whose own address has its port taken: TensorFlow
    would fail to start its gRPC server with a page of errors, or wait for good."""
    task = tf_config["task"]
    address = tf_config["cluster"][task["type"]][task["index"]]
    port = int(_ADDRESS.match(address).group(2))
    with socket.socket() as probe:
        # A port left in TIME_WAIT by an earlier run is free to listen on again.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("", port))
            probe.listen()
        except OSError as error:
            raise DistributionError(
                f'TF_CONFIG "task" {task["type"]} {task["index"]} listens on {address}, but port '
                f"{port} is in use ({error.strerror}); stop what holds it or give this task "
                "another port"
            ) from None


def _tpu_strategy(address):
    if not address:
        raise DistributionError(
            "--strategy=tpu needs --tpu: grpc://host:port, a Cloud TPU name, or local on a TPU VM"
        )
    try:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=address)
        master = resolver.master()
    except Exception as error:  # noqa: BLE001 - Cloud lookups raise many kinds
        raise DistributionError(f"--tpu={address}: cannot find the TPU ({error})") from None
    if master.startswith("grpc://"):
        _check_reachable(address, master[len("grpc://") :])
    try:
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
    except (tf.errors.OpError, ValueError, RuntimeError) as error:
        reason = (str(error).strip() or repr(error)).splitlines()[0].split(". ")[0]
        raise DistributionError(f"--tpu={address}: no usable TPU ({reason})") from None
    return tf.distribute.TPUStrategy(resolver)


def _check_reachable(flag_value, host_port):
    """TensorFlow blocks forever connecting to an unreachable TPU worker: try TCP first."""
    host, _, port = host_port.rpartition(":")
    try:
        with socket.create_connection(
            (host.strip("[]"), int(port)), timeout=_TPU_CONNECT_TIMEOUT_SECONDS
        ):
            pass
    except (OSError, ValueError) as error:
        raise DistributionError(
            f"--tpu={flag_value}: the TPU at {host_port} is unreachable ({error})"
        ) from None


def is_default(strategy):
    """Whether `strategy` is TensorFlow's default (no distribution); call outside any scope."""
    return strategy is tf.distribute.get_strategy()


def is_chief(strategy):
    """Whether this process writes the run's files: always, except on a non-chief worker of
    a `MultiWorkerMirroredStrategy` (see `is_chief_task`)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) or resolver is None:
        return True
    jobs = resolver.cluster_spec().jobs
    if not jobs:  # a single worker without TF_CONFIG
        return True
    return is_chief_task(resolver.task_type, resolver.task_id, jobs)


def num_replicas(strategy):
    """Replicas each global batch is split across (devices on every worker)."""
    return strategy.num_replicas_in_sync


def check_global_batch(batch_size, strategy):
    """Refuses a global batch that does not split evenly across the replicas.

    Raises:
        DistributionError: `batch_size` is not a multiple of the replica count.
    """
    replicas = num_replicas(strategy)
    if batch_size % replicas:
        raise DistributionError(
            f"--batch_size={batch_size} is the global batch and must split evenly across the "
            f"{replicas} replicas; use a multiple of {replicas}"
        )


def shard_by_data(dataset):
    """`dataset` sharded by batch across workers when a strategy distributes it.

    The pipelines build their examples from in-memory strings, with no files to shard, so
    tf.data's default (AUTO: files first) would fall back to DATA with a warning per dataset.
    DATA gives each worker its share of every global batch. Without a strategy the option
    does nothing.
    """
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)


def wait_for_workers(strategy):
    """Returns when every worker of a multi-worker run has called it (a collective sum); at
    once otherwise. Called at the end of a run: the chief hosts the cluster's coordination
    service, and a worker still running when the chief exits fails its heartbeats."""
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return

    @tf.function  # run eagerly, the strategy warns of its overhead
    def count_workers():
        ones = strategy.run(lambda: tf.constant(1.0))
        return strategy.reduce(tf.distribute.ReduceOp.SUM, ones, axis=None)

    count_workers()


def scratch_folder():
    """A temporary folder for a non-chief worker's files (its tokenizer), which must not land
    in the shared work folder; the caller removes it."""
    return tempfile.mkdtemp(prefix="kerasgen-worker-")


def unreplicated_copy(model, strategy, build):
    """The trained model with ordinary variables, for saving, sampling and exporting.

    Under a strategy the model's variables are distributed (`MirroredVariable`, TPU
    variables), which an export should not depend on. So the weights are copied into a fresh
    model built outside the strategy's scope, whose variables are ordinary ones whatever the
    strategy. Under the default strategy, `model` itself is returned.

    Args:
        model: the trained model.
        strategy: the run's strategy.
        build: a function of no arguments returning a freshly built model of the same
            architecture (its variables are created here, outside any strategy scope).
    """
    if is_default(strategy):
        return model
    copy = build()
    copy.set_weights(model.get_weights())
    return copy
