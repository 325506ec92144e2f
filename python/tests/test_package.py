"""CPU tests of the Python package: no torch, no GPU. Device arrays are faked with objects
offering __cuda_array_interface__ (and a hand-made DLPack capsule); nothing here makes the
library touch device memory: every call that reaches libfai is one it rejects during its
host-side validation (or one with nothing to launch).

Environment (ctest sets them): FAI_LIBRARY, the built libfai.so; FAI_ABI_LAYOUT, the
tests/abi_layout program that prints the C layout of the public structs."""
import ctypes
import json
import os
import subprocess
import unittest

import fai
from fai import _lib, _tensor


class FakeArray:
    """A CUDA array as far as __cuda_array_interface__ goes (the address is never used)."""

    def __init__(self, shape, typestr="<f2", strides=None, ptr=0x7F0000000000):
        self.__cuda_array_interface__ = {"shape": tuple(shape), "typestr": typestr, "data": (ptr, False),
                                         "strides": strides, "version": 3}


def f16(*shape, **kw):
    return FakeArray(shape, "<f2", **kw)


def i32(*shape, **kw):
    return FakeArray(shape, "<i4", **kw)


def decode_args(batch=2, hq=8, hk=2, d=128, cap=64):
    return dict(q=f16(batch, hq, d), k_cache=f16(batch, cap, hk, d), v_cache=f16(batch, cap, hk, d),
                seq_lens=i32(batch), out=f16(batch, hq, d))


def prefill_args(batch=3, tq=40, tk=50, hq=8, hk=2, d=64):
    return dict(q=f16(tq, hq, d), k=f16(tk, hk, d), v=f16(tk, hk, d), cu_seqlens_q=i32(batch + 1),
                cu_seqlens_k=i32(batch + 1), max_seq_q=16, out=f16(tq, hq, d))


class OnDevice(FakeArray):
    """A FakeArray that names its CUDA device as DLPack does (__dlpack_device__)."""

    def __init__(self, shape, device, typestr="<f2"):
        super().__init__(shape, typestr)
        self.device_id = device

    def __dlpack_device__(self):
        return (2, self.device_id)  # kDLCUDA


