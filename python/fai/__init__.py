"""fai: attention for LLM inference (prefill, decode and hybrid batches) on NVIDIA GPUs.

A thin ctypes layer over libfai (no compiled extension): it takes CUDA arrays that offer
``__cuda_array_interface__`` or DLPack (torch tensors do), checks dtype, shape and strides
before calling, runs on the caller's ``stream=`` (by default torch's current stream for
torch tensors, the legacy default stream for other arrays), and turns a failing fai status
into :class:`FaiError` carrying ``fai_last_error()``. The library is found through
``$FAI_LIBRARY``, next to this package, or on the system's search path.

Arrays from other libraries are read as they are: fai does not wait for the stream their
producer named (``__cuda_array_interface__``'s ``stream``, DLPack's ``stream=``), so order
that work before the call yourself, for instance by passing the producer's stream as
``stream=``. For torch tensors fai makes their device current for the call; arrays from
other libraries must be on the current CUDA device (fai cannot switch to theirs; those that
name theirs through ``__dlpack_device__`` must at least all name one).

    import fai
    out = fai.decode(q, k_cache, v_cache, seq_lens)                  # one token per sequence
    out = fai.prefill(q, k, v, cu_q, cu_k, max_seq_q, causal=True)   # packed varlen batch
    fai.kv_append(k_new, v_new, slots, k_cache, v_cache)             # write (and quantize) rows

Quantized KV caches: int8 (torch.int8, with float32 scales [batch, capacity, num_kv_heads]
as k_scale / v_scale, or one bfloat16 k_scale [batch, capacity, num_kv_heads, 2] of (K, V)
scale pairs with v_scale=None: half the bytes, FAI_SCALES_BF16X2) or FP8
(torch.float8_e4m3fn / torch.float8_e5m2, or uint8 with cache_dtype="fp8_e4m3" / "fp8_e5m2");
fai.kv_append writes them, fai.decode and fai.prefill (k_cache=) read them.
BF16: torch.bfloat16 q/out (decode, prefill) and rows (kv_append) work as float16 ones do; an
unquantized cache has q's dtype (float16 or bfloat16), a quantized one serves either.
"""
import contextlib
import ctypes
import math

from . import _lib
from ._tensor import _ITEMSIZE, view

__all__ = ["FaiError", "LibraryNotFound", "decode", "prefill", "hybrid", "kv_append", "merge_states", "merge_state", "version",
           "library"]

LibraryNotFound = _lib.LibraryNotFound
_handle = None


def library():
    """The loaded libfai (ctypes.CDLL), loading it on first use."""
    global _handle
    if _handle is None:
        _handle = _lib.load()
    return _handle


def version():
    """libfai's version as MAJOR * 10000 + MINOR * 100 + PATCH."""
    return library().fai_version()


class FaiError(RuntimeError):
    """A fai call failed: ``status`` is the fai_status value, ``message`` fai_last_error()."""

    def __init__(self, status, message):
        lib = library()
        self.status = status
        self.status_name = lib.fai_status_string(status).decode()
        self.message = message
        super().__init__(f"{self.status_name}\n  {message}")


def _check(status):
    if status != 0:
        raise FaiError(status, library().fai_last_error().decode())


# ---- argument checks (raise before anything reaches the library) -------------------------

def _rank(v, n, what):
    if len(v.shape) != n:
        raise ValueError(f"fai: {v.name} must be {what} (rank {n}); got shape {v.shape}")


def _fp16_rows(v, bf16=False):
    if v.dtype != "float16" and not (bf16 and v.dtype == "bfloat16"):
        raise TypeError(f"fai: {v.name} must be float16{' or bfloat16' if bf16 else ''}; got {v.dtype}")
    if v.shape[-1] > 1 and v.strides[-1] != 1:
        raise ValueError(f"fai: {v.name}'s last (head_dim) dimension must be contiguous; strides {v.strides}")
    if v.ptr % 16:
        raise ValueError(f"fai: {v.name} is not 16-byte aligned (address {v.ptr:#x})")
    for s in v.strides[:-1]:
        if s % 8:
            raise ValueError(f"fai: {v.name}'s strides {v.strides} must be multiples of 8 elements (16 bytes)")


_CACHE_DTYPES = {"float16": _lib.FAI_DTYPE_FP16, "bfloat16": _lib.FAI_DTYPE_BF16, "int8": _lib.FAI_DTYPE_INT8,
                 "float8_e4m3fn": _lib.FAI_DTYPE_FP8_E4M3, "float8_e5m2": _lib.FAI_DTYPE_FP8_E5M2}
_CACHE_NAMES = {"fp16": "float16", "bf16": "bfloat16", "int8": "int8", "fp8_e4m3": "float8_e4m3fn",
                "fp8_e5m2": "float8_e5m2"}


