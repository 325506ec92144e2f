"""ctypes bindings of libfai: the structs of include/fai.h, field for field, and the library
loader. Kept in one place so tests/abi can compare these layouts with the C compiler's."""
import ctypes
import os
from ctypes import POINTER, Structure, c_char_p, c_float, c_int, c_int32, c_int64, c_size_t, c_void_p

# The fai.h version these structs were written from, (MAJOR, MINOR): a library of another
# minor or major version may have other struct layouts (structs grow at their end, and the
# *_default() functions return them by value).
ABI_VERSION = (0, 1)

FAI_DTYPE_FP16 = 0
FAI_DTYPE_BF16 = 1
FAI_DTYPE_INT8, FAI_DTYPE_FP8_E4M3, FAI_DTYPE_FP8_E5M2 = 2, 3, 4
FAI_SCALES_FP32, FAI_SCALES_BF16X2 = 0, 1  # fai_kv_cache.scale_format


class Tensor(Structure):
    """fai_tensor: a [tokens, heads, head_dim] view, strides in elements."""
    _fields_ = [("data", c_void_p), ("dtype", c_int), ("token_stride", c_int64), ("head_stride", c_int64)]


class KVCache(Structure):
    """fai_kv_cache: one contiguous slot per sequence."""
    _fields_ = [("dtype", c_int), ("k", c_void_p), ("v", c_void_p), ("seq_stride", c_int64),
                ("token_stride", c_int64), ("head_stride", c_int64), ("capacity", c_int32),
                ("seq_lens", c_void_p), ("max_seq_len", c_int32), ("scale_format", c_int),
                ("k_scale", c_void_p), ("v_scale", c_void_p),
                ("scale_seq_stride", c_int64), ("scale_token_stride", c_int64), ("scale_head_stride", c_int64),
                ("page_table", c_void_p), ("page_table_stride", c_int64), ("page_size", c_int32),
                ("num_pages", c_int32)]


class AppendParams(Structure):
    """fai_kv_append_params."""
    _fields_ = [("num_kv_heads", c_int32), ("head_dim", c_int32), ("num_tokens", c_int32), ("k_new", Tensor),
                ("v_new", Tensor), ("slots", c_void_p), ("cache_batch", c_int32), ("cache", KVCache)]


class Attention(Structure):
    """fai_attention: head layout, scale, ALiBi."""
    _fields_ = [("num_q_heads", c_int32), ("num_kv_heads", c_int32), ("head_dim", c_int32),
                ("softmax_scale", c_float), ("alibi", c_int32), ("alibi_slopes", c_void_p), ("window", c_int32),
                ("window_left", c_int32), ("window_right", c_int32), ("softcap", c_float), ("sinks", c_void_p)]


class DecodeParams(Structure):
    """fai_decode_params."""
    _fields_ = [("attn", Attention), ("batch", c_int32), ("q", Tensor), ("o", Tensor), ("cache", KVCache),
                ("lse", c_void_p)]


class PrefillParams(Structure):
    """fai_prefill_params."""
    _fields_ = [("attn", Attention), ("batch", c_int32), ("causal", c_int32), ("q", Tensor), ("k", Tensor),
                ("v", Tensor), ("o", Tensor), ("cu_seqlens_q", c_void_p), ("cu_seqlens_k", c_void_p),
                ("total_q", c_int32), ("total_k", c_int32), ("max_seq_q", c_int32), ("max_seq_k", c_int32),
                ("cu_seqlens_q_host", POINTER(c_int32)), ("lse", c_void_p), ("kv_cache", POINTER(KVCache))]


FAI_MERGE_MAX_PARTS = 16


class MergeParams(Structure):
    """fai_merge_params: parts and parts_lse point at host arrays (of fai_tensor and of
    device float pointers)."""
    _fields_ = [("num_parts", c_int32), ("num_rows", c_int32), ("num_heads", c_int32), ("head_dim", c_int32),
                ("parts", POINTER(Tensor)), ("parts_lse", POINTER(c_void_p)), ("o", Tensor), ("lse", c_void_p)]