class ArgumentChecks(unittest.TestCase):
    def assertRaisesNaming(self, exc, needle, fn, **kw):
        with self.assertRaises(exc) as cm:
            fn(**kw)
        self.assertIn(needle, str(cm.exception))

    def test_arrays_on_two_devices(self):
        a = decode_args()
        a["q"] = OnDevice((2, 8, 128), 0)
        a["v_cache"] = OnDevice((2, 64, 2, 128), 1)
        self.assertRaisesNaming(ValueError, "v_cache is on CUDA device 1, q on device 0", fai.decode, **a)

    def test_decode_dtype(self):
        a = decode_args()
        a["q"] = FakeArray((2, 8, 128), "<f4")
        self.assertRaisesNaming(TypeError, "q must be float16", fai.decode, **a)

    def test_decode_rank(self):
        a = decode_args()
        a["k_cache"] = f16(2, 64, 256)
        self.assertRaisesNaming(ValueError, "k_cache must be", fai.decode, **a)

    def test_head_dim_contiguous(self):
        a = decode_args()
        a["q"] = f16(2, 8, 128, strides=(8 * 128 * 2, 128 * 2, 4))
        self.assertRaisesNaming(ValueError, "q's last (head_dim) dimension must be contiguous", fai.decode, **a)

    def test_misaligned(self):
        a = decode_args()
        a["v_cache"] = f16(2, 64, 2, 128, ptr=0x7F0000000008)
        self.assertRaisesNaming(ValueError, "v_cache is not 16-byte aligned", fai.decode, **a)

    def test_stride_multiple_of_8(self):
        a = decode_args()
        a["k_cache"] = f16(2, 64, 2, 128, strides=(64 * 2 * 128 * 2, 2 * 128 * 2, 132 * 2, 2))
        self.assertRaisesNaming(ValueError, "multiples of 16 bytes", fai.decode, **a)
        a = decode_args()
        a["q"] = f16(2, 8, 128, strides=(8 * 132 * 2, 132 * 2, 2))
        self.assertRaisesNaming(ValueError, "multiples of 8 elements", fai.decode, **a)

    def test_gqa_ratio(self):
        a = decode_args(hq=12, hk=8)
        self.assertRaisesNaming(ValueError, "num_q_heads (12) must be a multiple of num_kv_heads (8)", fai.decode,
                                **a)

    def test_seq_lens(self):
        a = decode_args()
        a["seq_lens"] = i32(3)
        self.assertRaisesNaming(ValueError, "seq_lens must have shape (2,)", fai.decode, **a)
        a["seq_lens"] = FakeArray((2,), "<f4")
        self.assertRaisesNaming(TypeError, "seq_lens must be int32", fai.decode, **a)

    def test_out_needed_without_torch(self):
        a = decode_args()
        del a["out"]
        self.assertRaisesNaming(TypeError, "pass out=", fai.decode, **a)

    def test_not_a_device_array(self):
        class HostArray:
            device = "cpu"
        a = decode_args()
        a["q"] = HostArray()
        self.assertRaisesNaming(ValueError, "q is in host memory", fai.decode, **a)
        a["q"] = [1, 2, 3]
        self.assertRaisesNaming(TypeError, "neither __cuda_array_interface__ nor __dlpack__", fai.decode, **a)

    def test_unreadable_element_type(self):
        # An element type neither interface gives fai: the message lists what it reads.
        a = decode_args()
        a["q"] = FakeArray((2, 8, 128), "<f8")
        self.assertRaisesNaming(TypeError, "q has element type '<f8'; fai reads float16, float32", fai.decode, **a)

    def test_prefill_shapes(self):
        a = prefill_args()
        a["v"] = f16(49, 2, 64)
        self.assertRaisesNaming(ValueError, "v's shape", fai.prefill, **a)
        a = prefill_args()
        a["cu_seqlens_k"] = i32(3)
        self.assertRaisesNaming(ValueError, "cu_seqlens_k must have shape (4,)", fai.prefill, **a)
        a = prefill_args()
        a["max_seq_q"] = 0
        self.assertRaisesNaming(ValueError, "max_seq_q (0) must be >= 1", fai.prefill, **a)
        a = prefill_args()
        a["cu_seqlens_q_host"] = [0, 1]
        self.assertRaisesNaming(ValueError, "cu_seqlens_q_host has 2 entries, expected 4", fai.prefill, **a)

    def test_lse(self):
        a = decode_args()
        a["lse"] = FakeArray((2, 8), "<f4", strides=(4, 8))  # column-major
        self.assertRaisesNaming(ValueError, "lse must be contiguous", fai.decode, **a)
        a["lse"] = FakeArray((2, 8), "<f4", ptr=0x7F0000000002)
        self.assertRaisesNaming(ValueError, "4-byte aligned", fai.decode, **a)
        a["lse"] = FakeArray((8, 2), "<f4")
        self.assertRaisesNaming(ValueError, "lse must be float32 (2, 8)", fai.decode, **a)

    def test_alibi_slopes(self):
        a = decode_args()
        a["alibi_slopes"] = FakeArray((4,), "<f4")
        self.assertRaisesNaming(ValueError, "alibi_slopes must be a contiguous (8,) vector", fai.decode, **a)


def append_args(tokens=5, batch=2, cap=64, hk=2, d=128, typestr="|i1", scales=True):
    a = dict(k_new=f16(tokens, hk, d), v_new=f16(tokens, hk, d), slots=FakeArray((tokens,), "<i8"),
             k_cache=FakeArray((batch, cap, hk, d), typestr), v_cache=FakeArray((batch, cap, hk, d), typestr))
    if scales:
        a["k_scale"] = FakeArray((batch, cap, hk), "<f4")
        a["v_scale"] = FakeArray((batch, cap, hk), "<f4")
    return a