def _unquantized_cache_matches(cname, rows, what):
    """An FP16 or BF16 cache holds `rows`' dtype (q's for decode, k_new's for kv_append);
    quantized caches take either."""
    if cname in ("float16", "bfloat16") and cname != rows.dtype:
        raise TypeError(f"fai: k_cache is {cname} but {rows.name} is {rows.dtype}: an unquantized cache must hold "
                        f"{what}'s dtype (quantized caches take float16 or bfloat16 {what})")


def _cache_dtype(kv, vv, cache_dtype):
    """The fai_dtype of a cache from its arrays' element type (uint8 arrays need cache_dtype)."""
    _same("v_cache's element type", vv.dtype, kv.dtype)
    name = kv.dtype
    if cache_dtype is not None:
        if cache_dtype not in _CACHE_NAMES:
            raise ValueError(f"fai: cache_dtype {cache_dtype!r} is not one of {sorted(_CACHE_NAMES)}")
        want = _CACHE_NAMES[cache_dtype]
        if name != want and not (name == "uint8" and _ITEMSIZE[want] == 1):
            raise TypeError(f"fai: cache_dtype {cache_dtype!r} does not match k_cache's element type {name}")
        name = want
    if name not in _CACHE_DTYPES:
        raise TypeError(f"fai: k_cache has element type {name}; expected float16, bfloat16, int8, float8_e4m3fn or "
                        f"float8_e5m2 (uint8 with cache_dtype=)")
    return name, _CACHE_DTYPES[name]


def _cache_rows(v):
    """A cache array: contiguous head_dim, 16-byte aligned, strides of whole 16 bytes."""
    item = _ITEMSIZE[v.dtype]
    if v.shape[-1] > 1 and v.strides[-1] != 1:
        raise ValueError(f"fai: {v.name}'s last (head_dim) dimension must be contiguous; strides {v.strides}")
    if v.ptr % 16:
        raise ValueError(f"fai: {v.name} is not 16-byte aligned (address {v.ptr:#x})")
    for s in v.strides[:-1]:
        if (s * item) % 16:
            raise ValueError(f"fai: {v.name}'s strides {v.strides} must be multiples of 16 bytes")


def _scales(name, scale, shape):
    """An int8 cache's float32 scales [batch, capacity, num_kv_heads] (any strides)."""
    if scale is None:
        raise TypeError(f"fai: {name} is required for an int8 cache")
    s = view(name, scale)
    if s.dtype != "float32":
        pairs = " (a bfloat16 k_scale [..., 2] holds both scales: pass v_scale=None)" if s.dtype == "bfloat16" else ""
        raise TypeError(f"fai: {name} must be float32; got {s.dtype}{pairs}")
    _same(f"{name}'s shape", s.shape, shape)
    if s.ptr % 4:
        raise ValueError(f"fai: {name} is not 4-byte aligned")
    return s


def _int8_scales(k_scale, v_scale, shape):
    """An int8 cache's scales: float32 k_scale and v_scale [batch, capacity, num_kv_heads], or
    one bfloat16 k_scale [batch, capacity, num_kv_heads, 2] of (K scale, V scale) pairs
    (FAI_SCALES_BF16X2, half the bytes) with v_scale None. Returns the views (v's None for pairs)."""
    if k_scale is not None and v_scale is None:
        s = view("k_scale", k_scale)
        if s.dtype == "bfloat16":
            _same("k_scale's shape", s.shape, tuple(shape) + (2,))
            # (a dimension of size 1 is never stepped over: its stride may be odd)
            odd = any(x % 2 for x, n in zip(s.strides[:-1], s.shape[:-1]) if n > 1)
            if s.strides[-1] != 1 or odd or s.ptr % 4:
                raise ValueError("fai: a bfloat16 k_scale [batch, capacity, num_kv_heads, 2] needs each (K, V) pair "
                                 f"contiguous and 4-byte aligned (strides even); got strides {s.strides}")
            return s, None
    return _scales("k_scale", k_scale, shape), _scales("v_scale", v_scale, shape)


