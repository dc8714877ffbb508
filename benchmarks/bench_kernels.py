"""Time tinyllm's kernels against their NumPy references, in one run, and print the ratios.

    python benchmarks/bench_kernels.py            # everything (a few minutes on 2 cores)
    python benchmarks/bench_kernels.py --quick    # smaller repetition counts

Sections: matmul (Numba vs NumPy's BLAS, GFLOP/s), fused attention forward + backward vs the
NumPy reference, peak extra memory of the attention forward vs T (each case in a fresh
subprocess: the resident-set peak is reset just before the call, and the growth over the
resident size before it is reported), the fused training kernels, and, when a CUDA GPU is
present, the CUDA kernels against cuBLAS and the unfused composite. Times are the best of
several runs (the least disturbed by other programs on the machine).

Each timing starts after a pause of ``SETTLE_SECONDS``. NumPy's OpenBLAS keeps its threads
spinning for about 0.1 s after a call (this script leaves OpenBLAS as NumPy configures it;
tinyllm shortens the spin, see ``tinyllm/kernels/cpu_runtime.py``), and on 2 cores a Numba
kernel timed inside that window runs at about half speed: the pause lets every library's idle
threads go to sleep, so that each is timed alone. After the pause, the function runs untimed for
``WARM_SECONDS`` (a core that has just been idle runs the first milliseconds slower).
"""

import argparse
import os
import platform
import subprocess
import sys
import time

import numpy as np

from tinyllm.kernels import attention
from tinyllm.kernels import adam, gelu, layer_norm, softmax_cross_entropy
from tinyllm.kernels import matmul as mm
from tinyllm.kernels.backend import cuda_available


SETTLE_SECONDS = 0.3
WARM_SECONDS = 0.2


def best_time(fn, repeats):
    fn()                                     # compile
    time.sleep(SETTLE_SECONDS)               # let the other library's threads go idle
    warm_until = time.perf_counter() + WARM_SECONDS
    while time.perf_counter() < warm_until:  # then wake this one's threads and the core's clock
        fn()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def machine_description():
    model = platform.processor() or "?"
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        model = next(line.split(":", 1)[1].strip() for line in out.splitlines()
                     if line.startswith("Model name"))
    except (OSError, StopIteration):
        pass
    lines = ["CPU: %s, %d cores; NumPy %s; Python %s" % (model, os.cpu_count(), np.__version__,
                                                       platform.python_version())]
    try:
        import numba
        lines.append("Numba %s, %d threads (%s layer)" % (numba.__version__,
                                                           numba.get_num_threads(),
                                                           numba.config.THREADING_LAYER))
    except ImportError:
        pass
    lines.append("OPENBLAS_CORETYPE=%s OPENBLAS_L2_SIZE=%s"
                 % (os.environ.get("OPENBLAS_CORETYPE", "(unset)"),
                    os.environ.get("OPENBLAS_L2_SIZE", "(unset)")))
    try:
        from threadpoolctl import threadpool_info
        np.ones((2, 2)) @ np.ones((2, 2))
        for pool in threadpool_info():
            if pool.get("user_api") == "blas":
                lines.append("BLAS: %s %s, kernel %s, %d threads"
                             % (pool.get("internal_api"), pool.get("version"),
                                pool.get("architecture"), pool.get("num_threads")))
    except ImportError:
        lines.append("BLAS: (install threadpoolctl to see which kernel NumPy's BLAS runs)")
    return lines


def table(title, header, rows):
    print("\n" + title)
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    for row in [header] + rows:
        print("  " + "  ".join(str(x).rjust(w) for x, w in zip(row, widths)))