class QuantizedCaches(unittest.TestCase):
    def assertRaisesNaming(self, exc, needle, fn, **kw):
        with self.assertRaises(exc) as cm:
            fn(**kw)
        self.assertIn(needle, str(cm.exception))

    def test_int8_needs_scales(self):
        a = append_args(scales=False)
        self.assertRaisesNaming(TypeError, "k_scale is required for an int8 cache", fai.kv_append, **a)
        d = decode_args()
        d["k_cache"] = FakeArray((2, 64, 2, 128), "|i1")
        d["v_cache"] = FakeArray((2, 64, 2, 128), "|i1")
        self.assertRaisesNaming(TypeError, "k_scale is required", fai.decode, **d)

    def test_scales_only_for_int8(self):
        a = append_args(typestr="|u1")
        self.assertRaisesNaming(ValueError, "k_scale / v_scale are for int8 caches", fai.kv_append,
                                cache_dtype="fp8_e4m3", **a)

    def test_uint8_needs_cache_dtype(self):
        a = append_args(typestr="|u1", scales=False)
        self.assertRaisesNaming(TypeError, "uint8 with cache_dtype=", fai.kv_append, **a)
        self.assertRaisesNaming(ValueError, "cache_dtype 'fp4'", fai.kv_append, cache_dtype="fp4", **a)
        a = append_args(typestr="<f2", scales=False)
        self.assertRaisesNaming(TypeError, "does not match", fai.kv_append, cache_dtype="fp8_e5m2", **a)

    def test_slots(self):
        a = append_args()
        a["slots"] = FakeArray((5,), "<i4")
        self.assertRaisesNaming(ValueError, "slots must be a contiguous int64 (5,)", fai.kv_append, **a)

    def test_cache_shape_and_strides(self):
        a = append_args()
        a["v_cache"] = FakeArray((2, 64, 2, 64), "|i1")
        self.assertRaisesNaming(ValueError, "v_cache's shape", fai.kv_append, **a)
        a = append_args()
        a["k_scale"] = FakeArray((2, 64, 3), "<f4")
        self.assertRaisesNaming(ValueError, "k_scale's shape", fai.kv_append, **a)
        a = append_args(hk=1, d=64)
        a["k_cache"] = FakeArray((2, 64, 1, 64), "|i1", strides=(64 * 72, 72, 64, 1))
        a["v_cache"] = a["k_cache"]
        self.assertRaisesNaming(ValueError, "multiples of 16 bytes", fai.kv_append, **a)

    def test_reaches_the_library(self):
        # Nothing to write: libfai validates every field (fake pointers) and returns success
        # without a device, so the struct marshals where the C code reads it.
        fai.kv_append(**append_args(tokens=0))
        fai.kv_append(**append_args(tokens=0, typestr="|u1", scales=False), cache_dtype="fp8_e5m2")
        # A library-side rejection: a cache of 0 sequences.
        a = append_args(batch=0)
        with self.assertRaises(fai.FaiError) as cm:
            fai.kv_append(**a)
        self.assertIn("cache_batch (0) must be >= 1", cm.exception.message)
        # int8 decode of an empty batch marshals the scales too.
        d = decode_args(batch=0)
        d["k_cache"] = FakeArray((0, 64, 2, 128), "|i1")
        d["v_cache"] = FakeArray((0, 64, 2, 128), "|i1")
        self.assertIs(fai.decode(**d, k_scale=FakeArray((0, 64, 2), "<f4"), v_scale=FakeArray((0, 64, 2), "<f4")),
                      d["out"])


    def test_bf16_scale_pairs(self):
        # One bfloat16 k_scale [batch, capacity, num_kv_heads, 2] of (K, V) pairs with v_scale
        # None: FAI_SCALES_BF16X2 in words. libfai accepts it only if the format, the NULL
        # v_scale and the word strides marshal as C reads them (with FP32 it would refuse the
        # NULL v_scale); a float32 k_scale still needs its v_scale.
        a = append_args(tokens=0, scales=False)
        a["k_scale"] = bf16("k_scale", 2, 64, 2, 2)
        fai.kv_append(**a)
        d = decode_args(batch=0)
        d["k_cache"] = FakeArray((0, 64, 2, 128), "|i1")
        d["v_cache"] = FakeArray((0, 64, 2, 128), "|i1")
        self.assertIs(fai.decode(**d, k_scale=bf16("k_scale", 0, 64, 2, 2)), d["out"])
        a["k_scale"] = bf16("k_scale", 2, 64, 3, 2)
        self.assertRaisesNaming(ValueError, "k_scale's shape", fai.kv_append, **a)
        a["k_scale"] = _tensor.View("k_scale", 0x7F0000000000, (2, 64, 2, 2), (257, 4, 2, 1), "bfloat16")
        self.assertRaisesNaming(ValueError, "(K, V) pair contiguous and 4-byte aligned", fai.kv_append, **a)
        # An odd stride of a dimension of size 1 is never used: accepted.
        a["k_scale"] = _tensor.View("k_scale", 0x7F0000000000, (1, 64, 2, 2), (257, 4, 2, 1), "bfloat16")
        a["k_cache"] = FakeArray((1, 64, 2, 128), "|i1")
        a["v_cache"] = FakeArray((1, 64, 2, 128), "|i1")
        fai.kv_append(**a)
        a["k_scale"] = bf16("k_scale", 2, 64, 2, 2)
        a["k_cache"] = FakeArray((2, 64, 2, 128), "|i1")
        a["v_cache"] = FakeArray((2, 64, 2, 128), "|i1")
        a["k_scale"] = FakeArray((2, 64, 2), "<f4")
        self.assertRaisesNaming(TypeError, "v_scale is required", fai.kv_append, **a)
        a["k_scale"], a["v_scale"] = bf16("k_scale", 2, 64, 2, 2), FakeArray((2, 64, 2), "<f4")
        self.assertRaisesNaming(TypeError, "pass v_scale=None", fai.kv_append, **a)