def _fill_cache(c, kv, vv, dtype, ks, vs):
    c.dtype = dtype
    c.k, c.v = kv.ptr, vv.ptr
    c.seq_stride, c.token_stride, c.head_stride = kv.strides[0], kv.strides[1], kv.strides[2]
    c.capacity = _int32("k_cache's capacity", kv.shape[1])
    if ks is not None and vs is None:  # bfloat16 (K, V) pairs: one 32-bit word per token and head
        c.scale_format = _lib.FAI_SCALES_BF16X2
        c.k_scale, c.v_scale = ks.ptr, None
        c.scale_seq_stride, c.scale_token_stride, c.scale_head_stride = (x // 2 for x in ks.strides[:3])
    elif ks is not None:
        _same("v_scale's strides", vs.strides, ks.strides)
        c.k_scale, c.v_scale = ks.ptr, vs.ptr
        c.scale_seq_stride, c.scale_token_stride, c.scale_head_stride = ks.strides


def _int32_vector(v, n):
    if v.dtype != "int32":
        raise TypeError(f"fai: {v.name} must be int32; got {v.dtype}")
    if len(v.shape) != 1 or v.shape[0] != n:
        raise ValueError(f"fai: {v.name} must have shape ({n},); got {v.shape}")
    if v.shape[0] > 1 and v.strides[0] != 1:
        raise ValueError(f"fai: {v.name} must be contiguous; strides {v.strides}")


def _float32_vector(v, n):
    if v.dtype != "float32":
        raise TypeError(f"fai: {v.name} must be float32; got {v.dtype}")
    if len(v.shape) != 1 or v.shape[0] != n or (n > 1 and v.strides[0] != 1):
        raise ValueError(f"fai: {v.name} must be a contiguous ({n},) vector; got shape {v.shape}")


def _int32(name, value):
    value = int(value)
    if not -2**31 <= value < 2**31:
        raise ValueError(f"fai: {name} ({value}) does not fit fai's 32-bit sizes")
    return value


def _same(name, got, want):
    if got != want:
        raise ValueError(f"fai: {name} is {got}, expected {want}")


def _fai_tensor(v):
    dtype = _lib.FAI_DTYPE_BF16 if v.dtype == "bfloat16" else _lib.FAI_DTYPE_FP16
    return _lib.Tensor(v.ptr, dtype, v.strides[0], v.strides[1])


# ---- torch conveniences (only when the caller's arrays are torch tensors) ------------------

def _torch_of(obj):
    mod = type(obj).__module__
    if mod.startswith("torch"):
        import torch
        return torch
    return None


def _stream(stream, like):
    """(handle, current): the stream handle, the caller's (a torch or CuPy stream, or a raw
    cudaStream_t as an int), else torch's current stream when `like` is a torch tensor (then
    current is True), else the legacy stream."""
    if stream is not None:
        for attr in ("cuda_stream", "ptr"):  # torch, CuPy
            if hasattr(stream, attr):
                return int(getattr(stream, attr)), False
        return int(stream), False
    torch = _torch_of(like)
    if torch is not None:
        return torch.cuda.current_stream(like.device).cuda_stream, True
    return 0, False  # the legacy default stream


@contextlib.contextmanager
def _on_device_and_stream(like, handle, arrays, current=False):
    """For torch tensors: all on one device, that device current while fai plans and launches
    (fai uses the current device), and torch's allocations (out, lse, workspace) made for the
    stream the work runs on, so that the caching allocator does not hand them out again
    while fai still uses them. Nothing for other arrays. current: the handle is torch's
    current stream of like's device (then, with that device current, nothing to switch:
    entering the two contexts cost more host time than the rest of a call)."""
    torch = _torch_of(like)
    if torch is None:
        _one_dlpack_device(like, arrays)
        yield
        return
    dev = like.device
    for name, a in arrays:
        if a is not None and _torch_of(a) is not None and a.device != dev:
            raise ValueError(f"fai: {name} is on {a.device}, q on {dev}; all must be on one device")
    if current and dev.index == torch.cuda.current_device():
        yield
        return
    with torch.cuda.device(dev):
        with torch.cuda.stream(torch.cuda.ExternalStream(handle, device=like.device)):
            yield


def _one_dlpack_device(like, arrays):
    """Arrays other than torch tensors run on the current CUDA device, as the C API's pointers
    do (the package cannot switch to theirs: it has no CUDA runtime of its own). Arrays that
    say where they live (DLPack's __dlpack_device__) must at least agree with q's."""
    def device_id(a):
        f = getattr(a, "__dlpack_device__", None)
        return int(f()[1]) if f is not None else None
    first = device_id(like)
    for name, a in arrays:
        d = device_id(a) if a is not None else None
        if first is not None and d is not None and d != first:
            raise ValueError(f"fai: {name} is on CUDA device {d}, q on device {first}; all must be on one device "
                             "(the current one)")


def _alloc_like(obj, shape, dtype_name, name):
    torch = _torch_of(obj)
    if torch is None:
        raise TypeError(f"fai: pass {name}= (fai allocates it only for torch tensors)")
    dt = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32,
          "uint8": torch.uint8}[dtype_name]
    return torch.empty(shape, dtype=dt, device=obj.device)


def _outputs(q, qv, out, lse):
    """out (like q) and the optional lse (float32 [rows, heads]), allocated when asked for
    (out=None, lse=True) and the inputs are torch tensors, and checked."""
    rows, hq = qv.shape[0], qv.shape[1]
    if out is None:
        out = _alloc_like(q, qv.shape, qv.dtype, "out")
    ov = view("out", out)
    _same("out's shape", ov.shape, qv.shape)
    _fp16_rows(ov, bf16=True)
    _same("out's element type", ov.dtype, qv.dtype)
    if lse is False:
        lse = None
    if lse is True:
        lse = _alloc_like(q, (rows, hq), "float32", "lse")
    lse_v = view("lse", lse) if lse is not None else None
    if lse_v is not None:
        if lse_v.dtype != "float32" or lse_v.shape != (rows, hq):
            raise ValueError(f"fai: lse must be float32 ({rows}, {hq}); got {lse_v.dtype} {lse_v.shape}")
        if (hq > 1 and lse_v.strides[1] != 1) or (rows > 1 and lse_v.strides[0] != hq) or lse_v.ptr % 4:
            raise ValueError(f"fai: lse must be contiguous and 4-byte aligned; strides {lse_v.strides}")
    return out, ov, lse, lse_v