STRUCTS = {"fai_tensor": Tensor, "fai_kv_cache": KVCache, "fai_attention": Attention,
           "fai_decode_params": DecodeParams, "fai_prefill_params": PrefillParams,
           "fai_kv_append_params": AppendParams}
STRUCTS["fai_merge_params"] = MergeParams


class LibraryNotFound(OSError):
    """libfai could not be loaded; the message lists every place that was tried."""


def _candidates():
    env = os.environ.get("FAI_LIBRARY")
    if env:
        return [env]  # an explicit choice is the only one tried
    here = os.path.dirname(os.path.abspath(__file__))
    names = ["libfai.so", "libfai.so.%d.%d" % ABI_VERSION, "libfai.dylib", "fai.dll"]
    found = [os.path.join(here, n) for n in names]
    import ctypes.util
    system = ctypes.util.find_library("fai")
    return found + ([system] if system else []) + ["libfai.so"]


def abi_mismatch(version):
    """Why a library of fai_version() `version` cannot serve these bindings, or None."""
    major, minor = version // 10000, version // 100 % 100
    if (major, minor) == ABI_VERSION:
        return None
    return (f"it is version {major}.{minor}.{version % 100}, these bindings are for {ABI_VERSION[0]}.{ABI_VERSION[1]} "
            "(other struct layouts)")


def load():
    """Loads libfai: $FAI_LIBRARY, else next to this package, else the system's search path;
    a library of another ABI version (abi_mismatch) is passed over."""
    tried = []
    for path in _candidates():
        try:
            lib = ctypes.CDLL(path)
        except OSError as e:
            tried.append(f"{path}: {e}")
            continue
        lib.fai_version.restype = c_int
        lib.fai_version.argtypes = []
        why = abi_mismatch(lib.fai_version())
        if why:
            tried.append(f"{path}: {why}")
            continue
        _declare(lib)
        return lib
    raise LibraryNotFound("fai: could not load libfai; tried:\n  " + "\n  ".join(tried) +
                          "\nSet FAI_LIBRARY to the path of libfai.so.")


def _declare(lib):
    lib.fai_status_string.restype = c_char_p
    lib.fai_status_string.argtypes = [c_int]
    lib.fai_last_error.restype = c_char_p
    lib.fai_last_error.argtypes = []
    lib.fai_version.restype = c_int
    lib.fai_version.argtypes = []
    lib.fai_attention_default.restype = Attention
    lib.fai_attention_default.argtypes = []
    lib.fai_decode_params_default.restype = DecodeParams
    lib.fai_decode_params_default.argtypes = []
    lib.fai_decode_workspace_size.restype = c_int
    lib.fai_decode_workspace_size.argtypes = [POINTER(DecodeParams), POINTER(c_size_t)]
    lib.fai_decode.restype = c_int
    lib.fai_decode.argtypes = [POINTER(DecodeParams), c_void_p, c_size_t, c_void_p]
    lib.fai_prefill_params_default.restype = PrefillParams
    lib.fai_prefill_params_default.argtypes = []
    lib.fai_prefill_workspace_size.restype = c_int
    lib.fai_prefill_workspace_size.argtypes = [POINTER(PrefillParams), POINTER(c_size_t)]
    lib.fai_kv_append_params_default.restype = AppendParams
    lib.fai_kv_append_params_default.argtypes = []
    lib.fai_kv_append.restype = c_int
    lib.fai_kv_append.argtypes = [POINTER(AppendParams), c_void_p]
    lib.fai_prefill.restype = c_int
    lib.fai_prefill.argtypes = [POINTER(PrefillParams), c_void_p, c_size_t, c_void_p]
    lib.fai_merge_params_default.restype = MergeParams
    lib.fai_merge_params_default.argtypes = []
    lib.fai_merge_states.restype = c_int
    lib.fai_merge_states.argtypes = [POINTER(MergeParams), c_void_p]
