"""One tiny training run through the function the entry point calls, and the command line."""

import os

import pytest
import tensorflow as tf

from kerasgen.training import TrainConfig, WorkdirMismatchError, train_and_evaluate

CORPUS = "\n\n".join(
    f"ANNA: the {w} is bright tonight.\nBEN: and the {w} sings below."
    for w in ["moon", "river", "lamp", "field", "bell", "road", "star", "wind"] * 6
)


@pytest.fixture(scope="module")
def corpus_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("corpus") / "corpus.txt"
    path.write_text(CORPUS, encoding="utf-8")
    return str(path)


def _tiny_config(corpus_file, tmp_path, **overrides):
    values = dict(
        model="text_generator_tiny",
        data_path=corpus_file,
        epochs=2,
        batch_size=4,
        seq_len=16,
        export_dir=str(tmp_path / "exports"),
        num_samples=2,
        verbose=0,
    )
    values.update(overrides)
    return TrainConfig(**values)


def test_one_tiny_training_run_trains_evaluates_samples_and_exports(corpus_file, tmp_path):
    workdir = str(tmp_path / "work")
    result = train_and_evaluate(_tiny_config(corpus_file, tmp_path), workdir, log=lambda *_: None)
    # Learned something: the loss is below the uniform guess over the vocabulary.
    assert result.validation_loss < tf.math.log(float(result.tokenizer.vocab_size)).numpy()
    assert len(result.samples) == 2
    for name in ("config.json", "model.keras", "tokenizer/tokenizer.json"):
        assert os.path.exists(os.path.join(workdir, name)), name
    assert os.listdir(os.path.join(workdir, "checkpoints"))
    assert os.listdir(os.path.join(workdir, "logs"))
    # The export generates the same text as the in-process service for the same seed.
    loaded = tf.saved_model.load(result.export_path)
    inputs = dict(
        prompt=tf.constant(["ANNA:", ""]),
        max_new_tokens=tf.constant([20, 20]),
        temperature=tf.constant([1.0, 0.0]),
        top_k=tf.constant([0, 0]),
        top_p=tf.constant([1.0, 1.0]),
        seed=tf.constant([5, 6]),
    )
    exported = loaded.signatures["generate"](**inputs)["text"].numpy().tolist()
    assert exported == result.service.generate(**inputs)["text"].numpy().tolist()


def test_a_time_budget_stops_the_run_with_its_learning_rate_annealed(corpus_file, tmp_path):
    planned_steps = 100_000  # far more than 3 seconds allow
    config = _tiny_config(
        corpus_file,
        tmp_path,
        epochs=1,
        steps_per_epoch=planned_steps,
        schedule="cosine",
        learning_rate=3e-3,
        time_budget_seconds=3.0,
        export=False,
        num_samples=0,
    )
    result = train_and_evaluate(config, str(tmp_path / "work"), log=lambda *_: None)
    optimizer = result.model.optimizer
    assert 0 < int(optimizer.iterations.numpy()) < planned_steps
    # Cosine decay ends at a tenth of the peak: the clock got it there, not the steps.
    assert float(optimizer.learning_rate.numpy()) == pytest.approx(3e-4, rel=0.05)


def test_a_workdir_of_another_model_is_refused(corpus_file, tmp_path):
    workdir = str(tmp_path / "work")
    train_and_evaluate(
        _tiny_config(corpus_file, tmp_path, epochs=1, export=False), workdir, log=lambda *_: None
    )
    with pytest.raises(WorkdirMismatchError, match="tokenizer='character'"):
        train_and_evaluate(
            _tiny_config(corpus_file, tmp_path, tokenizer="word"), workdir, log=lambda *_: None
        )


@pytest.mark.parametrize(
    "content,problem",
    [
        (None, "no such file"),
        (b"", "empty"),
        (b"\x00\x01\x02binary\x00" * 10, "binary"),
        (b"\xff\xfe\xfa not utf-8 at all" * 10, "utf-8"),
        (b"tiny", "too small"),
        (b"a few words, fewer than one batch of training windows.\n" * 3, "too small"),
    ],
)
def test_bad_data_path_is_one_line_and_nonzero_exit(tmp_path, content, problem, train_cli):
    path = tmp_path / "data.txt"
    if content is not None:
        path.write_bytes(content)
    result = train_cli(
        f"--data_path={path}",
        f"--workdir={tmp_path / 'w'}",
        "--model=text_generator_tiny",
        cwd=str(tmp_path),
    )
    assert result.returncode != 0
    error_lines = [
        line for line in result.stderr.splitlines() if line.startswith("kerasgen.train: error:")
    ]
    assert len(error_lines) == 1, result.stderr[-2000:]
    assert str(path) in error_lines[0] and problem in error_lines[0].lower()
    assert "Traceback" not in result.stderr


def test_unknown_model_lists_the_valid_names(tmp_path, train_cli):
    result = train_cli("--model=nope", cwd=str(tmp_path))
    assert result.returncode != 0
    assert "text_generator" in result.stderr and "text_generator_gru" in result.stderr
