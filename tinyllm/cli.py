"""The ``tinyllm`` command line (also ``python -m tinyllm``).

    tinyllm train      train a model (no options: a small GPT on Python's pydoc topics)
    tinyllm generate   sample text from a checkpoint
    tinyllm eval       loss, perplexity, bits per character (BLEU for seq2seq) of a checkpoint
    tinyllm serve      a JSON-over-HTTP endpoint for a checkpoint (127.0.0.1:8000)
    tinyllm bench      run the benchmarks in benchmarks/
    tinyllm demo       the autograd engine at work: a small network, its gradients checked
    tinyllm info       versions, BLAS, backend, threads, GPU, Numba cache: for a bug report
    tinyllm book       build the book (chapters and executed notebooks) as a website

Each model kind writes to its own folder unless --out says otherwise: out/gpt/, out/lstm/,
out/mlm/, out/seq2seq/, out/classifier/ (a checkpoint ckpt.npz and a loss curve loss.png).

Mistakes in what is asked (a missing or empty corpus, a corrupt checkpoint, a prompt with
characters the model never saw, an option out of range) print one line,
``tinyllm COMMAND: error: ...``, on stderr and exit with status 2, as argparse does for
unknown options. A training run whose loss becomes NaN stops the same way, keeping its last
good checkpoint. A new run into a folder that holds a checkpoint needs --resume or
--overwrite. Ctrl-C or SIGTERM during training saves a checkpoint, says where and exits with
status 130 or 143.
"""

import argparse
import errno
import json
import subprocess
import sys
from dataclasses import fields, replace
from pathlib import Path

from tinyllm.kernels.backend import BACKENDS, check_environment

EXIT_ERROR = 2
EXIT_INTERRUPTED = 130
HINT = ("Start with `tinyllm train`: a small GPT learns Python's own documentation; its "
        "checkpoint goes to out/gpt/ckpt.npz.")
DEFAULT_CHECKPOINT = "out/gpt/ckpt.npz"     # where `tinyllm train` (a GPT) writes its checkpoint
BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


# ----- train --------------------------------------------------------------------------------
# (option, TrainConfig field, type, help); defaults come from TrainConfig itself.
TRAIN_OPTIONS = [
    ("--model", "model", str, "gpt, lstm, mlm (masked tokens, BERT-style), seq2seq (reverse "
                              "digit strings, with BLEU) or classifier (documentation or "
                              "code? an LSTM classifier for POST /predict)"),
    ("--corpus", "corpus", str, "pydoc, stdlib, or a UTF-8 text file or folder"),
    ("--tokenizer", "tokenizer", str, "char or bpe (byte-level BPE trained on the corpus)"),
    ("--vocab-size", "vocab_size", int, "BPE vocabulary size"),
    ("--n-layer", "n_layer", int, "layers"),
    ("--n-head", "n_head", int, "attention heads"),
    ("--n-embd", "n_embd", int, "features per token (LSTM: embedding and hidden size)"),
    ("--block-size", "block_size", int, "tokens per window (context length)"),
    ("--batch-size", "batch_size", int, "windows per micro-batch"),
    ("--dropout", "dropout", float, "dropout probability"),
    ("--steps", "steps", int, "optimizer steps"),
    ("--lr", "lr", float, "peak learning rate"),
    ("--min-lr", "min_lr", float, "learning rate at the end of the cosine decay"),
    ("--warmup", "warmup", int, "linear warm-up steps"),
    ("--weight-decay", "weight_decay", float, "AdamW weight decay of the weight matrices"),
    ("--clip", "clip", float, "max gradient norm (0: no clipping)"),
    ("--grad-accum", "grad_accum", int, "micro-batches per optimizer step"),
    ("--eval-every", "eval_every", int, "evaluate and checkpoint every N steps"),
    ("--eval-batches", "eval_batches", int, "validation batches per evaluation"),
    ("--sample-tokens", "sample_tokens", int, "length of the samples printed before and "
                                              "after training (0: none)"),
    ("--seed", "seed", int, "random seed"),
    ("--backend", "backend", str, "kernels: %s" % ", ".join(BACKENDS)),
    ("--out", "out", str, "output folder (checkpoint ckpt.npz, loss curve loss.png)"),
    ("--zero", "zero", int, "1: ZeRO stage 1 under mpiexec, the optimizer state sharded "
                            "over the ranks"),
    ("--overlap", "overlap", int, "1: under mpiexec, start each gradient bucket's all-reduce "
                                  "during backward"),
    ("--bucket-mb", "bucket_mb", float, "under mpiexec, megabytes of gradients per all-reduce"),
    ("--comm-timeout", "comm_timeout", float, "under mpiexec, seconds a rank waits for the "
                                              "others before the job is ended"),
]
DERIVED_DEFAULTS = {"warmup": "min(100, steps // 10)", "min_lr": "lr / 10",
                    "backend": "the current one, auto unless TINYLLM_BACKEND is set",
                    "out": "out/MODEL: out/gpt, out/lstm, out/mlm, out/seq2seq, out/classifier"}


