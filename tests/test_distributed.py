"""Data-parallel training (tinyllm.distributed): the pieces in one process, and whole runs
under ``mpiexec -n 2`` compared with one process accumulating 2 micro-batches."""

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import tinyllm
from tinyllm import distributed
from tinyllm.distributed import (DistributedSetupError, check_launch, make_buckets,
                                 partition_parameters)
from tinyllm.nn import Parameter
from tinyllm.training import TrainConfig
from tinyllm.training.trainer import Trainer

ROOT = Path(__file__).resolve().parents[1]
MPIEXEC = shutil.which("mpiexec") or str(Path(sys.executable).parent / "mpiexec")


def needs_mpi():
    pytest.importorskip("mpi4py")
    if not Path(MPIEXEC).exists():
        pytest.skip("mpiexec not found")


def environment():
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    for name in ("PMI_SIZE", "PMI_RANK", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_RANK"):
        env.pop(name, None)
    return env


def run(command, cwd, timeout=240):
    return subprocess.run(command, cwd=cwd, env=environment(), capture_output=True, text=True,
                          timeout=timeout)


def write_corpus(folder):
    """A small corpus (about 12 KB), so each run tokenizes and evaluates in a moment."""
    rng = np.random.default_rng(0)
    words = ["tensor", "gradient", "rank", "bucket", "reduce", "model", "loss", "step", "the",
             "of", "a", "sum"]
    text = "\n".join(" ".join(rng.choice(words, 8)) for _ in range(300))
    path = Path(folder) / "corpus.txt"
    path.write_text(text)
    return path


SMALL = ["--n-layer", "1", "--n-embd", "16", "--n-head", "2", "--block-size", "16",
         "--batch-size", "4", "--steps", "6", "--eval-every", "3", "--eval-batches", "2",
         "--sample-tokens", "0", "--no-progress"]


# ----- the pieces, in one process ------------------------------------------------------------
def test_buckets_hold_at_most_bucket_mb_and_keep_the_order():
    params = [Parameter(np.zeros(n, dtype=np.float32)) for n in (100, 200, 50, 400, 10)]
    buckets = make_buckets(params, bucket_mb=1000 / 2 ** 20)        # 1000 bytes = 250 floats
    assert [[p.data.size for p in b] for b in buckets] == [[100], [200, 50], [400], [10]]
    assert [p for b in buckets for p in b] == params


def test_bucket_mb_must_be_positive():
    with pytest.raises(ValueError, match="bucket_mb must be positive"):
        make_buckets([Parameter(np.zeros(3))], 0)


def test_zero_partition_gives_each_rank_about_a_share():
    params = [Parameter(np.zeros(n)) for n in (500, 300, 200, 100, 100, 10)]
    owner = partition_parameters(params, 2)
    loads = [sum(p.data.size for p, r in zip(params, owner) if r == rank) for rank in (0, 1)]
    assert owner == [0, 1, 1, 0, 1, 0] and loads == [610, 600]


def test_post_accumulate_grad_hook_runs_once_per_gradient_part():
    w = tinyllm.tensor(np.array([1.0, 2.0]), requires_grad=True, dtype=np.float64)
    seen = []
    w.register_post_accumulate_grad_hook(lambda t: seen.append(t.grad.copy()))
    ((w * 3.0).sum() + (w * w).sum()).backward()        # three parts reach w: 3, w and w
    assert len(seen) == 3
    np.testing.assert_array_equal(seen[-1], 3.0 + 2 * np.array([1.0, 2.0]))


def test_post_accumulate_grad_hook_is_only_for_leaves():
    w = tinyllm.tensor(np.ones(2), requires_grad=True)
    with pytest.raises(RuntimeError, match="only leaf tensors"):
        (w * 2).register_post_accumulate_grad_hook(print)


def test_zero_without_mpi_is_a_clear_error(tmp_path):
    config = TrainConfig(zero=1, steps=2, out=str(tmp_path))
    with pytest.raises(DistributedSetupError, match="--zero 1 shards the optimizer state over "
                                                    "MPI ranks, but this is a single process"):
        Trainer(config)


def test_grad_accum_must_be_a_multiple_of_the_world_size():
    with pytest.raises(DistributedSetupError, match="--grad-accum 3 cannot be split over 2 "
                                                    "ranks.*use --grad-accum 2"):
        check_launch(TrainConfig(grad_accum=3), world_size=2)
    check_launch(TrainConfig(grad_accum=4), world_size=2)


@pytest.mark.parametrize("setting", [{"zero": 2}, {"overlap": 5}, {"bucket_mb": 0},
                                     {"comm_timeout": -1}])
def test_distributed_settings_are_checked(setting):
    with pytest.raises(ValueError, match=list(setting)[0]):
        TrainConfig(**setting)


def test_a_world_of_one_sums_nothing():
    pytest.importorskip("mpi4py")
    comm = distributed.init()
    x = np.arange(4.0)
    np.testing.assert_array_equal(comm.allreduce_(x.copy()), x)
    assert comm.allgather_object({"a": 1}) == [{"a": 1}]


# ----- whole runs under mpiexec -n 2 -----------------------------------------------------------
API_SCRIPT = textwrap.dedent("""
    import json, sys
    import numpy as np
    import tinyllm
    from tinyllm import distributed
    from tinyllm.training import train

    tinyllm.set_default_dtype(np.float64)
    corpus, out, extra = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    result = train(corpus=corpus, n_layer=1, n_embd=16, n_head=2, block_size=16, batch_size=4,
                   steps=5, eval_every=5, eval_batches=1, sample_tokens=0, grad_accum=2,
                   out=out, progress=False, log=lambda message: None, **extra)
    if distributed.rank() == 0:
        arrays = {"p/" + k: v for k, v in result.model.state_dict().items()}
        np.savez(out + "/result.npz", loss=result.history["train_loss"],
                 norm=result.history["grad_norm"], **arrays)
""")


def run_api(tmp_path, name, n, extra):
    script = tmp_path / "train_script.py"
    script.write_text(API_SCRIPT)
    corpus = write_corpus(tmp_path)
    command = [sys.executable, str(script), str(corpus), str(tmp_path / name), json.dumps(extra)]
    if n > 1:
        command = [MPIEXEC, "-n", str(n)] + command
    done = run(command, tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    return dict(np.load(tmp_path / name / "result.npz"))


@pytest.mark.slow
def test_two_ranks_equal_grad_accum_2_to_1e_10_in_float64(tmp_path):
    needs_mpi()
    single = run_api(tmp_path, "single", 1, {})
    for name, extra in [("ddp", {}), ("zero", {"zero": 1, "overlap": 1, "bucket_mb": 0.002})]:
        parallel = run_api(tmp_path, name, 2, extra)
        assert single["loss"].dtype == np.float64 and len(single["loss"]) == 5
        np.testing.assert_allclose(parallel["loss"], single["loss"], rtol=1e-10, atol=0)
        np.testing.assert_allclose(parallel["norm"], single["norm"], rtol=1e-10, atol=0)
        for key in single:
            if key.startswith("p/"):
                assert single[key].dtype == np.float64
                np.testing.assert_allclose(parallel[key], single[key], rtol=0, atol=1e-10,
                                           err_msg=name + " " + key)


def load(folder):
    from tinyllm.training import load_checkpoint
    return load_checkpoint(folder)


def assert_same_run(a, b, atol=2e-6):
    """Two float32 runs: equal losses and weights up to float32 rounding."""
    np.testing.assert_allclose(b.history["train_loss"], a.history["train_loss"], rtol=1e-6)
    np.testing.assert_allclose(b.history["val_loss"], a.history["val_loss"], rtol=1e-6)
    for key, value in a.model_state.items():
        np.testing.assert_allclose(b.model_state[key], value, rtol=0, atol=atol, err_msg=key)
    for index, state in a.optimizer_state["state"].items():
        np.testing.assert_allclose(b.optimizer_state["state"][index]["exp_avg"],
                                   state["exp_avg"], rtol=0, atol=atol)


@pytest.mark.slow
def test_mpiexec_tinyllm_train_with_zero_equals_grad_accum_and_resumes(tmp_path):
    needs_mpi()
    corpus = str(write_corpus(tmp_path))
    train = [sys.executable, "-m", "tinyllm", "train", "--corpus", corpus, "--grad-accum",
             "2"] + SMALL
    mpi = [MPIEXEC, "-n", "2"] + train + ["--zero", "1"]
    # 3 steps, then resumed to 6: in one process, and on two ranks with ZeRO stage 1.
    runs = ((train, "single"), (mpi, "two"))
    for command, out in runs:
        first = run(command + ["--out", out, "--steps", "3"], tmp_path)
        assert first.returncode == 0, first.stderr
    assert first.stdout.count("step 3: train loss") == 1            # only rank 0 prints
    assert "ZeRO stage 1; optimizer state per rank: rank 0" in first.stdout
    assert_same_run(load(tmp_path / "single"), load(tmp_path / "two"))
    for command, out in runs:
        resumed = run(command + ["--out", out, "--steps", "6", "--resume"], tmp_path)
        assert resumed.returncode == 0, resumed.stderr
        assert "resuming from step 3" in resumed.stdout
    assert_same_run(load(tmp_path / "single"), load(tmp_path / "two"))
    assert len(load(tmp_path / "two").history["train_loss"]) == 6


@pytest.mark.slow
def test_bad_launches_stop_before_training_with_one_message(tmp_path):
    needs_mpi()
    corpus = str(write_corpus(tmp_path))
    train = [sys.executable, "-m", "tinyllm", "train", "--corpus", corpus] + SMALL
    indivisible = run([MPIEXEC, "-n", "2"] + train + ["--grad-accum", "3"], tmp_path)
    assert indivisible.returncode != 0
    assert indivisible.stderr.count("--grad-accum 3 cannot be split over 2 ranks") == 1
    assert "step 0" not in indivisible.stdout
    zero = run(train + ["--zero", "1"], tmp_path)
    assert zero.returncode != 0 and "this is a single process" in zero.stderr
    configs = run([MPIEXEC, "-n", "1"] + train + ["--grad-accum", "2", "--lr", "0.001", ":",
                   "-n", "1"] + train + ["--grad-accum", "2", "--lr", "0.002"], tmp_path)
    assert configs.returncode != 0
    assert configs.stderr.count("rank 0 has lr=0.001, rank 1 has 0.002") == 1
    for name, text in (("a", "one corpus " * 500), ("b", "another text " * 500)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "c.txt").write_text(text)
    relative = [sys.executable, "-m", "tinyllm", "train", "--corpus", "c.txt", "--grad-accum",
                "2"] + SMALL
    corpora = run([MPIEXEC, "-n", "1", "-wdir", str(tmp_path / "a")] + relative +
                  [":", "-n", "1", "-wdir", str(tmp_path / "b")] + relative, tmp_path)
    assert corpora.returncode != 0
    assert corpora.stderr.count("rank 1 read other data than rank 0") == 1


TIMEOUT_SCRIPT = textwrap.dedent("""
    import time
    import numpy as np
    from tinyllm import distributed

    comm = distributed.init(timeout=2.0)
    if comm.rank == 1:
        time.sleep(60)                  # a rank that hangs
    try:
        comm.allreduce_(np.ones(10), "all-reduce of the gradients")
    except distributed.CollectiveTimeout as error:
        print("rank %d: %s" % (comm.rank, error), flush=True)
        comm.abort(3)
""")


@pytest.mark.slow
def test_a_hanging_rank_ends_the_job_with_a_message_instead_of_a_hang(tmp_path):
    needs_mpi()
    script = tmp_path / "hang.py"
    script.write_text(TIMEOUT_SCRIPT)
    done = run([MPIEXEC, "-n", "2", sys.executable, str(script)], tmp_path, timeout=50)
    assert done.returncode != 0
    assert "rank 0 of 2 waited 2 s in all-reduce of the gradients" in done.stdout


@pytest.mark.slow
def test_the_documented_script_trains_on_two_ranks(tmp_path):
    needs_mpi()
    doc = distributed.__doc__
    script = textwrap.dedent(doc[doc.index("::\n") + 3:doc.index("mpi4py is imported")])
    (tmp_path / "my_script.py").write_text(script)
    done = run([MPIEXEC, "-n", "2", sys.executable, "my_script.py"], tmp_path)
    assert done.returncode == 0, done.stderr
    losses = [float(line.split()[1]) for line in done.stdout.splitlines()]
    assert len(losses) == 3 and losses[2] < losses[0]
