"""The ``tinyllm`` command (tinyllm.cli): train, generate, eval, bench and their error paths,
called in-process through ``main(argv)`` and, for the entry point and a real kill, as a
subprocess."""

import argparse
import json
import math
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import tinyllm
from tinyllm.cli import HINT, build_parser, main, run_bench
from tinyllm.data import CharTokenizer
from tinyllm.models import LSTMClassifier
from tinyllm.training import TrainConfig, load_checkpoint, save_checkpoint, train

CORPUS = "the quick brown fox jumps over the lazy dog. " * 40
TINY = ["--n-layer", "1", "--n-head", "2", "--n-embd", "16", "--block-size", "16",
        "--batch-size", "4", "--eval-batches", "2", "--no-progress"]


def tiny_train_args(folder, *more):
    corpus = folder / "corpus.txt"
    if not corpus.exists():
        corpus.write_text(CORPUS)
    return ["train", "--corpus", str(corpus), "--out", str(folder / "out")] + TINY + list(more)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A checkpoint of a tiny GPT trained for 30 steps by ``tinyllm train``."""
    folder = tmp_path_factory.mktemp("cli")
    assert main(tiny_train_args(folder, "--steps", "30", "--eval-every", "10",
                                "--sample-tokens", "20", "--lr", "1e-2")) == 0
    return folder / "out" / "ckpt.npz"


def run_error(capsys, argv):
    """(stderr) of a command that must fail with status 2 and a one-line message."""
    assert main(argv) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("tinyllm %s: error: " % argv[0])
    assert "Traceback" not in captured.out + captured.err
    return lines[0]


# ----- what works -----------------------------------------------------------------------------
def test_bare_tinyllm_prints_the_commands_and_a_hint(capsys):
    assert main([]) == 0
    out = capsys.readouterr().out
    for command in ("train", "generate", "eval", "serve", "bench", "demo"):
        assert command in out
    assert HINT in out


def test_train_prints_samples_and_writes_checkpoint_and_plot(trained, capsys):
    checkpoint = load_checkpoint(trained)
    assert checkpoint.step == 30 and checkpoint.model_type == "gpt"
    assert checkpoint.history["val_loss"][-1] < checkpoint.history["val_loss"][0]
    assert (trained.parent / "loss.png").exists()


def test_train_output_shows_both_samples(tmp_path, capsys):
    assert main(tiny_train_args(tmp_path, "--steps", "2", "--sample-tokens", "8")) == 0
    out = capsys.readouterr().out
    assert "sample at step 0" in out and "sample at step 2" in out and "done: step 2" in out


def test_generate_with_a_seed_repeats_its_sample(trained, capsys):
    argv = ["generate", "--checkpoint", str(trained), "--prompt", "the ", "--seed", "3",
            "--max-new-tokens", "25"]
    assert main(argv) == 0
    first = capsys.readouterr().out
    assert main(argv) == 0
    assert capsys.readouterr().out == first
    assert first.startswith("the ") and len(first) == len("the ") + 25 + 1


def test_streaming_prints_the_same_text(trained, capsys):
    argv = ["generate", "--checkpoint", str(trained), "--prompt", "the ", "--seed", "5",
            "--max-new-tokens", "20", "--top-k", "5", "--top-p", "0.9",
            "--repetition-penalty", "1.3"]
    assert main(argv) == 0
    plain = capsys.readouterr().out
    assert main(argv + ["--stream"]) == 0
    assert capsys.readouterr().out == plain


def test_greedy_and_beam_search_are_deterministic(trained, capsys):
    for extra in (["--greedy"], ["--beam", "3"]):
        outputs = []
        for seed in ("1", "2"):
            assert main(["generate", "--checkpoint", str(trained), "--prompt", "the",
                         "--max-new-tokens", "10", "--seed", seed] + extra) == 0
            outputs.append(capsys.readouterr().out)
        assert outputs[0] == outputs[1]


def test_a_long_prompt_is_cropped_with_a_note(trained, capsys):
    assert main(["generate", "--checkpoint", str(trained), "--prompt", "the lazy dog " * 3,
                 "--max-new-tokens", "3", "--greedy"]) == 0
    assert "note: the prompt is 39 tokens long, longer than the model's context of 16" \
        in capsys.readouterr().err


def test_eval_reports_loss_perplexity_and_bits_per_char(trained, capsys):
    assert main(["eval", "--checkpoint", str(trained), "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["perplexity"] == pytest.approx(math.exp(metrics["loss"]), rel=1e-12)
    assert metrics["bits_per_char"] == pytest.approx(metrics["loss"] / math.log(2), rel=1e-12)
    assert main(["eval", "--checkpoint", str(trained.parent)]) == 0
    out = capsys.readouterr().out
    assert "perplexity" in out and "bits_per_char" in out and "at step 30" in out


def test_seq2seq_trains_and_reports_bleu(tmp_path, capsys):
    assert main(["train", "--model", "seq2seq", "--steps", "3", "--eval-every", "3",
                 "--out", str(tmp_path)] + TINY) == 0
    assert main(["eval", "--checkpoint", str(tmp_path), "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert 0.0 <= metrics["bleu"] <= 100.0 and "exact_match" in metrics
    assert main(["generate", "--checkpoint", str(tmp_path), "--prompt", "2718",
                 "--beam", "2"]) == 0
    assert set(capsys.readouterr().out.strip()) <= set("0123456789")


def test_the_classifier_trains_and_reports_accuracy(tmp_path, capsys):
    assert main(["train", "--model", "classifier", "--steps", "3", "--eval-every", "3",
                 "--out", str(tmp_path)] + TINY) == 0
    assert load_checkpoint(tmp_path).model_type == "lstm_classifier"
    assert main(["eval", "--checkpoint", str(tmp_path), "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert 0.0 <= metrics["accuracy"] <= 1.0


def test_serve_binds_to_localhost_by_default():
    args = build_parser().parse_args(["serve"])
    assert args.host == "127.0.0.1" and args.port == 8000


# ----- bad input: one line, exit status 2 ---------------------------------------------------
def test_an_empty_corpus_file(tmp_path, capsys):
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    assert "corpus file %s is empty" % empty in run_error(capsys, [
        "train", "--corpus", str(empty), "--out", str(tmp_path)])


def test_a_binary_corpus_file(tmp_path, capsys):
    binary = tmp_path / "image.bin"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    assert "looks binary" in run_error(capsys, ["train", "--corpus", str(binary),
                                                "--out", str(tmp_path)])


def test_a_missing_corpus(tmp_path, capsys):
    assert "not found" in run_error(capsys, ["train", "--corpus", str(tmp_path / "nope.txt"),
                                             "--out", str(tmp_path)])


def test_a_missing_and_a_truncated_checkpoint(trained, tmp_path, capsys):
    assert "does not exist" in run_error(capsys, ["generate", "--checkpoint",
                                                  str(tmp_path / "none.npz")])
    cut = tmp_path / "cut.npz"
    cut.write_bytes(trained.read_bytes()[:5000])
    assert "checkpoint %s is truncated or corrupt" % cut in run_error(
        capsys, ["generate", "--checkpoint", str(cut)])
    assert "truncated or corrupt" in run_error(capsys, ["eval", "--checkpoint", str(cut)])


def test_a_prompt_with_unknown_characters(trained, capsys):
    message = run_error(capsys, ["generate", "--checkpoint", str(trained), "--prompt",
                                 "the naïve ☃"])
    assert "never saw: 'ï' (U+00EF), '☃' (U+2603)" in message


def test_a_classifier_checkpoint_without_a_training_config(tmp_path, capsys):
    tokenizer = CharTokenizer.from_text("abc", special_tokens=["<pad>"])
    args = dict(vocab_size=tokenizer.vocab_size, embedding_dim=4, hidden_size=4,
                padding_idx=3)
    tinyllm.manual_seed(0)
    save_checkpoint(tmp_path / "clf.npz", LSTMClassifier(**args), "lstm_classifier", args,
                    tokenizer=tokenizer)
    assert "does not generate text" in run_error(
        capsys, ["generate", "--checkpoint", str(tmp_path / "clf.npz"), "--prompt", "abc"])
    assert "holds no training config, so it cannot be resumed" in run_error(
        capsys, ["train", "--resume", str(tmp_path / "clf.npz"), "--out", str(tmp_path)])
    assert "holds no training config" in run_error(
        capsys, ["eval", "--checkpoint", str(tmp_path / "clf.npz")])


def test_resuming_with_another_model_or_size(trained, capsys):
    out = str(trained.parent)
    assert "cannot resume" in run_error(capsys, ["train", "--resume", "--out", out,
                                                 "--n-layer", "2"])
    assert "holds a 'gpt' model, but --model lstm" in run_error(
        capsys, ["train", "--resume", str(trained), "--model", "lstm", "--out", out])


@pytest.mark.filterwarnings("ignore:overflow:RuntimeWarning", "ignore:invalid:RuntimeWarning")
def test_nan_loss_stops_and_names_the_step(tmp_path, capsys):
    # lr 1e39 turns the float32 weights to inf in the first update; step 2's loss is NaN
    message = run_error(capsys, tiny_train_args(tmp_path, "--lr", "1e39", "--warmup", "0",
                                                "--clip", "0", "--steps", "5",
                                                "--sample-tokens", "0"))
    assert "training stopped at step 2: the loss is nan; no checkpoint had been written" \
        in message


@pytest.mark.parametrize("argv, message", [
    (["train", "--steps", "5", "--warmup", "10"], "warmup must be an integer in [0, steps)"),
    (["train", "--n-embd", "30"], "n_embd=30 must be divisible by n_head=4"),
    (["generate", "--top-p", "2"], "top_p must be in (0, 1]"),
    (["generate", "--max-new-tokens", "-1"], "max_new_tokens must be an integer >= 0"),
    (["eval", "--batches", "0"], "--batches must be at least 1"),
])
def test_settings_out_of_range(trained, capsys, argv, message):
    if argv[0] != "train":
        argv = argv + ["--checkpoint", str(trained)]
    assert message in run_error(capsys, argv)


def test_unknown_options_are_argparse_errors(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--n-layers", "3"])
    assert exit_info.value.code == 2
    assert "unrecognized arguments: --n-layers" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["train", "--model", "rnn"])
    assert "invalid choice: 'rnn'" in capsys.readouterr().err


# ----- bench ----------------------------------------------------------------------------------
def test_bench_runs_every_script_and_reports_failures(tmp_path, capfd):
    (tmp_path / "bench_hello.py").write_text("print('hello from a benchmark')\n")
    (tmp_path / "bench_broken.py").write_text("raise SystemExit(3)\n")
    args = argparse.Namespace(names=[], list=False)
    assert run_bench(args, tmp_path) == 1
    captured = capfd.readouterr()
    assert "hello from a benchmark" in captured.out
    assert "benchmark broken failed with exit status 3" in captured.err
    assert run_bench(argparse.Namespace(names=["hello"], list=False), tmp_path) == 0
    with pytest.raises(ValueError, match="no benchmark named nope"):
        run_bench(argparse.Namespace(names=["nope"], list=False), tmp_path)


def test_bench_without_scripts_says_so(tmp_path):
    with pytest.raises(FileNotFoundError, match="no benchmark scripts"):
        run_bench(argparse.Namespace(names=[], list=False), tmp_path)


# ----- the entry point and a real kill ------------------------------------------------------
def test_python_dash_m_tinyllm_generates(trained):
    result = subprocess.run([sys.executable, "-m", "tinyllm", "generate", "--checkpoint",
                             str(trained), "--prompt", "the", "--greedy",
                             "--max-new-tokens", "5"], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("the") and len(result.stdout) == len("the") + 5 + 1


def test_python_dash_m_tinyllm_errors_exit_2_without_traceback(tmp_path):
    result = subprocess.run([sys.executable, "-m", "tinyllm", "eval", "--checkpoint",
                             str(tmp_path / "missing.npz")], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 2
    assert result.stderr.startswith("tinyllm eval: error: checkpoint")
    assert "Traceback" not in result.stderr


def test_a_run_killed_with_sigkill_resumes_to_the_same_losses(tmp_path):
    argv = tiny_train_args(tmp_path, "--steps", "400", "--eval-every", "10", "--dropout",
                           "0.1", "--sample-tokens", "0")
    checkpoint = tmp_path / "out" / "ckpt.npz"
    process = subprocess.Popen([sys.executable, "-m", "tinyllm"] + argv,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while not checkpoint.exists() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL            # it was killed mid-run
    killed_at = load_checkpoint(checkpoint).step
    assert 10 <= killed_at < 400

    assert main(argv[:1] + ["--resume"] + argv[1:]) == 0
    settings = dict(corpus=str(tmp_path / "corpus.txt"), n_layer=1, n_head=2, n_embd=16,
                    block_size=16, batch_size=4, eval_batches=2, steps=400, eval_every=10,
                    dropout=0.1, sample_tokens=0, out=str(tmp_path / "reference"))
    reference = train(TrainConfig(**settings), progress=False, log=lambda line: None)
    resumed = load_checkpoint(checkpoint)
    assert resumed.step == 400
    assert resumed.history == reference.history
    assert np.isfinite(resumed.history["val_loss"]).all()