def add_train_parser(commands):
    from tinyllm.training.config import MODEL_TYPES, TOKENIZERS, TrainConfig
    defaults = {f.name: f.default for f in fields(TrainConfig)}
    parser = commands.add_parser(
        "train", help="train a model (no options: a small GPT on Python's pydoc topics)",
        description="Train a model. With no options: nanoGPT's small CPU configuration (4 "
                    "layers, 4 heads, 128 features, context 64) on Python's pydoc topics with "
                    "a character tokenizer; prints a sample before and after training and "
                    "writes out/gpt/ckpt.npz and out/gpt/loss.png. Each model kind has its own "
                    "folder (out/lstm/, out/mlm/, ...) unless --out names one. The first run "
                    "on a machine compiles the Numba kernels first, and says so.")
    choices = {"model": MODEL_TYPES, "tokenizer": TOKENIZERS, "backend": BACKENDS}
    for option, name, kind, text in TRAIN_OPTIONS:
        default = DERIVED_DEFAULTS.get(name, defaults[name])
        parser.add_argument(option, dest=name, type=kind, default=argparse.SUPPRESS,
                            choices=choices.get(name), metavar=name.upper(),
                            help="%s (default: %s)" % (text, default))
    parser.add_argument("--resume", nargs="?", const=True, default=None, metavar="CHECKPOINT",
                        help="continue a saved run (default checkpoint: OUT/ckpt.npz); only "
                             "--steps, --eval-every, --eval-batches, --sample-tokens, --backend "
                             "and the mpiexec options (--zero, --overlap, --bucket-mb, "
                             "--comm-timeout) may change")
    parser.add_argument("--overwrite", action="store_true",
                        help="start a new run in an --out folder that holds a checkpoint, "
                             "replacing it (without it, such a run is refused)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--task", choices=("lm", "sft", "dpo"), default="lm",
                        help="lm: train --model from scratch (default); sft: fine-tune a GPT "
                             "to answer questions on a chat template (out/sft/); dpo: direct "
                             "preference optimisation of the SFT model (out/dpo/). sft and dpo "
                             "take --steps, --lr, --batch-size, --seed, --out, --backend (their "
                             "own defaults: tinyllm/training/posttraining.py) and, for the brief "
                             "pre-training when there is no --init-from, the model sizes")
    parser.add_argument("--init-from", default=None, metavar="CHECKPOINT",
                        help="sft/dpo: the GPT checkpoint to start from (default: sft "
                             "pre-trains a small GPT briefly; dpo uses out/sft/ckpt.npz)")
    parser.add_argument("--beta", type=float, default=argparse.SUPPRESS,
                        help="dpo: the strength of the pull towards the reference (default 0.1)")
    add_checkpoint_limit(parser)
    parser.set_defaults(handler=run_train)


def run_train(args):
    from tinyllm.training import TrainConfig, load_checkpoint, train
    from tinyllm.training.checkpoint import CHECKPOINT_NAME
    from tinyllm.training.config import default_out
    settings = {name: getattr(args, name) for _, name, _, _ in TRAIN_OPTIONS
                if hasattr(args, name)}
    if args.task != "lm" or args.init_from is not None or hasattr(args, "beta"):
        return run_posttraining(args, settings)
    resume = args.resume
    if resume:
        if resume is True:
            folder = settings.get("out") or default_out(settings.get("model", "gpt"))
            resume = Path(folder) / CHECKPOINT_NAME
        else:                           # new checkpoints go beside the one resumed from
            folder = Path(resume) if Path(resume).is_dir() else Path(resume).parent
            settings.setdefault("out", str(folder))
        resume = load_checkpoint(resume, max_bytes=args.max_checkpoint_bytes)
        saved = resume.config
        if not saved:
            raise ValueError("checkpoint %s holds no training config, so it cannot be resumed"
                             % resume.path)
        config = TrainConfig.from_dict({**saved, **settings})
    else:
        config = TrainConfig(**settings)
    train(config, resume=resume, progress=not args.no_progress, overwrite=args.overwrite)
    return 0