class Variants(unittest.TestCase):
    def test_window_and_sinks_checked(self):
        with self.assertRaises(ValueError) as cm:
            fai.decode(**decode_args(), window=(-2, 0))
        self.assertIn("window (-2, 0)", str(cm.exception))
        with self.assertRaises(ValueError):
            fai.prefill(**prefill_args(), window=5)
        with self.assertRaises(ValueError) as cm:
            fai.decode(**decode_args(), sinks=FakeArray((3,), "<f4"))
        self.assertIn("sinks must be a contiguous (8,) vector", str(cm.exception))

    def test_library_checks_the_cap(self):
        # Reaches libfai's validation: the fields marshal where the C code reads them.
        with self.assertRaises(fai.FaiError) as cm:
            fai.decode(**decode_args(), softcap=-1.0)
        self.assertIn("attn.softcap (-1)", cm.exception.message)

    def test_bf16_prefill_types(self):
        p = prefill_args()
        p["q"] = FakeArray((40, 8, 64), "<f4")
        with self.assertRaises(TypeError) as cm:
            fai.prefill(**p)
        self.assertIn("float16 or bfloat16", str(cm.exception))


class DLPack(unittest.TestCase):
    """A DLPack capsule made by hand: the package reads shape, strides, dtype and device."""

    def capsule_of(self, device_type, code, bits, shape, strides):
        t = _tensor._DLTensor()
        t.data = 0x7F0000000000
        t.device = _tensor._DLDevice(device_type, 0)
        t.ndim = len(shape)
        t.dtype = _tensor._DLDataType(code, bits, 1)
        self.shape = (ctypes.c_int64 * len(shape))(*shape)
        self.strides = (ctypes.c_int64 * len(shape))(*strides)
        t.shape = ctypes.cast(self.shape, ctypes.POINTER(ctypes.c_int64))
        t.strides = ctypes.cast(self.strides, ctypes.POINTER(ctypes.c_int64))
        t.byte_offset = 32
        self.managed = (ctypes.c_char * (ctypes.sizeof(t) + 16))()  # DLTensor, manager_ctx, deleter (NULL)
        ctypes.memmove(self.managed, ctypes.addressof(t), ctypes.sizeof(t))
        new = ctypes.pythonapi.PyCapsule_New
        new.restype = ctypes.py_object
        new.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_void_p]
        capsule = new(ctypes.addressof(self.managed), b"dltensor", None)

        class Producer:
            def __dlpack__(self, stream=None):
                return capsule
        return Producer()

    def test_cuda_fp16(self):
        v = _tensor.view("x", self.capsule_of(2, 2, 16, (3, 4, 64), (512, 128, 1)))
        self.assertEqual((v.shape, v.strides, v.dtype, v.ptr), ((3, 4, 64), (512, 128, 1), "float16",
                                                                 0x7F0000000000 + 32))

    def test_host_memory(self):
        with self.assertRaises(ValueError) as cm:
            _tensor.view("x", self.capsule_of(1, 2, 16, (3,), (1,)))
        self.assertIn("not in CUDA device memory", str(cm.exception))

    def test_dtype(self):
        with self.assertRaises(TypeError) as cm:
            _tensor.view("x", self.capsule_of(2, 2, 64, (3,), (1,)))
        self.assertIn("fai reads float16, bfloat16, float32", str(cm.exception))