def _workspace(lib_size, params, workspace, like, fn):
    size = ctypes.c_size_t(0)
    _check(lib_size(ctypes.byref(params), ctypes.byref(size)))
    if size.value == 0:
        return None, 0
    if workspace is None:
        workspace = _alloc_like(like, (size.value,), "uint8", "workspace")
    w = view("workspace", workspace)
    # The view holds the array until the library call has been made: one allocated here would
    # otherwise be freed, and could be handed out again, before fai's kernels are queued.
    if w is not workspace:
        w.keepalive = (w.keepalive, workspace)
    expected, acc = [], 1
    for s in reversed(w.shape):
        expected.append(acc)
        acc *= s
    if any(n > 1 and st != e for n, st, e in zip(w.shape, w.strides, reversed(expected))):
        raise ValueError(f"fai: workspace must be contiguous; strides {w.strides}")
    nbytes = math.prod(w.shape) * _ITEMSIZE[w.dtype]
    if nbytes < size.value:
        raise ValueError(f"fai: {fn} needs a workspace of {size.value} bytes; got {nbytes}")
    return w, nbytes


def _slopes(alibi_slopes, hq):
    if alibi_slopes is None:
        return None
    s = view("alibi_slopes", alibi_slopes)
    _float32_vector(s, hq)
    return s


def _attention(hq, hk, d, softmax_scale, alibi, slopes, window=None, softcap=0.0, sinks=None):
    """fai_attention, variants included: window = (left, right) keys around each row's
    diagonal (-1: unbounded on that side), softcap (0: off), sinks (float32 [num_q_heads])."""
    if d <= 0:
        raise ValueError(f"fai: head_dim ({d}) must be positive")
    a = library().fai_attention_default()
    a.num_q_heads, a.num_kv_heads, a.head_dim = hq, hk, d
    a.softmax_scale = 1.0 / math.sqrt(d) if softmax_scale is None else float(softmax_scale)
    a.alibi = 1 if (alibi or slopes is not None) else 0
    if slopes is not None:
        a.alibi_slopes = slopes.ptr
    if window is not None:
        try:
            left, right = (int(x) for x in window)
        except (TypeError, ValueError):
            raise ValueError(f"fai: window must be a (left, right) pair of ints; got {window!r}") from None
        if left < -1 or right < -1:
            raise ValueError(f"fai: window ({left}, {right}): each side must be -1 (unbounded) or >= 0")
        a.window, a.window_left, a.window_right = 1, left, right
    a.softcap = float(softcap)
    if sinks is not None:
        sv = view("sinks", sinks)
        _float32_vector(sv, hq)
        a.sinks = sv.ptr
    return a