def run_posttraining(args, settings):
    """``tinyllm train --task sft|dpo`` (``tinyllm.training.posttraining.run``)."""
    from tinyllm.training import posttraining
    if args.task == "lm":
        raise ValueError("--init-from and --beta belong to --task sft or --task dpo")
    if args.resume:
        raise ValueError("--task %s cannot --resume; it is a short run, start it again"
                         % args.task)
    settings.update(init_from=args.init_from, **({"beta": args.beta} if hasattr(args, "beta")
                                                 else {}))
    posttraining.run(args.task, settings)
    return 0


# ----- generate -----------------------------------------------------------------------------
def add_generate_parser(commands):
    parser = commands.add_parser(
        "generate", help="sample text from a checkpoint",
        description="Continue a prompt with a trained model (gpt, lstm); decode a source "
                    "string (seq2seq); fill in <mask> tokens (mlm). A prompt longer than a "
                    "GPT's context is cropped to its last block_size tokens, with a note.")
    parser.add_argument("--checkpoint", default=DEFAULT_CHECKPOINT,
                        help="checkpoint file or folder (default: %s)" % DEFAULT_CHECKPOINT)
    parser.add_argument("--prompt", default="\n",
                        help="text to continue (default: a newline)")
    parser.add_argument("--prompt-ids", default=None, metavar="IDS",
                        help="token ids to continue, e.g. 464,2068 (for a model folder without "
                             "a tokenizer); the output is ids too")
    parser.add_argument("--max-new-tokens", type=int, default=200, help="(default: 200)")
    parser.add_argument("--temperature", type=float, default=0.8,
                        help="softmax temperature; 0 is greedy (default: 0.8)")
    parser.add_argument("--top-k", type=int, default=None, help="sample among the k likeliest")
    parser.add_argument("--top-p", type=float, default=None,
                        help="sample in the nucleus of probability p")
    parser.add_argument("--beam", type=int, default=None, metavar="N",
                        help="beam search with N beams (deterministic)")
    parser.add_argument("--repetition-penalty", type=float, default=1.0,
                        help="CTRL's penalty for tokens already present (default: 1, none)")
    parser.add_argument("--seed", type=int, default=None,
                        help="seed for a repeatable sample (default: a random one)")
    parser.add_argument("--greedy", action="store_true", help="the argmax every step")
    parser.add_argument("--stream", action="store_true", help="print tokens as they come")
    parser.add_argument("--backend", choices=BACKENDS, default=None)
    add_checkpoint_limit(parser)
    parser.set_defaults(handler=run_generate)


def announcing_compilation(model_type):
    """Say on stderr when the kernels that running ``model_type`` (no training) calls must be
    compiled first, and name each as it compiles (tinyllm.kernels.compilation)."""
    from tinyllm.kernels import compilation
    from tinyllm.training.model_types import KERNEL_KINDS
    return compilation.announcing_compilation(
        KERNEL_KINDS.get(model_type, ()), lambda line: print(line, file=sys.stderr, flush=True),
        training=False)


def run_generate(args):
    from tinyllm.training.trainer import backend_context
    from tinyllm.serving.inference import (GenerationOptions, complete, complete_ids,
                                           load_for_inference)
    from tinyllm.training.model_types import LANGUAGE_MODELS
    model, checkpoint = load_for_inference(args.checkpoint,     # tinyllm or Hugging Face
                                           max_bytes=args.max_checkpoint_bytes)
    options = GenerationOptions(
        max_new_tokens=args.max_new_tokens, temperature=0.0 if args.greedy else args.temperature,
        top_k=args.top_k, top_p=args.top_p, beam=args.beam,
        repetition_penalty=args.repetition_penalty, seed=args.seed).validate()
    if args.prompt_ids is not None:
        with backend_context(args.backend):
            print(" ".join(str(i) for i in complete_ids(model, checkpoint, args.prompt_ids,
                                                        options)))
        return 0
    if checkpoint.tokenizer is None:
        raise ValueError("checkpoint %s holds no tokenizer (a Hugging Face folder: tokenizer.json, "
                         "or vocab.json + merges.txt), so its model cannot read a text prompt; "
                         "give token ids instead, e.g. --prompt-ids 464,2068" % checkpoint.path)
    continues_prompt = checkpoint.model_type in LANGUAGE_MODELS

    def write(piece):
        sys.stdout.write(piece)
        sys.stdout.flush()

    def notice(message):
        print("note: %s" % message, file=sys.stderr)

    with backend_context(args.backend), announcing_compilation(checkpoint.model_type):
        if args.stream:
            if continues_prompt:
                write(args.prompt)
            complete(model, checkpoint.model_type, checkpoint.tokenizer, args.prompt, options,
                     on_text=write, notice=notice)
            write("\n")
        else:
            text = complete(model, checkpoint.model_type, checkpoint.tokenizer, args.prompt,
                            options, notice=notice)
            print((args.prompt if continues_prompt else "") + text)
    return 0