# ----- matmul ---------------------------------------------------------------------------------
def bench_matmul(repeats):
    rows = []
    rng = np.random.default_rng(0)
    for n, dtype in [(64, np.float32), (128, np.float32), (256, np.float32),
                     (512, np.float32), (1024, np.float32), (1024, np.float64)]:
        a = rng.standard_normal((n, n)).astype(dtype)
        b = rng.standard_normal((n, n)).astype(dtype)
        reps = repeats if n >= 512 else 20 * repeats
        t_blas = best_time(lambda: np.matmul(a, b), reps)
        t_numba = best_time(lambda: mm.matmul_numba(a, b), reps)
        gflops = 2 * n ** 3 / 1e9
        rows.append(["%d^3" % n, np.dtype(dtype).name, "%.1f" % (gflops / t_blas),
                     "%.1f" % (gflops / t_numba), "%.2f" % (t_blas / t_numba)])
    table("matmul: GFLOP/s (target: Numba >= 0.5x BLAS at 1024^3 float32)",
          ["size", "dtype", "NumPy BLAS", "Numba", "Numba/BLAS"], rows)


# ----- attention ------------------------------------------------------------------------------
def bench_attention(repeats):
    rows = []
    rng = np.random.default_rng(0)
    B, H, D = 12, 4, 32
    for T in (64, 256, 1024):
        q, k, v, grad_out = (rng.standard_normal((B, H, T, D)).astype(np.float32)
                             for _ in range(4))
        scale = 1 / np.sqrt(D)
        for causal in (False, True):
            def reference():
                out, lse = attention.attention_forward_reference(q, k, v, scale, causal)
                attention.attention_backward_reference(grad_out, q, k, v, out, lse, scale,
                                                       causal)

            def fused_kernels():
                out, lse = _numba_forward(q, k, v, scale, causal)
                _numba_backward(grad_out, q, k, v, out, lse, scale, causal)

            reps = repeats if T == 1024 else 5 * repeats
            t_ref = best_time(reference, reps)
            t_fused = best_time(fused_kernels, reps)
            t_ref_fwd = best_time(lambda: attention.attention_forward_reference(
                q, k, v, scale, causal), reps)
            t_fused_fwd = best_time(lambda: _numba_forward(q, k, v, scale, causal), reps)
            rows.append([T, "yes" if causal else "no", "%.2f" % (1e3 * t_ref),
                         "%.2f" % (1e3 * t_fused), "%.2f" % (t_ref / t_fused),
                         "%.2f" % (t_ref_fwd / t_fused_fwd)])
    table("attention forward+backward, float32, B=%d H=%d D=%d (target: fused >= 2x)" % (B, H, D),
          ["T", "causal", "NumPy ms", "fused ms", "speed-up", "forward only"], rows)


def _numba_forward(q, k, v, scale, causal):
    from tinyllm.kernels.backend import use_backend
    with use_backend("numba"):
        return attention.attention_forward(q, k, v, scale, causal)


def _numba_backward(grad_out, q, k, v, out, lse, scale, causal):
    from tinyllm.kernels.backend import use_backend
    with use_backend("numba"):
        return attention.attention_backward(grad_out, q, k, v, out, lse, scale, causal)


def _rss_kib(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field):
                return int(line.split()[1])
    raise RuntimeError("no %s in /proc/self/status" % field)


def memory_child(implementation, T):
    """In a fresh process: peak extra resident memory (MiB) of one attention forward."""
    B, H, D = 12, 4, 32
    rng = np.random.default_rng(0)
    small = [rng.standard_normal((1, 1, 8, D)).astype(np.float32) for _ in range(3)]
    forward = (_numba_forward if implementation == "fused"
               else attention.attention_forward_reference)
    forward(*small, 0.2, False)                            # compile / load outside the count
    q, k, v = (rng.standard_normal((B, H, T, D)).astype(np.float32) for _ in range(3))
    before = _rss_kib("VmRSS")
    with open("/proc/self/clear_refs", "w") as f:          # reset the peak (VmHWM) to now
        f.write("5")
    out, lse = forward(q, k, v, 1 / np.sqrt(D), False)
    peak = _rss_kib("VmHWM")
    print((peak - before) / 1024)