def decode(q, k_cache, v_cache, seq_lens, *, softmax_scale=None, alibi=False, alibi_slopes=None, max_seq_len=0,
           out=None, lse=None, workspace=None, stream=None, k_scale=None, v_scale=None, cache_dtype=None,
           window=None, softcap=0.0, sinks=None):
    """Decoding attention: one query token per sequence against that sequence's KV cache.

    q: float16 or bfloat16 [batch, num_q_heads, head_dim] (out has q's dtype). k_cache,
    v_cache: [batch, capacity, num_kv_heads, head_dim] views of q's dtype, or quantized (below)
    for either q dtype (any strides with a contiguous head_dim: an HND cache is passed
    permuted to this order). seq_lens: int32 [batch], valid tokens per
    sequence. softmax_scale defaults to 1/sqrt(head_dim); alibi=True uses the standard slopes,
    alibi_slopes (float32 [num_q_heads]) the caller's. max_seq_len: host bound of seq_lens
    for planning the split (0: capacity). out (same shape as q), lse (float32
    [batch, num_q_heads]) and workspace are allocated when omitted and the inputs are torch
    tensors. Runs on `stream` (default: torch's current stream, else the legacy stream).
    A quantized cache (module docstring) takes its scales as k_scale / v_scale (int8) and
    its element type from the arrays (or cache_dtype for uint8 arrays). The variants:
    window=(left, right) (a decode row's diagonal is its last key, so only left matters),
    softcap (logit soft-cap, 0: off), sinks (float32 [num_q_heads] sink logits).
    Returns out (and lse, when given or requested with lse=True)."""
    qv = view("q", q)
    kv, vv, lv = view("k_cache", k_cache), view("v_cache", v_cache), view("seq_lens", seq_lens)
    _rank(qv, 3, "[batch, num_q_heads, head_dim]")
    _rank(kv, 4, "[batch, capacity, num_kv_heads, head_dim]")
    _rank(vv, 4, "[batch, capacity, num_kv_heads, head_dim]")
    _fp16_rows(qv, bf16=True)
    cname, cdtype = _cache_dtype(kv, vv, cache_dtype)
    _unquantized_cache_matches(cname, qv, "q")
    for v in (kv, vv):
        _cache_rows(v)
    ks = vs = None
    if cname == "int8":
        ks, vs = _int8_scales(k_scale, v_scale, kv.shape[:3])
    elif k_scale is not None or v_scale is not None:
        raise ValueError(f"fai: k_scale / v_scale are for int8 caches; this cache is {cname}")
    batch, hq, d = qv.shape
    _same("k_cache's batch and head_dim", (kv.shape[0], kv.shape[3]), (batch, d))
    _same("v_cache's shape", vv.shape, kv.shape)
    _same("v_cache's strides", vv.strides, kv.strides)
    _int32_vector(lv, batch)
    hk = kv.shape[2]
    if hk == 0 or hq % hk:
        raise ValueError(f"fai: num_q_heads ({hq}) must be a multiple of num_kv_heads ({hk})")
    handle, current = _stream(stream, q)
    arrays = [("k_cache", k_cache), ("v_cache", v_cache), ("seq_lens", seq_lens), ("out", out), ("lse", lse),
              ("k_scale", k_scale), ("v_scale", v_scale), ("sinks", sinks), ("alibi_slopes", alibi_slopes),
              ("workspace", workspace)]
    with _on_device_and_stream(q, handle, arrays, current):
        out, ov, lse, lse_v = _outputs(q, qv, out, lse)
        slopes = _slopes(alibi_slopes, hq)

        lib = library()
        p = lib.fai_decode_params_default()
        p.attn = _attention(hq, hk, d, softmax_scale, alibi, slopes, window, softcap, sinks)
        p.batch = batch
        p.q, p.o = _fai_tensor(qv), _fai_tensor(ov)
        _fill_cache(p.cache, kv, vv, cdtype, ks, vs)
        p.batch = _int32("batch", batch)
        p.cache.seq_lens = lv.ptr
        p.cache.max_seq_len = _int32("max_seq_len", max_seq_len)
        p.lse = lse_v.ptr if lse_v is not None else None
        w, wbytes = _workspace(lib.fai_decode_workspace_size, p, workspace, q, "decode")
        _check(lib.fai_decode(ctypes.byref(p), w.ptr if w else None, wbytes, handle))
    return (out, lse) if lse is not None else out


