"""The work folder keeps what was trained: locked while in use, claimed only once the checks
pass, every run file atomic, damaged files reported in one line, a diverged run never
finished or exported."""

import json
import os
import subprocess
import sys

import pytest

from kerasgen.errors import UserInputError
from kerasgen.training import TrainConfig, WorkdirMismatchError, train_and_evaluate
from kerasgen.training.fitting import TrainingDivergedError
from kerasgen.work_folder import DamagedFileError, WorkFolder, WorkFolderInUseError

WORDS = ["moon", "river", "lamp", "field", "bell", "road", "star", "wind"]


def _quiet(*_):
    pass


@pytest.fixture(scope="module")
def text_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("text") / "corpus.txt"
    path.write_text(
        "\n\n".join(f"ANNA: the {w} is bright.\nBEN: and the {w} sings." for w in WORDS * 6),
        encoding="utf-8",
    )
    return str(path)


def _config(text_file, tmp_path, **overrides):
    values = dict(
        model="text_generator_tiny",
        data_path=text_file,
        epochs=1,
        steps_per_epoch=4,
        batch_size=4,
        seq_len=16,
        export_dir=str(tmp_path / "exports"),
        num_samples=0,
        verbose=0,
    )
    values.update(overrides)
    return TrainConfig(**values)


def test_a_rerun_that_would_change_the_record_is_refused(text_file, tmp_path):
    workdir = str(tmp_path / "w")
    train_and_evaluate(_config(text_file, tmp_path, export=False), workdir, log=_quiet)
    before = open(os.path.join(workdir, "config.json"), encoding="utf-8").read()
    for change in (dict(epochs=7), dict(learning_rate=0.5)):
        with pytest.raises(WorkdirMismatchError, match="a rerun keeps what was trained"):
            train_and_evaluate(_config(text_file, tmp_path, **change), workdir, log=_quiet)
    assert open(os.path.join(workdir, "config.json"), encoding="utf-8").read() == before
    # What does not change the training may differ: here, no export and no samples.
    train_and_evaluate(
        _config(text_file, tmp_path, export=False, num_samples=1), workdir, log=_quiet
    )


def test_a_translation_folder_refuses_another_source_tokenizer(tmp_path):
    pairs = tmp_path / "pairs.tsv"
    pairs.write_text("\n".join(f"{a} {b}\t{b} {a}" for a in WORDS for b in WORDS) + "\n")
    config = TrainConfig(
        model="seq2seq_tiny", data_path=str(pairs), epochs=1, steps_per_epoch=2, batch_size=8,
        export=False, num_samples=0, verbose=0,
    )  # fmt: skip
    workdir = str(tmp_path / "w")
    train_and_evaluate(config, workdir, log=_quiet)
    other = TrainConfig(**{**vars(config), "source_tokenizer": "word"})
    with pytest.raises(WorkdirMismatchError, match="source_tokenizer=None, not 'word'"):
        train_and_evaluate(other, workdir, log=_quiet)


def test_a_run_that_fails_its_checks_leaves_the_folder_unclaimed(text_file, tmp_path):
    workdir = str(tmp_path / "w")
    too_long = TrainConfig.for_model(
        "gpt_tiny", data_path=text_file, seq_len=64, export=False, num_samples=0, verbose=0
    )
    with pytest.raises(UserInputError, match="exceeds the context window"):
        train_and_evaluate(too_long, workdir, log=_quiet)
    assert not os.path.exists(os.path.join(workdir, "config.json"))
    assert not os.path.exists(os.path.join(workdir, "tokenizer"))
    fixed = TrainConfig(**{**vars(too_long), "seq_len": 16, "steps_per_epoch": 2})
    train_and_evaluate(fixed, workdir, log=_quiet)  # not refused as "another run"
    assert json.load(open(os.path.join(workdir, "config.json")))["seq_len"] == 16