# glibc keeps freed blocks resident and reuses them, which would hide new allocations from the
# resident-set count: in the measuring child, every block over 64 KiB gets its own mapping and
# goes back to the system when freed.
MALLOC_FOR_MEASURING = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536", MALLOC_TRIM_THRESHOLD_="0")


def bench_memory():
    rows = []
    if not os.path.exists("/proc/self/clear_refs"):
        print("\nattention memory: skipped (needs Linux /proc/self/clear_refs)")
        return
    output_mib = {}
    for T in (128, 256, 512, 1024):
        output_mib[T] = 12 * 4 * T * (32 + 1) * 4 / 2 ** 20      # out + lse, float32
        cells = []
        for implementation in ("reference", "fused"):
            result = subprocess.run([sys.executable, os.path.abspath(__file__), "--memory-child",
                                     implementation, str(T)], capture_output=True, text=True,
                                    env=MALLOC_FOR_MEASURING)
            if result.returncode != 0:
                raise RuntimeError(result.stderr)
            cells.append(float(result.stdout.strip()))
        rows.append([T, "%.1f" % output_mib[T], "%.1f" % cells[0], "%.1f" % cells[1],
                     "%.3f" % (cells[0] / T ** 2 * 1e3), "%.1f" % (cells[1] / T * 1e3)])
    table("attention forward, peak extra resident memory in MiB (B=12, H=4, D=32, float32; "
          "the output and L alone take the 'outputs' column)",
          ["T", "outputs", "NumPy", "fused", "NumPy/T^2 x1e3", "fused/T x1e3"], rows)


# ----- fused training kernels -----------------------------------------------------------------
def bench_fused(repeats):
    rng = np.random.default_rng(0)
    rows = []
    reps = 20 * repeats

    def add(name, shape, reference, kernel):
        t_ref, t_kernel = best_time(reference, reps), best_time(kernel, reps)
        rows.append([name, shape, "%.1f" % (1e6 * t_ref), "%.1f" % (1e6 * t_kernel),
                     "%.2f" % (t_ref / t_kernel)])

    for N, V in ((768, 65), (768, 4096)):
        z = rng.standard_normal((N, V)).astype(np.float32)
        y = rng.integers(0, V, size=N)
        add("softmax+cross-entropy", "%dx%d" % (N, V),
            lambda: softmax_cross_entropy.softmax_cross_entropy_reference(z, y),
            lambda: softmax_cross_entropy.softmax_cross_entropy_numba(z, y))
    for N, C in ((768, 128), (768, 768)):
        x = rng.standard_normal((N, C)).astype(np.float32)
        w, b = np.ones(C, np.float32), np.zeros(C, np.float32)
        g = rng.standard_normal((N, C)).astype(np.float32)
        _, mean, rstd = layer_norm.layer_norm_forward_reference(x, w, b)
        add("layer norm forward", "%dx%d" % (N, C),
            lambda: layer_norm.layer_norm_forward_reference(x, w, b),
            lambda: layer_norm.layer_norm_forward_numba(x, w, b))
        add("layer norm backward", "%dx%d" % (N, C),
            lambda: layer_norm.layer_norm_backward_reference(g, x, mean, rstd, w),
            lambda: layer_norm.layer_norm_backward_numba(g, x, mean, rstd, w))
    x = rng.standard_normal((768, 512)).astype(np.float32)
    g = rng.standard_normal(x.shape).astype(np.float32)
    for approximate in ("none", "tanh"):
        add("GELU forward (%s)" % approximate, "768x512",
            lambda: gelu.gelu_forward_reference(x, approximate),
            lambda: gelu.gelu_forward_numba(x, approximate))
        add("GELU backward (%s)" % approximate, "768x512",
            lambda: gelu.gelu_backward_reference(g, x, approximate),
            lambda: gelu.gelu_backward_numba(g, x, approximate))
    for size in (100_000, 10_000_000):
        p = rng.standard_normal(size).astype(np.float32)
        grad = rng.standard_normal(size).astype(np.float32)
        m, v = np.zeros_like(p), np.zeros_like(p)
        add("AdamW update", "%d params" % size,
            lambda: adam.adam_update_reference(p, grad, m, v, 1, 1e-3, 0.9, 0.999, 1e-8, 0.1,
                                                True),
            lambda: adam.adam_update_numba(p, grad, m, v, 1, 1e-3, 0.9, 0.999, 1e-8, 0.1,
                                            True))
    table("fused training kernels, float32 (microseconds; speed-up = NumPy / Numba)",
          ["kernel", "shape", "NumPy us", "Numba us", "speed-up"], rows)