def prefill(q, k, v, cu_seqlens_q, cu_seqlens_k, max_seq_q, *, max_seq_k=0, causal=False, softmax_scale=None,
            alibi=False, alibi_slopes=None, cu_seqlens_q_host=None, out=None, lse=None, workspace=None,
            stream=None, window=None, softcap=0.0, sinks=None, k_cache=None, v_cache=None, seq_lens=None,
            k_scale=None, v_scale=None, cache_dtype=None, max_seq_len=0):
    """Attention over a packed variable-length batch (prefill, chunked prefill, hybrid).

    Chunked prefill / prefix caching from a KV cache: pass k=None, v=None, cu_seqlens_k=None
    and k_cache, v_cache ([batch, capacity, num_kv_heads, head_dim], q's dtype, any strides
    with a contiguous head_dim, as in decode()) and seq_lens (int32 [batch]): sequence b's
    keys are the first seq_lens[b] tokens of cache slot b, its queries the last rows of
    them (append the chunk with kv_append first). Its decode rows (one query row) run on the
    decoding kernels, as in any call. A quantized cache (int8 with k_scale / v_scale, or FP8;
    cache_dtype for uint8 arrays, as in decode()) serves float16 and bfloat16 q: its keys and
    values are dequantized into the workspace in q's dtype first, max_seq_len keys per
    sequence when 0 < max_seq_len <= capacity (then a true bound), else capacity.

    q: float16 [total_q, num_q_heads, head_dim]; k, v: float16 [total_k, num_kv_heads,
    head_dim] (views into a fused QKV buffer work). cu_seqlens_q / cu_seqlens_k: int32
    [batch + 1] device offsets: sequence b owns rows cu[b] .. cu[b + 1] - 1. max_seq_q: host
    bound of the query lengths (sizes the grid). causal: mask aligned to the bottom-right
    corner. Sequences with one query row are decode steps and run on the decoding kernels;
    pass cu_seqlens_q_host (a list of ints equal to cu_seqlens_q) to launch only the kernels
    the batch needs. out, lse (float32 [total_q, num_q_heads]) and workspace as in decode().
    q, k, v (and out) may all be bfloat16 instead. The variants: window=(left, right) keys
    around each row's bottom-right-aligned diagonal (-1: unbounded), softcap, sinks (float32
    [num_q_heads]). Returns out (and lse when given or lse=True)."""
    from_cache = k_cache is not None or v_cache is not None or seq_lens is not None
    if from_cache:
        if k is not None or v is not None or cu_seqlens_k is not None:
            raise ValueError("fai: with k_cache / v_cache / seq_lens, pass k, v and cu_seqlens_k as None "
                             "(the keys and values come from the cache)")
        if k_cache is None or v_cache is None or seq_lens is None:
            raise TypeError("fai: prefill from a cache needs k_cache, v_cache and seq_lens")
        qv, kv, vv = view("q", q), view("k_cache", k_cache), view("v_cache", v_cache)
        _rank(qv, 3, "[tokens, heads, head_dim]")
        _fp16_rows(qv, bf16=True)
        for x in (kv, vv):
            _rank(x, 4, "[batch, capacity, num_kv_heads, head_dim]")
            _cache_rows(x)
        cname, cdtype = _cache_dtype(kv, vv, cache_dtype)
        _unquantized_cache_matches(cname, qv, "q")
        ks = vs = None
        if cname == "int8":
            ks, vs = _int8_scales(k_scale, v_scale, kv.shape[:3])
        elif k_scale is not None or v_scale is not None:
            raise ValueError(f"fai: k_scale / v_scale are for int8 caches; this cache is {cname}")
        _same("v_cache's shape", vv.shape, kv.shape)
        _same("v_cache's strides", vv.strides, kv.strides)
        total_q, hq, d = qv.shape
        total_k, hk, dk = 0, kv.shape[2], kv.shape[3]
        _same("k_cache's head_dim", dk, d)
        cq = view("cu_seqlens_q", cu_seqlens_q)
    else:
        if k_scale is not None or v_scale is not None or cache_dtype is not None:
            raise ValueError("fai: k_scale, v_scale and cache_dtype are for a quantized k_cache / v_cache")
        qv, kv, vv = view("q", q), view("k", k), view("v", v)
        cq, ck = view("cu_seqlens_q", cu_seqlens_q), view("cu_seqlens_k", cu_seqlens_k)
        for x in (qv, kv, vv):
            _rank(x, 3, "[tokens, heads, head_dim]")
            _fp16_rows(x, bf16=True)
        _same("k's and v's element type", (kv.dtype, vv.dtype), (qv.dtype, qv.dtype))
        total_q, hq, d = qv.shape
        total_k, hk, dk = kv.shape
        _same("k's head_dim", dk, d)
        _same("v's shape", vv.shape, kv.shape)
    if hk == 0 or hq % hk:
        raise ValueError(f"fai: num_q_heads ({hq}) must be a multiple of num_kv_heads ({hk})")
    if len(cq.shape) != 1 or cq.shape[0] < 1:
        raise ValueError(f"fai: cu_seqlens_q must have shape (batch + 1,); got {cq.shape}")
    batch = cq.shape[0] - 1
    _int32_vector(cq, batch + 1)
    if from_cache:
        lv = view("seq_lens", seq_lens)
        _int32_vector(lv, batch)
        _same("k_cache's batch", kv.shape[0], batch)
    else:
        _int32_vector(ck, batch + 1)
    if batch > 0 and int(max_seq_q) < 1:
        raise ValueError(f"fai: max_seq_q ({max_seq_q}) must be >= 1")
    host = None
    if cu_seqlens_q_host is not None:
        host_list = [int(x) for x in cu_seqlens_q_host]
        if len(host_list) != batch + 1:
            raise ValueError(f"fai: cu_seqlens_q_host has {len(host_list)} entries, expected {batch + 1}")
        host = (ctypes.c_int32 * (batch + 1))(*host_list)
    handle, current = _stream(stream, q)
    arrays = [("k", k), ("v", v), ("cu_seqlens_q", cu_seqlens_q), ("cu_seqlens_k", cu_seqlens_k), ("out", out),
              ("lse", lse), ("sinks", sinks), ("k_cache", k_cache), ("v_cache", v_cache), ("seq_lens", seq_lens),
              ("k_scale", k_scale), ("v_scale", v_scale), ("alibi_slopes", alibi_slopes), ("workspace", workspace)]
    with _on_device_and_stream(q, handle, arrays, current):
        out, ov, lse, lse_v = _outputs(q, qv, out, lse)
        slopes = _slopes(alibi_slopes, hq)

        lib = library()
        p = lib.fai_prefill_params_default()
        if from_cache:  # k, v and cu_seqlens_k stay NULL, total_k 0
            cache = _lib.KVCache()
            _fill_cache(cache, kv, vv, cdtype, ks, vs)
            cache.seq_lens = lv.ptr
            cache.max_seq_len = _int32("max_seq_len", max_seq_len)
            p.attn = _attention(hq, hk, d, softmax_scale, alibi, slopes, window, softcap, sinks)
            p.batch, p.causal = batch, 1 if causal else 0
            p.q, p.o = _fai_tensor(qv), _fai_tensor(ov)
            p.k.dtype = p.v.dtype = p.q.dtype
            p.cu_seqlens_q = cq.ptr
            p.total_q, p.max_seq_q = _int32("total_q", total_q), _int32("max_seq_q", max_seq_q)
            if host is not None:
                p.cu_seqlens_q_host = ctypes.cast(host, ctypes.POINTER(ctypes.c_int32))
            p.lse = lse_v.ptr if lse_v is not None else None
            p.kv_cache = ctypes.pointer(cache)
            w, wbytes = _workspace(lib.fai_prefill_workspace_size, p, workspace, q, "prefill")
            _check(lib.fai_prefill(ctypes.byref(p), w.ptr if w else None, wbytes, handle))
            return (out, lse) if lse is not None else out
        p.attn = _attention(hq, hk, d, softmax_scale, alibi, slopes, window, softcap, sinks)
        p.batch, p.causal = batch, 1 if causal else 0
        p.q, p.k, p.v, p.o = _fai_tensor(qv), _fai_tensor(kv), _fai_tensor(vv), _fai_tensor(ov)
        p.cu_seqlens_q, p.cu_seqlens_k = cq.ptr, ck.ptr
        p.total_q, p.total_k = _int32("total_q", total_q), _int32("total_k", total_k)
        p.max_seq_q, p.max_seq_k = _int32("max_seq_q", max_seq_q), _int32("max_seq_k", max_seq_k)
        if host is not None:
            p.cu_seqlens_q_host = ctypes.cast(host, ctypes.POINTER(ctypes.c_int32))
        p.lse = lse_v.ptr if lse_v is not None else None
        w, wbytes = _workspace(lib.fai_prefill_workspace_size, p, workspace, q, "prefill")
        _check(lib.fai_prefill(ctypes.byref(p), w.ptr if w else None, wbytes, handle))
    return (out, lse) if lse is not None else out


