"""One run for every family: the recipe settings reach encoder-decoders, `--model_config`
sizes any preset, and `python -m kerasgen.export --workdir` re-exports any family."""

import json
import os
import subprocess
import sys

import keras
import pytest
import tensorflow as tf

from kerasgen.errors import UserInputError
from kerasgen.losses import SparseCrossentropy
from kerasgen.serving import DecodingConfig
from kerasgen.training import (
    TrainConfig,
    WorkdirMismatchError,
    service_for,
    train_and_evaluate,
)
from kerasgen.training.init_from import InitFromError

WORDS = ["moon", "river", "lamp", "field", "bell", "road", "star", "wind", "sea", "hill"]
DECODING = DecodingConfig(
    max_prompt_tokens=32, max_new_tokens_cap=16, max_new_tokens=12, temperature=0.0, num_beams=2
)


def _quiet(*_):
    pass


@pytest.fixture(scope="module")
def pairs_file(tmp_path_factory):
    lines = [f"{a} {b}\t{b} {a}" for a in WORDS for b in WORDS]
    path = tmp_path_factory.mktemp("pairs") / "pairs.tsv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(path)


@pytest.fixture(scope="module")
def text_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("text") / "corpus.txt"
    path.write_text(
        "\n\n".join(f"ANNA: the {w} is bright.\nBEN: and the {w} sings." for w in WORDS * 6),
        encoding="utf-8",
    )
    return str(path)


def _translation_config(pairs_file, tmp_path, **overrides):
    values = dict(
        model="seq2seq_attention_tiny",
        data_path=pairs_file,
        source_tokenizer="word",
        target_tokenizer="character",
        epochs=1,
        steps_per_epoch=3,
        batch_size=16,
        export_dir=str(tmp_path / "exports"),
        num_samples=0,
        verbose=0,
    )
    values.update(overrides)
    return TrainConfig(**values)