def test_a_folder_in_use_by_another_process_is_refused_with_its_id(text_file, tmp_path):
    workdir = str(tmp_path / "w")
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time; from kerasgen.work_folder import WorkFolder; "
         "f = WorkFolder(sys.argv[1]); f.prepare(); f.lock(); print('locked', flush=True); "
         "time.sleep(120)", workdir],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(
            WorkFolderInUseError, match=f"in use by another run .process {holder.pid}"
        ):
            train_and_evaluate(_config(text_file, tmp_path), workdir, log=_quiet)
    finally:
        holder.kill()
        holder.wait()
    # The lock goes with its process: the folder is free again.
    train_and_evaluate(_config(text_file, tmp_path, export=False), workdir, log=_quiet)


@pytest.mark.parametrize("kind", ["file", "read-only"])
def test_a_workdir_or_export_dir_that_cannot_be_written_is_refused_before_training(
    text_file, tmp_path, kind
):
    blocked = tmp_path / "blocked"
    if kind == "file":
        blocked.write_text("not a folder")
    else:
        blocked.mkdir()
        os.chmod(blocked, 0o500)
    if os.geteuid() == 0 and kind == "read-only":
        pytest.skip("root writes into read-only folders")  # CI and developers may be root
    lines = []
    with pytest.raises(UserInputError, match="blocked"):
        train_and_evaluate(_config(text_file, tmp_path), str(blocked / "w"), log=lines.append)
    with pytest.raises(UserInputError, match="--export_dir="):
        train_and_evaluate(
            _config(text_file, tmp_path, export_dir=str(blocked / "exports")),
            str(tmp_path / "w"),
            log=lines.append,
        )
    assert not any("Corpus" in line for line in lines)  # nothing was read or trained


def test_a_diverged_run_exits_nonzero_exports_nothing_and_keeps_its_backup(text_file, tmp_path):
    workdir = str(tmp_path / "w")
    config = _config(
        text_file, tmp_path, learning_rate=1e38, clipnorm=0.0, steps_per_epoch=20,
        checkpoint_every_steps=1,
    )  # fmt: skip
    with pytest.raises(TrainingDivergedError, match="training diverged: the loss became") as error:
        train_and_evaluate(config, workdir, log=_quiet)
    assert "\n" not in str(error.value)
    assert not os.path.exists(os.path.join(workdir, "training.json"))
    assert not os.path.exists(tmp_path / "exports")
    state = json.load(open(os.path.join(workdir, "backup", "state.json")))
    assert os.path.exists(os.path.join(workdir, "backup", state["weights"]))


def test_a_damaged_newest_backup_falls_back_to_the_previous_one(text_file, tmp_path):
    workdir = str(tmp_path / "w")
    config = _config(text_file, tmp_path, steps_per_epoch=6, checkpoint_every_steps=2)
    backup_dir = os.path.join(workdir, "backup")
    _interrupted_run(text_file, tmp_path, workdir, steps=5)  # backups after steps 2 and 4
    assert os.path.exists(os.path.join(backup_dir, "state.previous.json"))
    os.truncate(os.path.join(backup_dir, "state.json"), 100)
    lines = []
    result = train_and_evaluate(config, workdir, log=lines.append)
    text = "\n".join(lines)
    assert "The newest backup is damaged" in text and "resuming from the previous one" in text
    assert f"Resumed from {backup_dir} at epoch 1 of 1, step 2 of 6" in text
    assert result.validation_loss > 0


def _interrupted_run(text_file, tmp_path, workdir, steps):
    """Trains `steps` steps of a 6-step epoch in a process that then dies (before the backup
    of step `steps`: the step timer's callback runs before the backup's)."""
    code = (
        "import os\n"
        "from kerasgen.training import TrainConfig, train_and_evaluate\n"
        "from kerasgen.training import fitting\n"
        "original = fitting.StepTimer\n"
        "class KillingTimer(original):\n"
        "    def on_train_batch_end(self, batch, logs=None):\n"
        "        super().on_train_batch_end(batch, logs)\n"
        f"        if batch + 1 >= {steps}: os._exit(9)\n"
        "fitting.StepTimer = KillingTimer\n"
        f"config = TrainConfig(model='text_generator_tiny', data_path={text_file!r}, epochs=1,\n"
        "    steps_per_epoch=6, batch_size=4, seq_len=16, num_samples=0, verbose=0,\n"
        f"    checkpoint_every_steps=2, export_dir={str(tmp_path / 'exports')!r})\n"
        f"train_and_evaluate(config, {workdir!r}, log=lambda *_: None)\n"
    )
    process = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300
    )
    assert process.returncode == 9, process.stderr[-2000:]