hybrid = prefill  # a batch mixing prefill sequences and decode steps is a prefill call


def kv_append(k_new, v_new, slots, k_cache, v_cache, *, k_scale=None, v_scale=None, cache_dtype=None, stream=None):
    """Writes new rows into a KV cache, quantizing them to the cache's element type.

    k_new, v_new: float16 or bfloat16 (both one dtype) [tokens, num_kv_heads, head_dim] (views
    work). slots: int64 [tokens] device array: row i goes to sequence slots[i] // capacity,
    position slots[i] % capacity (vLLM's slot mapping); a negative slot skips the row. k_cache,
    v_cache: [batch, capacity, num_kv_heads, head_dim] of k_new's dtype (float16 or bfloat16,
    copied), or quantized from either: int8 (with float32 k_scale / v_scale [batch, capacity,
    num_kv_heads], or one bfloat16 k_scale [..., 2] of (K, V) pairs, written too), float8_e4m3fn or
    float8_e5m2 (uint8 arrays with cache_dtype=). Runs on `stream` (default: torch's current
    stream for torch tensors, else the legacy stream). Returns None; the sequence lengths are
    the caller's to update."""
    kn, vn, sv = view("k_new", k_new), view("v_new", v_new), view("slots", slots)
    kv, vv = view("k_cache", k_cache), view("v_cache", v_cache)
    _rank(kn, 3, "[tokens, num_kv_heads, head_dim]")
    _rank(vn, 3, "[tokens, num_kv_heads, head_dim]")
    _rank(kv, 4, "[batch, capacity, num_kv_heads, head_dim]")
    _rank(vv, 4, "[batch, capacity, num_kv_heads, head_dim]")
    for v in (kn, vn):
        _fp16_rows(v, bf16=True)
    _same("v_new's element type", vn.dtype, kn.dtype)
    _same("v_new's shape", vn.shape, kn.shape)
    tokens, hk, d = kn.shape
    _same("k_cache's num_kv_heads and head_dim", kv.shape[2:], (hk, d))
    _same("v_cache's shape", vv.shape, kv.shape)
    _same("v_cache's strides", vv.strides, kv.strides)
    cname, cdtype = _cache_dtype(kv, vv, cache_dtype)
    _unquantized_cache_matches(cname, kn, "k_new")
    for v in (kv, vv):
        _cache_rows(v)
    if sv.dtype != "int64" or sv.shape != (tokens,) or (tokens > 1 and sv.strides[0] != 1):
        raise ValueError(f"fai: slots must be a contiguous int64 ({tokens},) array; got {sv.dtype} {sv.shape}")
    ks = vs = None
    if cname == "int8":
        ks, vs = _int8_scales(k_scale, v_scale, kv.shape[:3])
    elif k_scale is not None or v_scale is not None:
        raise ValueError(f"fai: k_scale / v_scale are for int8 caches; this cache is {cname}")
    handle, current = _stream(stream, k_new)
    arrays = [("v_new", v_new), ("slots", slots), ("k_cache", k_cache), ("v_cache", v_cache), ("k_scale", k_scale),
              ("v_scale", v_scale)]
    with _on_device_and_stream(k_new, handle, arrays, current):
        lib = library()
        p = lib.fai_kv_append_params_default()
        p.num_kv_heads, p.head_dim = hk, d
        p.num_tokens = _int32("tokens", tokens)
        p.k_new, p.v_new = _fai_tensor(kn), _fai_tensor(vn)
        p.slots = sv.ptr
        p.cache_batch = _int32("k_cache's batch", kv.shape[0])
        _fill_cache(p.cache, kv, vv, cdtype, ks, vs)
        _check(lib.fai_kv_append(ctypes.byref(p), handle))