# ----- GPU ------------------------------------------------------------------------------------
# (tile, micro, depth) of the CUDA matmul to time: the default of tinyllm/kernels/cuda/matmul.py,
# and 128 x 128 tiles with 8 x 8 outputs per thread (16 shared-memory loads per 64
# multiply-adds instead of 8 per 16: more arithmetic per load, more registers per thread).
MATMUL_TILINGS = ((64, 4, 8), (128, 8, 8))


def bench_gpu(n=4096, attention_shape=(12, 4, 1024, 64), repeats=5):
    """CUDA matmul n^3 against cuBLAS, and the CUDA attention forward at attention_shape
    (B, H, T, D) against the unfused composite, on arrays already on the GPU."""
    if not cuda_available():
        print("\nGPU: skipped - no CUDA GPU found (the CUDA kernels are tested under the "
              "simulator; run this script on a machine with an NVIDIA GPU for these figures)")
        return
    from numba import cuda

    from tinyllm.kernels.cuda.attention import attention_kernels, launch_sizes
    from tinyllm.kernels.cuda.matmul import matmul_cuda_device
    from tinyllm.kernels.cuda.transfers import count_transfers, to_device, to_host

    device = _device_name(cuda)
    rng = np.random.default_rng(0)
    a = rng.standard_normal((1, n, n)).astype(np.float32)
    b = rng.standard_normal((1, n, n)).astype(np.float32)
    with count_transfers() as copies_in:                    # before the timed region
        start = time.perf_counter()
        d_a, d_b = to_device(a), to_device(b)
        cuda.synchronize()
        t_in = time.perf_counter() - start
    d_c = cuda.device_array((1, n, n), np.float32)

    vendor, t_vendor = _vendor_matmul(a[0], b[0], repeats)
    rows = []
    for tile, micro, depth in MATMUL_TILINGS:      # the default first
        def ours():
            matmul_cuda_device(d_a, d_b, d_c, tile, micro, depth)
            cuda.synchronize()
        t_ours = best_time(ours, repeats)
        error = np.abs(d_c.copy_to_host()[0, :64, :64] - a[0, :64] @ b[0, :, :64]).max()
        rows.append(["tinyllm, tile %d, %dx%d per thread, depth %d" % (tile, micro, micro, depth),
                     "%.2f" % (2 * n ** 3 / t_ours / 1e12),
                     "%.2f" % (t_vendor / t_ours) if t_vendor else "-", "%.1e" % error])
    if t_vendor:
        rows.append([vendor, "%.2f" % (2 * n ** 3 / t_vendor / 1e12), "1.00", "-"])
    table("CUDA matmul %d^3 float32 on %s (target: >= 0.25 of the vendor library)"
          % (n, device), ["kernel", "TFLOP/s", "/ vendor", "max error (64x64 corner)"], rows)
    with count_transfers() as copies_out:
        start = time.perf_counter()
        to_host(d_c)
        t_out = time.perf_counter() - start
    print("  copies, outside the timed region: in, %s, %.2f ms (%.1f GB/s); out, %s, %.2f ms "
          "(%.1f GB/s)" % (copies_in, 1e3 * t_in, copies_in.bytes_to_device / t_in / 1e9,
                           copies_out, 1e3 * t_out, copies_out.bytes_to_host / t_out / 1e9))

    B, H, T, D = attention_shape
    q, k, v = (cuda.to_device(rng.standard_normal((B * H, T, D)).astype(np.float32))
               for _ in range(3))
    d_out = cuda.device_array((B * H, T, D), np.float32)
    d_lse = cuda.device_array((B * H, T), np.float32)
    q_host = np.empty((1, 1, 1, D), np.float32)
    block_q, block_k, max_d = launch_sizes(q_host, q_host)
    forward = attention_kernels(block_q, block_k, max_d)[0]
    d_padding = cuda.to_device(np.zeros((1, 1), dtype=np.bool_))

    def fused_forward():
        forward[((T + block_q - 1) // block_q, B * H), block_q](
            q, k, v, np.float32(D ** -0.5), False, d_padding, False, H, d_out, d_lse)
        cuda.synchronize()
    t_fused = best_time(fused_forward, repeats)
    flops = 4 * B * H * T * T * D
    rows = [["fused (tinyllm)", "%.2f" % (1e3 * t_fused), "%.2f" % (flops / t_fused / 1e12)]]
    t_composite = _composite_attention_gpu(q, k, v, D, repeats)
    if t_composite:
        rows.append(["matmul+softmax+matmul", "%.2f" % (1e3 * t_composite),
                     "%.2f" % (flops / t_composite / 1e12)])
    table("CUDA attention forward, B=%d H=%d T=%d D=%d on %s" % (B, H, T, D, device),
          ["version", "ms", "TFLOP/s"], rows)


def _device_name(cuda):
    if os.environ.get("NUMBA_ENABLE_CUDASIM") == "1":
        return "the CUDA simulator (no timing meaning)"
    name = cuda.get_current_device().name
    return name.decode() if isinstance(name, bytes) else name


def _vendor_matmul(a, b, repeats):
    """cuBLAS through CuPy or PyTorch, whichever is installed: (name, seconds) or (None, 0)."""
    try:
        import cupy
        d_a, d_b = cupy.asarray(a), cupy.asarray(b)
        sync = cupy.cuda.runtime.deviceSynchronize
        return "cuBLAS (CuPy)", best_time(lambda: (d_a @ d_b, sync()), repeats)
    except ImportError:
        pass
    try:
        import torch
        if torch.cuda.is_available():
            d_a, d_b = torch.from_numpy(a).cuda(), torch.from_numpy(b).cuda()
            return "cuBLAS (PyTorch)", best_time(lambda: (d_a @ d_b, torch.cuda.synchronize()),
                                                    repeats)
    except ImportError:
        pass
    print("  (no CuPy or CUDA PyTorch installed: no cuBLAS figure)")
    return None, 0.0


def _composite_attention_gpu(q, k, v, D, repeats):
    """The unfused composite on the same GPU (CuPy): scores, softmax, weighted sum."""
    try:
        import cupy
    except ImportError:
        print("  (no CuPy installed: no unfused composite figure)")
        return 0.0
    cq, ck, cv = (cupy.asarray(x) for x in (q, k, v))

    def composite():
        s = cq @ ck.transpose(0, 2, 1) * (D ** -0.5)
        s = cupy.exp(s - s.max(axis=-1, keepdims=True))
        (s / s.sum(axis=-1, keepdims=True)) @ cv
        cupy.cuda.runtime.deviceSynchronize()
    return best_time(composite, repeats)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    parser.add_argument("--memory-child", nargs=2, metavar=("IMPL", "T"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_child:
        memory_child(args.memory_child[0], int(args.memory_child[1]))
        return
    repeats = 2 if args.quick else 5
    print("tinyllm kernel benchmarks")
    for line in machine_description():
        print("  " + line)
    bench_matmul(repeats)
    bench_attention(repeats)
    bench_memory()
    bench_fused(repeats)
    bench_gpu()


if __name__ == "__main__":
    main()