class FakeTorch(unittest.TestCase):
    """torch tensors without torch: a stand-in module named torch (devices, dtypes, the CUDA
    device and stream contexts, empty) and tensors whose class lives in a torch.* module, as
    the package tells torch tensors apart. Only host-side paths run."""

    class Tensor:
        def __init__(self, shape, dtype, device, ptr=0x7F0000000000):
            self.shape, self.dtype, self.device, self._ptr = tuple(shape), dtype, device, ptr

        def data_ptr(self):
            return self._ptr

        def stride(self):
            out, acc = [], 1
            for n in reversed(self.shape):
                out.append(acc)
                acc *= n
            return tuple(reversed(out))

    Tensor.__module__ = "torch.fake"

    class Device:
        def __init__(self, spec):
            self.type, _, index = spec.partition(":")
            self.index = int(index or 0)

        def __eq__(self, other):
            return (self.type, self.index) == (other.type, other.index)

        def __str__(self):
            return f"{self.type}:{self.index}"

    class DType:
        def __init__(self, name):
            self.name = name

        def __str__(self):
            return f"torch.{self.name}"

    def setUp(self):
        import contextlib
        import sys
        import types
        torch = types.ModuleType("torch")
        torch.device = FakeTorch.Device
        for name in ("float16", "bfloat16", "float32", "int32", "uint8"):
            setattr(torch, name, FakeTorch.DType(name))
        torch.allocated = []

        def empty(shape, dtype, device):
            t = FakeTorch.Tensor(shape, dtype, device, ptr=0x7F0000100000)
            torch.allocated.append(t)
            return t
        torch.empty = empty
        cuda = types.SimpleNamespace(
            current_device=lambda: 0, device=lambda d: contextlib.nullcontext(),
            stream=lambda s: contextlib.nullcontext(), ExternalStream=lambda h, device=None: None,
            current_stream=lambda d: types.SimpleNamespace(cuda_stream=0))
        torch.cuda = cuda
        self.saved = sys.modules.get("torch")
        sys.modules["torch"] = torch
        self.torch = torch

    def tearDown(self):
        import sys
        if self.saved is None:
            del sys.modules["torch"]
        else:
            sys.modules["torch"] = self.saved

    def t(self, *shape, dtype="float16", device="cuda:0"):
        return FakeTorch.Tensor(shape, getattr(self.torch, dtype), FakeTorch.Device(device))

    def decode_args(self, batch=0):
        return dict(q=self.t(batch, 8, 128), k_cache=self.t(batch, 64, 2, 128), v_cache=self.t(batch, 64, 2, 128),
                    seq_lens=self.t(batch, dtype="int32"), out=self.t(batch, 8, 128), stream=0)

    def test_every_array_on_q_device(self):
        # alibi_slopes and a caller's workspace are checked like the other arrays.
        for name, arr in (("sinks", self.t(8, dtype="float32", device="cuda:1")),
                          ("alibi_slopes", self.t(8, dtype="float32", device="cuda:1")),
                          ("workspace", self.t(1024, dtype="uint8", device="cuda:1"))):
            kw = {name: arr, "alibi": True} if name == "alibi_slopes" else {name: arr}
            with self.assertRaises(ValueError) as cm:
                fai.decode(**self.decode_args(), **kw)
            self.assertIn(f"{name} is on cuda:1, q on cuda:0", str(cm.exception))
        p = dict(q=self.t(4, 8, 64), k=self.t(4, 2, 64), v=self.t(4, 2, 64), cu_seqlens_q=self.t(2, dtype="int32"),
                 cu_seqlens_k=self.t(2, dtype="int32"), max_seq_q=4, out=self.t(4, 8, 64), stream=0)
        with self.assertRaises(ValueError) as cm:
            fai.prefill(**p, alibi=True, alibi_slopes=self.t(8, dtype="float32", device="cuda:1"))
        self.assertIn("alibi_slopes is on cuda:1, q on cuda:0", str(cm.exception))

    def test_allocated_workspace_outlives_the_call(self):
        # The workspace fai allocates is held by its view (alive while the call is made).
        def size(params, out):
            ctypes.cast(out, ctypes.POINTER(ctypes.c_size_t))[0] = 4096
            return 0
        w, nbytes = fai._workspace(size, ctypes.c_int(0), None, self.t(1, 8, 128), "decode")
        self.assertEqual(nbytes, 4096)
        self.assertEqual(len(self.torch.allocated), 1)
        self.assertIn(self.torch.allocated[0], w.keepalive)
        self.assertEqual(w.ptr, self.torch.allocated[0].data_ptr())