def merge_states(outs, lses, *, out=None, lse=None, stream=None):
    """Merges attention states: the attention over a union of key sets from the attention
    over each set (cascade / shared-prefix attention, a KV split across calls or GPUs).

    outs: 1 to 16 arrays of float16 (or all bfloat16) [rows, num_heads, head_dim], part p's
    attention output (any strides with a contiguous head_dim); lses: as many float32
    [rows, num_heads] contiguous arrays, part p's natural log-sum-exp (the lse of
    fai.decode / fai.prefill). lse = log sum_p e^(lses[p]) and
    out = sum_p e^(lses[p] - lse) outs[p]. A part whose LSE is -inf contributes nothing (its
    rows are not read); a row where all are -inf gets zeros and -inf. out may be one of outs
    (in place) and lse one of lses; out and lse (lse=True) are allocated when omitted and the
    inputs are torch tensors. Runs on `stream` (default: torch's current stream for torch
    tensors, else the legacy stream). Returns out (and lse, when given or lse=True)."""
    outs, lses = list(outs), list(lses)
    if not 1 <= len(outs) <= _lib.FAI_MERGE_MAX_PARTS:
        raise ValueError(f"fai: merge_states takes 1 to {_lib.FAI_MERGE_MAX_PARTS} parts; got {len(outs)}")
    if len(lses) != len(outs):
        raise ValueError(f"fai: merge_states got {len(outs)} outputs but {len(lses)} LSEs")
    ovs = [view(f"outs[{i}]", o) for i, o in enumerate(outs)]
    for v in ovs:
        _rank(v, 3, "[rows, num_heads, head_dim]")
        _fp16_rows(v, bf16=True)
    for v in ovs[1:]:
        _same(f"{v.name}'s shape", v.shape, ovs[0].shape)
        _same(f"{v.name}'s element type", v.dtype, ovs[0].dtype)
    rows, heads, d = ovs[0].shape
    lvs = [view(f"lses[{i}]", x) for i, x in enumerate(lses)]
    for v in lvs:
        if v.dtype != "float32" or v.shape != (rows, heads):
            raise ValueError(f"fai: {v.name} must be float32 ({rows}, {heads}); got {v.dtype} {v.shape}")
        if (heads > 1 and v.strides[1] != 1) or (rows > 1 and v.strides[0] != heads) or v.ptr % 4:
            raise ValueError(f"fai: {v.name} must be contiguous and 4-byte aligned; strides {v.strides}")
    handle, current = _stream(stream, outs[0])
    arrays = [(f"outs[{i}]", o) for i, o in enumerate(outs)] + [(f"lses[{i}]", x) for i, x in enumerate(lses)]
    with _on_device_and_stream(outs[0], handle, arrays + [("out", out), ("lse", lse)], current):
        out, ov, lse, lse_v = _outputs(outs[0], ovs[0], out, lse)
        lib = library()
        p = lib.fai_merge_params_default()
        parts = (_lib.Tensor * len(ovs))(*[_fai_tensor(v) for v in ovs])
        parts_lse = (ctypes.c_void_p * len(lvs))(*[v.ptr for v in lvs])
        p.num_parts = len(ovs)
        p.num_rows, p.num_heads, p.head_dim = _int32("rows", rows), _int32("num_heads", heads), d
        p.parts = ctypes.cast(parts, ctypes.POINTER(_lib.Tensor))
        p.parts_lse = ctypes.cast(parts_lse, ctypes.POINTER(ctypes.c_void_p))
        p.o = _fai_tensor(ov)
        p.lse = lse_v.ptr if lse_v is not None else None
        _check(lib.fai_merge_states(ctypes.byref(p), handle))
    return (out, lse) if lse is not None else out


def merge_state(o_a, lse_a, o_b, lse_b, **kwargs):
    """merge_states([o_a, o_b], [lse_a, lse_b], **kwargs): two parts (FlashInfer's merge_state)."""
    return merge_states([o_a, o_b], [lse_a, lse_b], **kwargs)