def test_a_translation_run_takes_the_recipe_settings_and_reexports(pairs_file, tmp_path):
    config = _translation_config(
        pairs_file,
        tmp_path,
        optimizer="adamw",
        weight_decay=0.01,
        schedule="cosine",
        warmup_steps=2,
        jit_compile=True,
        label_smoothing=0.1,
    )
    workdir = str(tmp_path / "wd")
    result = train_and_evaluate(config, workdir, decoding=DECODING, log=_quiet)
    optimizer = result.model.optimizer
    assert isinstance(optimizer, keras.optimizers.AdamW)
    assert optimizer.weight_decay == pytest.approx(0.01)
    # Warmup then cosine decay over the planned steps: 3 steps, the rate past its peak.
    assert 0 < float(optimizer.learning_rate.numpy()) < config.learning_rate
    assert result.model.jit_compile is True and config.trains_with_xla()
    # "auto" is Keras's: XLA where the machine has an accelerator.
    accelerated = any(d.device_type != "CPU" for d in tf.config.list_physical_devices())
    assert TrainConfig(jit_compile="auto").trains_with_xla() is accelerated
    assert not TrainConfig(jit_compile=False).trains_with_xla()
    recorded = json.loads(open(os.path.join(workdir, "config.json"), encoding="utf-8").read())
    assert (recorded["optimizer"], recorded["schedule"], recorded["warmup_steps"]) == (
        "adamw",
        "cosine",
        2,
    )
    assert recorded["jit_compile"] is True
    assert recorded["plan"] == {"total_steps": 3, "warmup_steps": 2}
    assert recorded["label_smoothing"] == 0.1
    assert isinstance(result.model.loss, SparseCrossentropy)
    assert result.model.loss.label_smoothing == 0.1
    assert recorded["length_limit"]["ratio"] > 0

    exported = subprocess.run(
        [sys.executable, "-m", "kerasgen.export", f"--workdir={workdir}",
         f"--export_dir={tmp_path / 'again'}", "--max_new_tokens=12", "--length_ratio=0"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert exported.returncode == 0, exported.stderr[-2000:]
    version = tmp_path / "again" / "seq2seq_attention_tiny" / "1"
    loaded = tf.saved_model.load(str(version))
    outputs = loaded.signatures["translate"](
        source=tf.constant(["moon river"]),
        max_new_tokens=tf.constant([12]),
        temperature=tf.constant([0.0]),
        top_k=tf.constant([0]),
        top_p=tf.constant([1.0]),
        seed=tf.constant([0]),
    )
    # The same greedy translation as the trained model in this process, without a length
    # limit as the re-export (--length_ratio=0).
    unlimited, _ = service_for(workdir, DecodingConfig(length_ratio=0.0), measured_limit=False)
    expected = unlimited.translate(
        tf.constant(["moon river"]),
        tf.constant([12]),
        tf.constant([0.0]),
        tf.constant([0]),
        tf.constant([1.0]),
        tf.constant([0]),
    )
    assert outputs["text"].numpy().tolist() == expected["text"].numpy().tolist()
    metadata = json.loads((version / "assets" / "kerasgen_export.json").read_text())
    assert metadata["train_config"]["optimizer"] == "adamw"
    assert metadata["decoding"]["temperature"] == 0.0  # translation's default: greedy
    # An export applies the length limit the run measured (the run's own export, and
    # `service_for` by default), unless told otherwise: `export --length_ratio=0` turns it off.
    trained = tmp_path / "exports" / "seq2seq_attention_tiny" / "1" / "assets"
    trained_metadata = json.loads((trained / "kerasgen_export.json").read_text())
    assert trained_metadata["decoding"]["length_ratio"] == recorded["length_limit"]["ratio"]
    assert metadata["decoding"]["length_ratio"] == 0.0
    assert unlimited.config.length_ratio == 0.0
    measured, _ = service_for(workdir, DecodingConfig(length_ratio=0.0))
    assert measured.config.length_ratio == recorded["length_limit"]["ratio"]


def test_model_config_overrides_are_recorded_and_kept(pairs_file, tmp_path):
    sizes = {"rnn_units": 24, "embedding_dim": 12, "dropout": 0.1}
    config = _translation_config(pairs_file, tmp_path, model_config=sizes, export=True)
    workdir = str(tmp_path / "wd")
    result = train_and_evaluate(config, workdir, decoding=DECODING, log=_quiet)
    assert (result.model.rnn_units, result.model.embedding_dim) == (24, 12)
    recorded = json.loads(open(os.path.join(workdir, "config.json"), encoding="utf-8").read())
    assert recorded["model_config"]["rnn_units"] == 24
    assert recorded["model_config"]["attention"] == "bahdanau"  # the preset's, resolved
    metadata = json.loads(
        open(os.path.join(result.export_path, "assets", "kerasgen_export.json")).read()
    )
    assert metadata["train_config"]["model_config"]["dropout"] == 0.1
    assert metadata["model_config"]["rnn_units"] == 24
    # A rerun with other sizes would not be the run the folder records.
    with pytest.raises(WorkdirMismatchError, match="model_config=") as error:
        train_and_evaluate(
            _translation_config(pairs_file, tmp_path, model_config={"rnn_units": 32}),
            workdir,
            log=_quiet,
        )
    assert "\n" not in str(error.value)
    # Starting from it with other sizes is refused in one line.
    with pytest.raises(InitFromError, match="rnn_units=24 .not 32."):
        train_and_evaluate(
            _translation_config(
                pairs_file, tmp_path, init_from=workdir, model_config={"rnn_units": 32}
            ),
            str(tmp_path / "tuned"),
            log=_quiet,
        )


@pytest.mark.parametrize(
    # A work folder as the source is the common case the language-model tests cover too; the
    # export, whose two vocabularies the SavedModel renames, is the one to run every time.
    "kind",
    [pytest.param("work folder", marks=pytest.mark.slow), "export"],
)
def test_init_from_a_translation_run_starts_from_its_weights(pairs_file, tmp_path, kind):
    source = train_and_evaluate(
        _translation_config(pairs_file, tmp_path, export=True),
        str(tmp_path / "a"),
        decoding=DECODING,
        log=_quiet,
    )
    path = str(tmp_path / "a") if kind == "work folder" else source.export_path
    tuned = train_and_evaluate(
        _translation_config(pairs_file, tmp_path, init_from=path, learning_rate=0.0),
        str(tmp_path / "b"),
        log=_quiet,
    )
    # At learning rate 0 fine-tuning changes nothing: the source's weights, exactly.
    for got, expected in zip(tuned.model.get_weights(), source.model.get_weights(), strict=True):
        assert (got == expected).all()
    # Each side's own vocabulary (the export holds both under renamed asset files).
    for name in ("source_tokenizer", "target_tokenizer"):
        ours = open(tuned.tokenizers[name].vocabulary_file, "rb").read()
        assert ours == open(source.tokenizers[name].vocabulary_file, "rb").read()


@pytest.mark.parametrize(
    "model_config,message",
    [
        ('{"rnn_unitz": 512}', "'rnn_unitz' is not a hyperparameter of --model=seq2seq_tiny"),
        ('{"rnn_units": "big"}', "rnn_units='big' is a str, but --model=seq2seq_tiny takes a int"),
        ("[1, 2]", "must be a JSON object"),
        ("{not json", "--model_config: not valid JSON"),
        ("sizes.json", "neither a JSON object nor an existing .json file"),
    ],
)
def test_a_bad_model_config_is_one_line(tmp_path, train_cli, model_config, message):
    result = train_cli(
        "--model=seq2seq_tiny", f"--model_config={model_config}", f"--workdir={tmp_path / 'w'}",
        cwd=str(tmp_path),
    )  # fmt: skip
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if "kerasgen.train: error:" in line]
    assert len(errors) == 1 and message in errors[0], result.stderr[-1500:]
    if "hyperparameter" in message:
        assert "valid keys: attention, bidirectional, dropout, embedding_dim" in errors[0]
    assert not os.path.exists(tmp_path / "w" / "config.json")


def test_model_config_reads_a_json_file(text_file, tmp_path):
    from kerasgen.config_flags import _parse_json_object

    path = tmp_path / "sizes.json"
    path.write_text('{"rnn_units": 8}')
    assert _parse_json_object("model_config", str(path)) == {"rnn_units": 8}
    config = TrainConfig(
        model="text_generator_tiny",
        model_config=_parse_json_object("model_config", str(path)),
        data_path=text_file,
        epochs=1,
        steps_per_epoch=2,
        batch_size=4,
        seq_len=16,
        export=False,
        num_samples=0,
        verbose=0,
    )
    result = train_and_evaluate(config, str(tmp_path / "w"), log=_quiet)
    assert result.model.rnn_units == 8


def test_a_recipe_warmup_longer_than_the_run_shrinks_with_a_note(text_file, tmp_path):
    lines = []
    config = TrainConfig.for_model(
        "gpt",
        model_config={"width": 16, "num_layers": 1, "num_heads": 2, "mlp_width": 32,
                      "context_length": 16},
        data_path=text_file, seq_len=16, batch_size=4, steps_per_epoch=5, jit_compile=False,
        steps_per_execution=1, export=False, num_samples=0, verbose=0,
    )  # fmt: skip
    result = train_and_evaluate(config, str(tmp_path / "w"), log=lines.append)
    assert "the gpt recipe's 100 warmup steps exceed this run's 5 steps" in "\n".join(lines)
    assert result.config.plan == {"total_steps": 5, "warmup_steps": 0}
    # An explicit warmup that does not fit is an error.
    with pytest.raises(UserInputError, match="--warmup_steps=9 does not fit a run of 5 steps"):
        train_and_evaluate(
            TrainConfig(**{**vars(config), "warmup_steps": 9, "model_config": None}),
            str(tmp_path / "x"),
            log=_quiet,
        )