@unittest.skipUnless(os.environ.get("FAI_LIBRARY"), "FAI_LIBRARY is not set")
class Library(unittest.TestCase):
    def test_version(self):
        # FAI_VERSION of the header next to this checkout.
        header = os.path.join(os.path.dirname(__file__), "..", "..", "include", "fai.h")
        parts = {}
        with open(header) as f:
            for line in f:
                for k in ("MAJOR", "MINOR", "PATCH"):
                    if line.startswith(f"#define FAI_VERSION_{k} "):
                        parts[k] = int(line.split()[2])
        self.assertEqual(fai.version(), parts["MAJOR"] * 10000 + parts["MINOR"] * 100 + parts["PATCH"])

    def test_lse_false_means_none(self):
        a = decode_args(batch=0)
        self.assertIs(fai.decode(**a, lse=False), a["out"])

    def test_errors_carry_the_library_message(self):
        # Reaches libfai, which rejects it during validation (before any device query):
        # proves that the fields marshal where the C code reads them.
        a = decode_args()
        with self.assertRaises(fai.FaiError) as cm:
            fai.decode(**a, softmax_scale=float("nan"))
        self.assertEqual(cm.exception.status, 1000)
        self.assertIn("attn.softmax_scale (nan)", cm.exception.message)
        with self.assertRaises(fai.FaiError) as cm:
            fai.decode(**a, max_seq_len=65)
        self.assertIn("cache.max_seq_len (65) must be in [0, cache.capacity (64)]", cm.exception.message)
        # Sizes past 32 bits are refused, not wrapped (2^32 + 16 would have read as 16).
        for kw in (dict(max_seq_len=2**32 + 16),):
            with self.assertRaises(ValueError) as cm:
                fai.decode(**a, **kw)
            self.assertIn("does not fit fai's 32-bit sizes", str(cm.exception))
        for kw in (dict(max_seq_q=2**32), dict(max_seq_k=2**32 - 1)):
            pa = prefill_args()
            pa.update(kw)
            with self.assertRaises(ValueError) as cm:
                fai.prefill(**pa)
            self.assertIn("does not fit fai's 32-bit sizes", str(cm.exception))
        p = prefill_args()
        with self.assertRaises(fai.FaiError) as cm:
            fai.prefill(**p, cu_seqlens_q_host=[0, 10, 5, 20])
        self.assertIn("cu_seqlens_q_host[2] (5) is less than cu_seqlens_q_host[1] (10)", cm.exception.message)
        self.assertTrue(cm.exception.status_name.startswith("FAI_ERROR_BAD_PARAM_SHAPE"))

    def test_empty_batch_launches_nothing(self):
        a = decode_args(batch=0)
        self.assertIs(fai.decode(**a), a["out"])

    @unittest.skipUnless(os.environ.get("FAI_ABI_LAYOUT"), "FAI_ABI_LAYOUT is not set")
    def test_struct_layout_matches_c(self):
        layout = json.loads(subprocess.run([os.environ["FAI_ABI_LAYOUT"]], check=True, capture_output=True,
                                           text=True).stdout)
        for name, cls in _lib.STRUCTS.items():
            self.assertEqual(ctypes.sizeof(cls), layout[name]["size"], f"sizeof({name})")
            offsets = {f: getattr(cls, f).offset for f, _ in cls._fields_}
            self.assertEqual(offsets, layout[name]["fields"], f"field offsets of {name}")


class Loading(unittest.TestCase):
    def test_abi_version(self):
        major, minor = _lib.ABI_VERSION
        self.assertIsNone(_lib.abi_mismatch(major * 10000 + minor * 100 + 7))  # any patch
        for other in ((major, minor + 1), (major + 1, minor)):
            why = _lib.abi_mismatch(other[0] * 10000 + other[1] * 100)
            self.assertIn("other struct layouts", why)
            self.assertIn(f"{other[0]}.{other[1]}.0", why)

    def test_abi_version_is_the_header_s(self):
        header = os.path.join(os.path.dirname(__file__), "..", "..", "include", "fai.h")
        with open(header) as f:
            text = f.read()
        parts = [int(text.split(f"#define FAI_VERSION_{k} ")[1].split()[0]) for k in ("MAJOR", "MINOR")]
        self.assertEqual(tuple(parts), _lib.ABI_VERSION)

    def test_missing_library(self):
        saved, saved_handle = os.environ.get("FAI_LIBRARY"), fai._handle
        try:
            os.environ["FAI_LIBRARY"] = "/nonexistent/libfai.so"
            fai._handle = None
            with self.assertRaises(fai.LibraryNotFound) as cm:
                fai.version()
            self.assertIn("/nonexistent/libfai.so", str(cm.exception))
            self.assertIn("FAI_LIBRARY", str(cm.exception))
        finally:
            fai._handle = saved_handle
            if saved is None:
                del os.environ["FAI_LIBRARY"]
            else:
                os.environ["FAI_LIBRARY"] = saved