# ----- eval ---------------------------------------------------------------------------------
def add_eval_parser(commands):
    parser = commands.add_parser(
        "eval", help="loss, perplexity, bits per character (BLEU for seq2seq)",
        description="Evaluate a checkpoint on the held-out end of its training corpus (or of "
                    "--corpus): loss (nats per token), perplexity, bits per token, character "
                    "and byte; masked-token accuracy for mlm; BLEU and exact match for seq2seq.")
    parser.add_argument("--checkpoint", default=DEFAULT_CHECKPOINT,
                        help="checkpoint file or folder (default: %s)" % DEFAULT_CHECKPOINT)
    parser.add_argument("--corpus", default=None,
                        help="evaluate on the held-out part of this corpus instead")
    parser.add_argument("--batches", type=int, default=None,
                        help="at most this many batches (default: all held-out data)")
    parser.add_argument("--json", action="store_true", help="print the metrics as JSON")
    parser.add_argument("--backend", choices=BACKENDS, default=None)
    add_checkpoint_limit(parser)
    parser.set_defaults(handler=run_eval)


def run_eval(args):
    from tinyllm.training.trainer import backend_context
    from tinyllm.training import TrainConfig, load_model
    from tinyllm.training.tasks import make_task
    model, checkpoint = load_model(args.checkpoint, max_bytes=args.max_checkpoint_bytes)
    if not checkpoint.config:
        raise ValueError("checkpoint %s holds no training config, so its held-out data is "
                         "unknown" % checkpoint.path)
    if args.batches is not None and args.batches < 1:
        raise ValueError("--batches must be at least 1, got %d" % args.batches)
    config = TrainConfig.from_dict(checkpoint.config)
    if args.corpus is not None:
        config = replace(config, corpus=args.corpus)
    with backend_context(args.backend), announcing_compilation(checkpoint.model_type):
        task = make_task(config, checkpoint.tokenizer)
        metrics = task.evaluate(model, args.batches)
    if args.json:
        print(json.dumps(metrics))
        return 0
    print("%s model at step %d, on held-out %s:" % (checkpoint.model_type, checkpoint.step,
                                                     task.data_description()))
    for name, value in metrics.items():
        print("  %-16s %s" % (name, "%.4f" % value if isinstance(value, float) else value))
    return 0


# ----- serve --------------------------------------------------------------------------------
SERVE_DESCRIPTION = """\
Serve a checkpoint over HTTP, JSON in and out. Binds to 127.0.0.1 (this machine only) unless
--host says otherwise; there is no authentication.

endpoints:
  GET  /health    -> {"status": "ok", "model_type", "step", "vocab_size", "endpoints"}
  POST /generate  {"prompt": "...", and optionally "max_new_tokens" (default 200),
                  "temperature" (0.8; 0 is greedy), "top_k", "top_p", "beam",
                  "repetition_penalty" (1.0), "seed"}
                  -> {"completion": "..."} (and "notice" when the prompt was cropped)
                  (gpt and lstm continue the prompt; seq2seq decodes it; mlm fills <mask>)
  POST /predict   {"text": "..."} -> {"probability": ...}   (classifier checkpoints)
Errors come back as {"error": "..."} with status 400, 404, 405 (with Allow), 408, 411, 413,
422, 503 (busy: Retry-After; or past --max-request-seconds) or 500.

under load: GPT requests share one forward pass per token (continuous batching, up to
--max-batch requests; beam search and other model types run alone between steps); a request
whose client disconnects is cancelled; --workers threads read requests, --queue-size more
connections wait, and any beyond get 503; a whole request must arrive within --read-timeout.

example:
  curl -s http://127.0.0.1:8000/generate -d '{"prompt": "The for statement", "seed": 0}'
"""