@pytest.mark.parametrize("name", ["config.json", "training.json", "tokenizer/tokenizer.json"])
def test_a_damaged_run_file_is_one_line_naming_it(text_file, tmp_path, name, train_cli):
    workdir = tmp_path / "w"
    train_and_evaluate(_config(text_file, tmp_path, export=False), str(workdir), log=_quiet)
    os.truncate(workdir / name, 10)
    result = train_cli(
        "--model=text_generator_tiny", f"--data_path={text_file}", "--epochs=1",
        "--steps_per_epoch=4", "--batch_size=4", "--seq_len=16", "--num_samples=0",
        "--verbose=0", "--export=false", f"--workdir={workdir}", cwd=str(tmp_path),
    )  # fmt: skip
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if "kerasgen.train: error:" in line]
    assert len(errors) == 1 and name.split("/")[-1] in errors[0], result.stderr[-2000:]
    assert "Traceback" not in result.stderr


def test_run_files_are_replaced_atomically(tmp_path):
    from kerasgen.work_folder import write_text_atomically

    path = tmp_path / "config.json"
    write_text_atomically(str(path), "first")
    write_text_atomically(str(path), "second")
    assert path.read_text() == "second"
    assert os.listdir(tmp_path) == ["config.json"]  # no temporary file left behind


def test_read_config_of_a_damaged_file_names_it(tmp_path):
    (tmp_path / "config.json").write_text('{"model": "text_gen')
    with pytest.raises(DamagedFileError, match="config.json: the run configuration is damaged"):
        WorkFolder(str(tmp_path)).read_config()


@pytest.mark.parametrize(
    "flag,message",
    [
        ("--learning_rate=nan", "kerasgen.train: error: --learning_rate=nan: must be a finite"),
        ("--clipnorm=inf", "--clipnorm=inf: must be a finite number"),
        ("--seed=-5", "seed"),
        ("--max_vocab_size=3", "max_vocab_size"),
        ("--time_budget_seconds=0", "time_budget_seconds must be positive"),
        ("--temperature=nan", "--temperature=nan: must be a finite number"),
    ],
)
def test_bad_numbers_are_one_line_and_nonzero_exit(tmp_path, train_cli, flag, message):
    result = train_cli("--model=text_generator_tiny", flag, f"--workdir={tmp_path / 'w'}",
                       cwd=str(tmp_path))  # fmt: skip
    assert result.returncode != 0
    assert message in result.stderr, result.stderr[-1500:]
    assert "Traceback" not in result.stderr
    assert not os.path.exists(tmp_path / "w" / "config.json")


@pytest.fixture
def small_disk(tmp_path):
    """A 1.5 MB file system (tmpfs) mounted in `tmp_path`: room for the run's first files but
    not for its backups. Mounting needs root, as CI and the developers' machines have."""
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1500k", "tmpfs", str(mount_point)],
        capture_output=True, text=True,
    )  # fmt: skip
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small file system here: {mounted.stderr.strip()}")
    yield mount_point
    subprocess.run(["umount", str(mount_point)], check=True)


def test_a_full_disk_is_one_line_before_anything_is_half_written(
    text_file, tmp_path, small_disk, train_cli
):
    flags = [
        "--model=text_generator_tiny", '--model_config={"rnn_units": 128}',
        f"--data_path={text_file}", "--epochs=1", "--steps_per_epoch=6", "--batch_size=4",
        "--seq_len=16", "--num_samples=0", "--verbose=0", "--checkpoint_every_steps=2",
        f"--export_dir={tmp_path / 'exports'}",
    ]  # fmt: skip
    result = train_cli(*flags, f"--workdir={small_disk / 'w'}", cwd=str(tmp_path))
    assert result.returncode == 1, result.stderr[-2000:]
    errors = [line for line in result.stderr.splitlines() if "kerasgen.train: error:" in line]
    assert len(errors) == 1 and "no space left on the disk of" in errors[0], result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    assert not [p for p in (small_disk / "w" / "backup").glob(".tmp-*")]  # nothing half written
