"""Reading a device array without importing its library: __cuda_array_interface__ (torch,
CuPy, Numba, ...) or DLPack (any producer of a CUDA DLPack capsule)."""
import ctypes

_TYPESTR = {"<f2": "float16", "<f4": "float32", "<i4": "int32", "|u1": "uint8", "|i1": "int8", "<i8": "int64"}
_ITEMSIZE = {"float16": 2, "float32": 4, "int32": 4, "uint8": 1, "bfloat16": 2, "int8": 1, "int64": 8,
             "float8_e4m3fn": 1, "float8_e5m2": 1}
# torch's FP8 tensors offer neither interface for their dtype: they are read as uint8 views
# and keep their FP8 name.
_TORCH_FP8 = ("float8_e4m3fn", "float8_e5m2")


class View:
    """What fai needs of an array: its device address, shape, strides in elements, dtype."""

    def __init__(self, name, ptr, shape, strides, dtype, keepalive=None):
        self.name, self.ptr, self.shape, self.strides, self.dtype = name, ptr, tuple(shape), tuple(strides), dtype
        self.keepalive = keepalive  # the DLPack capsule, alive until the call is made

    def __repr__(self):
        return f"View({self.name}, shape={self.shape}, strides={self.strides}, dtype={self.dtype})"


def _from_cai(name, cai):
    shape = tuple(int(s) for s in cai["shape"])
    dtype = _TYPESTR.get(cai["typestr"])
    if dtype is None:
        raise TypeError(f"fai: {name} has element type {cai['typestr']!r}; fai reads float16, float32, int8, uint8, "
                        "int32 and int64 arrays through __cuda_array_interface__ (bfloat16 through DLPack)")
    item = _ITEMSIZE[dtype]
    ptr = int(cai["data"][0])
    if cai.get("strides") is None:  # C-contiguous
        strides, acc = [], 1
        for s in reversed(shape):
            strides.append(acc)
            acc *= s
        strides = tuple(reversed(strides))
    else:
        byte_strides = tuple(int(s) for s in cai["strides"])
        if any(b % item for b in byte_strides):
            raise ValueError(f"fai: {name} has strides {byte_strides} bytes, not whole elements")
        strides = tuple(b // item for b in byte_strides)
    return View(name, ptr, shape, strides, dtype)


class _DLDevice(ctypes.Structure):
    _fields_ = [("device_type", ctypes.c_int32), ("device_id", ctypes.c_int32)]


class _DLDataType(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint8), ("bits", ctypes.c_uint8), ("lanes", ctypes.c_uint16)]


class _DLTensor(ctypes.Structure):
    _fields_ = [("data", ctypes.c_void_p), ("device", _DLDevice), ("ndim", ctypes.c_int32), ("dtype", _DLDataType),
                ("shape", ctypes.POINTER(ctypes.c_int64)), ("strides", ctypes.POINTER(ctypes.c_int64)),
                ("byte_offset", ctypes.c_uint64)]


_DL_CUDA, _DL_CUDA_MANAGED = 2, 13
_DL_DTYPES = {(2, 16): "float16", (2, 32): "float32", (0, 32): "int32", (4, 16): "bfloat16", (1, 8): "uint8",
              (0, 8): "int8", (0, 64): "int64"}


def _from_dlpack(name, obj):
    capsule = obj.__dlpack__()
    get = ctypes.pythonapi.PyCapsule_GetPointer
    get.restype = ctypes.c_void_p
    get.argtypes = [ctypes.py_object, ctypes.c_char_p]
    ptr = get(capsule, b"dltensor")  # the first field of DLManagedTensor is the DLTensor
    t = _DLTensor.from_address(ptr)
    if t.device.device_type not in (_DL_CUDA, _DL_CUDA_MANAGED):
        raise ValueError(f"fai: {name} is not in CUDA device memory (DLPack device type {t.device.device_type})")
    dtype = _DL_DTYPES.get((t.dtype.code, t.dtype.bits))
    if dtype is None or t.dtype.lanes != 1:
        raise TypeError(f"fai: {name} has DLPack dtype code {t.dtype.code}, {t.dtype.bits} bits, {t.dtype.lanes} "
                        "lanes; fai reads float16, bfloat16, float32, int8, uint8, int32 and int64")
    shape = tuple(t.shape[i] for i in range(t.ndim))
    if t.strides:
        strides = tuple(t.strides[i] for i in range(t.ndim))
    else:
        strides, acc = [], 1
        for s in reversed(shape):
            strides.append(acc)
            acc *= s
        strides = tuple(reversed(strides))
    return View(name, (t.data or 0) + t.byte_offset, shape, strides, dtype, keepalive=capsule)


_TORCH_NAMES = ("float16", "bfloat16", "float32", "int32", "uint8", "int8", "int64") + _TORCH_FP8


def _from_torch(name, obj):
    """A torch tensor read directly (its pointer, shape and strides): the array interface's
    property costs a call more host time than the rest of the package's checks together.
    None when the dtype is not one fai reads (the interfaces then name it)."""
    tname = str(obj.dtype)[6:]  # "torch.float16" -> "float16"
    if tname not in _TORCH_NAMES or obj.device.type != "cuda":
        return None
    return View(name, obj.data_ptr(), obj.shape, obj.stride(), tname)


def view(name, obj):
    """A View of a CUDA array, or TypeError naming the argument."""
    if obj is None:
        raise TypeError(f"fai: {name} is required")
    if isinstance(obj, View):
        return obj
    if type(obj).__module__.startswith("torch"):
        v = _from_torch(name, obj)
        if v is not None:
            return v
    tname = str(getattr(obj, "dtype", "")).replace("torch.", "")
    if tname in _TORCH_FP8 and type(obj).__module__.startswith("torch"):
        import torch
        v = view(name, obj.view(torch.uint8))
        v.dtype = tname
        return v
    if tname == "bfloat16" and type(obj).__module__.startswith("torch"):
        return _from_dlpack(name, obj)  # torch's interface calls bfloat16 "<V2" (untyped bytes)
    try:
        cai = getattr(obj, "__cuda_array_interface__", None)
    except TypeError:  # torch raises it for dtypes the interface cannot express (bfloat16): use DLPack
        cai = None
    if cai is not None:
        return _from_cai(name, cai)
    if hasattr(obj, "__dlpack__"):
        return _from_dlpack(name, obj)
    if getattr(obj, "device", None) is not None and str(getattr(obj, "device")) == "cpu":
        raise ValueError(f"fai: {name} is in host memory; fai needs CUDA device memory")
    raise TypeError(f"fai: {name} ({type(obj).__name__}) offers neither __cuda_array_interface__ nor __dlpack__")