def add_serve_parser(commands):
    parser = commands.add_parser(
        "serve", help="a JSON-over-HTTP endpoint for a checkpoint",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=SERVE_DESCRIPTION)
    parser.add_argument("--checkpoint", default=DEFAULT_CHECKPOINT,
                        help="checkpoint file or folder (default: %s)" % DEFAULT_CHECKPOINT)
    parser.add_argument("--host", default="127.0.0.1", help="(default: 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="(default: 8000; 0: any free)")
    parser.add_argument("--quiet", action="store_true", help="do not log each request")
    parser.add_argument("--backend", choices=BACKENDS, default=None)
    add_checkpoint_limit(parser)
    parser.add_argument("--workers", type=int, default=32,
                        help="threads that read requests and write replies (default: 32)")
    parser.add_argument("--queue-size", type=int, default=256,
                        help="connections that may wait for a worker; more get 503 "
                             "(default: 256)")
    parser.add_argument("--read-timeout", type=float, default=10.0,
                        help="seconds for a whole request to arrive, else 408 (default: 10)")
    parser.add_argument("--max-request-seconds", type=float, default=300.0,
                        help="seconds one request may wait for and use the model, else 503 "
                             "(default: 300)")
    parser.add_argument("--max-batch", type=int, default=16,
                        help="GPT requests in one forward pass (default: 16)")
    parser.add_argument("--no-batching", action="store_true",
                        help="one request at a time, in order of arrival (--max-batch 1)")
    parser.set_defaults(handler=run_serve)


def run_serve(args):
    from tinyllm.training.trainer import backend_context
    from tinyllm.serving.serve import ModelService, ServerLimits, make_server
    from tinyllm.training import load_model
    if not 0 <= args.port <= 65535:
        raise ValueError("--port must lie in [0, 65535], got %d" % args.port)
    limits = ServerLimits(workers=args.workers, queue_size=args.queue_size,
                          read_timeout=args.read_timeout,
                          max_request_seconds=args.max_request_seconds,
                          max_batch_size=1 if args.no_batching else args.max_batch).validate()
    model, checkpoint = load_model(args.checkpoint, max_bytes=args.max_checkpoint_bytes)
    if checkpoint.tokenizer is None:
        raise ValueError("checkpoint %s holds no tokenizer, so its model cannot read text"
                         % checkpoint.path)
    service = ModelService(model, checkpoint, limits.max_batch_size, limits.max_request_seconds)
    try:
        server = make_server(service, args.host, args.port, verbose=not args.quiet,
                             limits=limits)
    except BaseException as error:
        service.close()
        if isinstance(error, OSError) and error.errno == errno.EADDRINUSE:
            raise OSError("port %d on %s is in use; choose another with --port (--port 0: "
                          "any free port)" % (args.port, args.host)) from None
        raise
    host, port = server.server_address[:2]
    service = server.service
    print("serving the %s model of %s on http://%s:%d (GET /health, POST %s); Ctrl-C stops"
          % (service.model_type, service.checkpoint.path, host, port,
             service.health()["endpoints"][0]), flush=True)
    with backend_context(args.backend), announcing_compilation(service.model_type):
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            server.server_close()
    return 0


def add_checkpoint_limit(parser):
    """The --max-checkpoint-bytes option of the commands that read a checkpoint."""
    from tinyllm.training.checkpoint import MAX_CHECKPOINT_BYTES
    parser.add_argument("--max-checkpoint-bytes", type=int, default=None, metavar="N",
                        help="decompress at most N bytes of checkpoint arrays; a larger "
                             "checkpoint is refused before it is read (default: %d, 2 GiB)"
                             % MAX_CHECKPOINT_BYTES)


# ----- bench --------------------------------------------------------------------------------
def add_bench_parser(commands):
    parser = commands.add_parser(
        "bench", help="run the benchmarks in benchmarks/",
        description="Run the benchmark scripts benchmarks/bench_*.py of a source checkout "
                    "(kernels, training step) one after the other and print what they print.")
    parser.add_argument("names", nargs="*",
                        help="only these benchmarks (bench_NAME.py); default: all")
    parser.add_argument("--list", action="store_true", help="list the benchmarks and stop")
    parser.set_defaults(handler=run_bench)


def benchmark_scripts(folder=BENCHMARKS):
    """The benchmark scripts bench_*.py of ``folder``, by name (NAME of bench_NAME.py)."""
    return {p.stem[len("bench_"):]: p for p in sorted(Path(folder).glob("bench_*.py"))}


def run_bench(args, folder=BENCHMARKS):
    scripts = benchmark_scripts(folder)
    if not scripts:
        raise FileNotFoundError("no benchmark scripts (bench_*.py) in %s; tinyllm bench runs "
                                "them from a source checkout of tinyllm" % folder)
    if args.list:
        for name, path in scripts.items():
            print("%-16s %s" % (name, path))
        return 0
    unknown = [n for n in args.names if n not in scripts]
    if unknown:
        raise ValueError("no benchmark named %s; the benchmarks are %s"
                         % (", ".join(unknown), ", ".join(scripts)))
    status = 0
    for name in args.names or list(scripts):
        print("==== %s (%s) ====" % (name, scripts[name]), flush=True)
        result = subprocess.run([sys.executable, str(scripts[name])], cwd=str(folder.parent))
        if result.returncode != 0:
            print("benchmark %s failed with exit status %d" % (name, result.returncode),
                  file=sys.stderr)
            status = 1
    return status


# ----- demo ---------------------------------------------------------------------------------
def add_demo_parser(commands):
    parser = commands.add_parser("demo", help="train a small network and check its gradients")
    parser.add_argument("--steps", type=int, default=2000, help="gradient descent steps")
    parser.add_argument("--lr", type=float, default=0.1, help="learning rate")
    parser.add_argument("--out", default="out",
                        help="folder for the loss plot tinyllm_demo_loss.png (default: out)")
    parser.set_defaults(handler=run_demo)


def run_demo(args):
    import math
    from tinyllm import demo
    if args.steps < 1:
        raise ValueError("--steps must be at least 1, got %d" % args.steps)
    if not (math.isfinite(args.lr) and args.lr > 0):
        raise ValueError("--lr must be a positive finite number, got %r" % args.lr)
    demo.run(steps=args.steps, lr=args.lr, out_dir=args.out)
    return 0


# ----- info ---------------------------------------------------------------------------------
def add_info_parser(commands):
    parser = commands.add_parser(
        "info", help="versions, BLAS, backend, threads, GPU, Numba cache: for a bug report",
        description="Print the versions of tinyllm, Python, NumPy, Numba and NumPy's BLAS, the "
                    "kernel backend and why, the thread settings, whether a CUDA GPU is "
                    "visible, and where the Numba cache is and whether it is warm. Paste it "
                    "into a bug report.")
    parser.set_defaults(handler=run_info)


def run_info(args):
    from tinyllm import info
    return info.main()


# ----- main ---------------------------------------------------------------------------------
# ----- book ---------------------------------------------------------------------------------
def add_book_parser(commands):
    from tinyllm import book
    parser = commands.add_parser(
        "book", help="build the book (chapters and executed notebooks) as a website",
        description="Build the chapters and their executed notebooks into a static website "
                    "with Jupyter Book (pip install -e \".[book]\"): book/_build/html/index.html.")
    book.add_arguments(parser)          # --out, --mathjax DIR, --repo-url URL, --verbose
    parser.set_defaults(handler=book.run)


def build_parser():
    parser = argparse.ArgumentParser(prog="tinyllm", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    add_train_parser(commands)
    add_generate_parser(commands)
    add_eval_parser(commands)
    add_serve_parser(commands)
    add_bench_parser(commands)
    add_demo_parser(commands)
    add_info_parser(commands)
    add_book_parser(commands)
    return parser


def main(argv=None):
    """Run the command of ``argv`` (default: sys.argv[1:]); returns the exit status."""
    from tinyllm import distributed
    from tinyllm.training import CheckpointError, TrainingDiverged
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        print("\n" + HINT)
        return 0
    try:
        check_environment()
        return args.handler(args)
    except (ValueError, OSError, CheckpointError, TrainingDiverged) as error:
        message = " ".join(str(error).split("\n"))
        if distributed.is_main_process():       # under mpiexec, rank 0 speaks for all
            print("tinyllm %s: error: %s" % (args.command, message), file=sys.stderr)
        distributed.abort_unless_all_failed(error, EXIT_ERROR)
        return EXIT_ERROR
    except distributed.CollectiveTimeout as error:
        print("tinyllm %s: error: %s" % (args.command, error), file=sys.stderr)
        distributed.abort_unless_all_failed(error, EXIT_ERROR)
        return EXIT_ERROR
    except KeyboardInterrupt as interrupt:      # 128 + the signal: 130 for Ctrl-C, 143 SIGTERM
        return 128 + getattr(interrupt, "signum", EXIT_INTERRUPTED - 128)