class PrefillFromCache(unittest.TestCase):
    """fai.prefill with k_cache / v_cache / seq_lens (chunked prefill over a KV cache)."""

    def args(self, batch=3, cap=64):
        return dict(q=f16(40, 8, 64), k=None, v=None, cu_seqlens_q=i32(batch + 1), cu_seqlens_k=None, max_seq_q=16,
                    out=f16(40, 8, 64), k_cache=f16(batch, cap, 2, 64), v_cache=f16(batch, cap, 2, 64),
                    seq_lens=i32(batch))

    def test_packed_keys_refused(self):
        a = self.args()
        a["k"] = f16(50, 2, 64)
        with self.assertRaises(ValueError) as cm:
            fai.prefill(**a)
        self.assertIn("pass k, v and cu_seqlens_k as None", str(cm.exception))
        a = self.args()
        del a["seq_lens"]
        with self.assertRaises(TypeError):
            fai.prefill(**a)

    def test_shapes_and_types(self):
        a = self.args()
        a["seq_lens"] = i32(2)
        with self.assertRaises(ValueError) as cm:
            fai.prefill(**a)
        self.assertIn("seq_lens must have shape (3,)", str(cm.exception))
        a = self.args()
        a["k_cache"] = a["v_cache"] = FakeArray((3, 64, 2, 64), "<f4")
        with self.assertRaises(TypeError) as cm:
            fai.prefill(**a)
        self.assertIn("element type", str(cm.exception))
        a = self.args()
        a["k_cache"] = f16(3, 64, 2, 128)
        with self.assertRaises(ValueError):
            fai.prefill(**a)

    def test_quantized_cache(self):
        # int8 needs its scales, FP8 takes none, and a quantized cache reaches libfai with its
        # dtype, scales and max_seq_len (libfai then refuses the fake seq_lens pointer).
        a = self.args()
        a["k_cache"], a["v_cache"] = FakeArray((3, 64, 2, 64), "|i1"), FakeArray((3, 64, 2, 64), "|i1")
        with self.assertRaises(TypeError) as cm:
            fai.prefill(**a)
        self.assertIn("k_scale is required", str(cm.exception))
        a["k_scale"], a["v_scale"] = FakeArray((3, 64, 2), "<f4"), FakeArray((3, 64, 2), "<f4")
        a["seq_lens"] = FakeArray((3,), "<i4", ptr=0x7F0000000002)
        a["max_seq_len"] = 40
        with self.assertRaises(fai.FaiError) as cm:
            fai.prefill(**a)
        self.assertIn("kv_cache->seq_lens", cm.exception.message)
        a = self.args()
        a["k_cache"], a["v_cache"] = FakeArray((3, 64, 2, 64), "|u1"), FakeArray((3, 64, 2, 64), "|u1")
        a["k_scale"], a["v_scale"] = FakeArray((3, 64, 2), "<f4"), FakeArray((3, 64, 2), "<f4")
        with self.assertRaises(ValueError) as cm:
            fai.prefill(cache_dtype="fp8_e5m2", **a)
        self.assertIn("k_scale / v_scale are for int8 caches", str(cm.exception))

    def test_library_sees_the_cache(self):
        # Reaches libfai's validation: the kv_cache pointer and its fields marshal as C reads them.
        a = self.args()
        a["seq_lens"] = FakeArray((3,), "<i4", ptr=0x7F0000000002)
        with self.assertRaises(fai.FaiError) as cm:
            fai.prefill(**a)
        self.assertIn("kv_cache->seq_lens", cm.exception.message)
        self.assertIn("not 4-byte aligned", cm.exception.message)


def bf16(name, *shape):
    """A contiguous bfloat16 device array as fai reads it (__cuda_array_interface__ cannot say
    bfloat16; torch's tensors go through DLPack, which ends in the same View)."""
    strides, acc = [], 1
    for s in reversed(shape):
        strides.append(acc)
        acc *= s
    return _tensor.View(name, 0x7F0000000000, shape, tuple(reversed(strides)), "bfloat16")


class DecodeBF16(unittest.TestCase):
    """BF16 on the decode side: q/out and kv_append rows of bfloat16; an unquantized cache has
    q's (rows') dtype, a quantized cache takes either."""

    def assertRaisesNaming(self, exc, needle, fn, **kw):
        with self.assertRaises(exc) as cm:
            fn(**kw)
        self.assertIn(needle, str(cm.exception))

    def bf16_decode_args(self, batch=2, hq=8, hk=2, d=128, cap=64):
        return dict(q=bf16("q", batch, hq, d), k_cache=bf16("k_cache", batch, cap, hk, d),
                    v_cache=bf16("v_cache", batch, cap, hk, d), seq_lens=i32(batch), out=bf16("out", batch, hq, d))

    def test_decode_cache_must_match_q(self):
        a = self.bf16_decode_args()
        a["k_cache"], a["v_cache"] = f16(2, 64, 2, 128), f16(2, 64, 2, 128)
        self.assertRaisesNaming(TypeError, "unquantized cache must hold q's dtype", fai.decode, **a)
        a = decode_args()
        a["k_cache"], a["v_cache"] = bf16("k_cache", 2, 64, 2, 128), bf16("v_cache", 2, 64, 2, 128)
        self.assertRaisesNaming(TypeError, "k_cache is bfloat16 but q is float16", fai.decode, **a)

    def test_decode_out_has_q_dtype(self):
        a = self.bf16_decode_args()
        a["out"] = f16(2, 8, 128)
        self.assertRaisesNaming(ValueError, "out's element type", fai.decode, **a)

    def test_cache_dtype_name(self):
        a = self.bf16_decode_args()
        a["k_cache"], a["v_cache"] = FakeArray((2, 64, 2, 128), "|u1"), FakeArray((2, 64, 2, 128), "|u1")
        self.assertRaisesNaming(TypeError, "does not match", fai.decode, cache_dtype="bf16", **a)

    def test_append_rows(self):
        a = append_args(scales=False, typestr="<f2")
        a["k_new"], a["v_new"] = bf16("k_new", 5, 2, 128), bf16("v_new", 5, 2, 128)
        self.assertRaisesNaming(TypeError, "k_cache is float16 but k_new is bfloat16", fai.kv_append, **a)
        a = append_args()
        a["k_new"] = bf16("k_new", 5, 2, 128)
        self.assertRaisesNaming(ValueError, "v_new's element type", fai.kv_append, **a)
        a = append_args()
        a["k_new"] = FakeArray((5, 2, 128), "<f4")
        self.assertRaisesNaming(TypeError, "float16 or bfloat16", fai.kv_append, **a)

    @unittest.skipUnless(os.environ.get("FAI_LIBRARY"), "FAI_LIBRARY is not set")
    def test_reaches_the_library(self):
        # Nothing to launch (batch 0, 0 tokens): libfai validates every field and succeeds
        # without a device, so the BF16 dtypes marshal where the C code reads them.
        a = self.bf16_decode_args(batch=0)
        self.assertIs(fai.decode(**a), a["out"])
        a = self.bf16_decode_args(batch=0)
        a["k_cache"] = FakeArray((0, 64, 2, 128), "|i1")
        a["v_cache"] = FakeArray((0, 64, 2, 128), "|i1")
        self.assertIs(fai.decode(**a, k_scale=FakeArray((0, 64, 2), "<f4"), v_scale=FakeArray((0, 64, 2), "<f4")),
                      a["out"])
        for typestr, scales, cache_dtype in (("|i1", True, None), ("|u1", False, "fp8_e4m3")):
            a = append_args(tokens=0, typestr=typestr, scales=scales)
            a["k_new"], a["v_new"] = bf16("k_new", 0, 2, 128), bf16("v_new", 0, 2, 128)
            fai.kv_append(**a, cache_dtype=cache_dtype)
        a = append_args(tokens=0, scales=False)
        a["k_new"], a["v_new"] = bf16("k_new", 0, 2, 128), bf16("v_new", 0, 2, 128)
        a["k_cache"], a["v_cache"] = bf16("k_cache", 2, 64, 2, 128), bf16("v_cache", 2, 64, 2, 128)
        fai.kv_append(**a)


if __name__ == "__main__":
    unittest.main()
