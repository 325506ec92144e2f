"""fai.merge_states / fai.merge_state: argument checks on the CPU (fake device arrays, as in
test_package.py: every call that reaches libfai is one it rejects during validation, or one
with nothing to launch), and on a GPU (skipped without torch or a device) the merge of
attention over key subsets against attention over all keys in float32, and a cascade of two
fai.decode calls against one."""
import math
import unittest

import fai

try:
    import torch
    HAVE_GPU = torch.cuda.is_available()
except ImportError:  # CI: no torch
    HAVE_GPU = False


class FakeArray:
    """A CUDA array as far as __cuda_array_interface__ goes (the address is never used)."""

    def __init__(self, shape, typestr="<f2", strides=None, ptr=0x7F0000000000):
        self.__cuda_array_interface__ = {"shape": tuple(shape), "typestr": typestr, "data": (ptr, False),
                                         "strides": strides, "version": 3}


def parts(n, rows=5, heads=4, d=64):
    outs = [FakeArray((rows, heads, d), ptr=0x7F0000000000 + 0x100000 * i) for i in range(n)]
    lses = [FakeArray((rows, heads), "<f4", ptr=0x7F1000000000 + 0x100000 * i) for i in range(n)]
    out = FakeArray((rows, heads, d), ptr=0x7F2000000000)
    return outs, lses, out


class MergeArgumentChecks(unittest.TestCase):
    def raises(self, exc, needle, *args, **kw):
        with self.assertRaises(exc) as cm:
            fai.merge_states(*args, **kw)
        self.assertIn(needle, str(cm.exception))
        return cm.exception

    def test_part_count(self):
        outs, lses, out = parts(17)
        self.raises(ValueError, "merge_states takes 1 to 16 parts; got 17", outs, lses, out=out)
        self.raises(ValueError, "merge_states takes 1 to 16 parts; got 0", [], [], out=out)
        outs, lses, out = parts(3)
        self.raises(ValueError, "merge_states got 3 outputs but 2 LSEs", outs, lses[:2], out=out)

    def test_dtype_and_shape(self):
        outs, lses, out = parts(3)
        outs[1] = FakeArray((5, 4, 64), "<f4")
        self.raises(TypeError, "outs[1] must be float16 or bfloat16", outs, lses, out=out)
        outs, lses, out = parts(3)
        outs[2] = FakeArray((5, 4, 72))
        self.raises(ValueError, "outs[2]'s shape is (5, 4, 72), expected (5, 4, 64)", outs, lses, out=out)
        outs, lses, out = parts(2)
        outs[0] = FakeArray((5, 256))
        self.raises(ValueError, "outs[0] must be [rows, num_heads, head_dim]", outs, lses, out=out)
        outs, lses, out = parts(2)
        outs[1] = FakeArray((5, 4, 64), ptr=0x7F0000000008)
        self.raises(ValueError, "outs[1] is not 16-byte aligned", outs, lses, out=out)
        outs, lses, out = parts(2)
        out = FakeArray((5, 4, 32))
        self.raises(ValueError, "out's shape", outs, lses, out=out)

    def test_lse_arrays(self):
        outs, lses, out = parts(2)
        lses[1] = FakeArray((5, 4), "<f2")
        self.raises(ValueError, "lses[1] must be float32 (5, 4)", outs, lses, out=out)
        outs, lses, out = parts(2)
        lses[0] = FakeArray((4, 5), "<f4")
        self.raises(ValueError, "lses[0] must be float32 (5, 4)", outs, lses, out=out)
        outs, lses, out = parts(2)
        lses[1] = FakeArray((5, 4), "<f4", strides=(4, 20))  # column-major
        self.raises(ValueError, "lses[1] must be contiguous", outs, lses, out=out)
        outs, lses, out = parts(2)
        lse = FakeArray((5, 4), "<f4", strides=(4, 20))
        self.raises(ValueError, "lse must be contiguous", outs, lses, out=out, lse=lse)

    def test_out_needed_without_torch(self):
        outs, lses, _ = parts(2)
        self.raises(TypeError, "pass out=", outs, lses)

    def test_library_checks(self):
        # Rejected by libfai's validation: proves that the parts and their LSEs marshal
        # where the C code reads them.
        outs, lses, _ = parts(3, heads=1, d=12)
        outs = [FakeArray((5, 1, 12), strides=(32, 32, 2), ptr=0x7F0000000000 + 0x100000 * i) for i in range(3)]
        out = FakeArray((5, 1, 12), strides=(32, 32, 2), ptr=0x7F2000000000)
        e = self.raises(fai.FaiError, "fai_merge_states: head_dim (12) is not supported", outs, lses, out=out)
        self.assertEqual(e.status, 2001)
        # out at part 1's address with other strides
        outs, lses, _ = parts(3)
        out = FakeArray((5, 4, 64), strides=(4 * 128 * 2, 128 * 2, 2), ptr=0x7F0000100000)
        e = self.raises(fai.FaiError, "o aliases parts[1]", outs, lses, out=out)
        self.assertEqual(e.status, 1003)
        # the output LSE overlapping part 2's without being it
        outs, lses, out = parts(3)
        lse = FakeArray((5, 4), "<f4", ptr=0x7F1000200000 + 16)
        self.raises(fai.FaiError, "overlaps parts_lse[2]", outs, lses, out=out, lse=lse)

    def test_zero_rows_launch_nothing(self):
        outs, lses, out = parts(4, rows=0)
        self.assertIs(fai.merge_states(outs, lses, out=out), out)
        self.assertIs(fai.merge_state(outs[0], lses[0], outs[1], lses[1], out=out), out)
        lse = FakeArray((0, 4), "<f4")
        got = fai.merge_states(outs, lses, out=outs[0], lse=lse)  # in place
        self.assertIs(got[0], outs[0])
        self.assertIs(got[1], lse)


def attention_with_lse(q, k, v, scale):
    """q [rows, h, d], k/v [keys, h, d] float32: (out [rows, h, d], lse [rows, h]); no key:
    NaN rows (never read by the merge) and -inf."""
    if k.shape[0] == 0:
        rows, h, d = q.shape
        return (torch.full((rows, h, d), float("nan"), device=q.device),
                torch.full((rows, h), float("-inf"), device=q.device))
    s = torch.einsum("rhd,khd->hrk", q, k) * scale
    lse = torch.logsumexp(s, dim=-1)
    out = torch.einsum("hrk,khd->rhd", torch.softmax(s, dim=-1), v)
    return out, lse.transpose(0, 1).contiguous()


@unittest.skipUnless(HAVE_GPU, "needs torch with a CUDA device")
class MergeOnDevice(unittest.TestCase):
    def test_against_attention_over_the_union(self):
        torch.manual_seed(0)
        for dtype, bound in ((torch.float16, 2e-3), (torch.bfloat16, 1.6e-2)):
            for d, splits, rows, h in ((64, (40, 0, 25), 37, 8), (128, (100, 3), 129, 4),
                                       (256, (9, 17, 0, 30, 1, 2, 50), 11, 2)):
                keys = sum(splits)
                q = torch.randn(rows, h, d, device="cuda") * 2
                k = torch.randn(keys, h, d, device="cuda")
                v = torch.randn(keys, h, d, device="cuda")
                scale = 1 / math.sqrt(d)
                ref, ref_lse = attention_with_lse(q, k, v, scale)
                outs, lses, at = [], [], 0
                for n in splits:
                    o, l = attention_with_lse(q, k[at:at + n], v[at:at + n], scale)
                    outs.append(o.to(dtype))
                    lses.append(l)
                    at += n
                out, lse = fai.merge_states(outs, lses, lse=True)
                torch.cuda.synchronize()
                err = (torch.linalg.vector_norm(out.float() - ref) / torch.linalg.vector_norm(ref)).item()
                self.assertLess(err, bound, f"{dtype} d={d} parts={splits}")
                torch.testing.assert_close(lse, ref_lse, rtol=1e-5, atol=1e-4)
                # in place, two parts at a time (a left fold)
                acc, acc_lse = outs[0].clone(), lses[0].clone()
                for o, l in zip(outs[1:], lses[1:]):
                    fai.merge_state(acc, acc_lse, o, l, out=acc, lse=acc_lse)
                torch.cuda.synchronize()
                err = (torch.linalg.vector_norm(acc.float() - ref) / torch.linalg.vector_norm(ref)).item()
                self.assertLess(err, 2 * bound, f"fold {dtype} d={d} parts={splits}")
                torch.testing.assert_close(acc_lse, ref_lse, rtol=1e-5, atol=1e-4)

    def test_all_parts_empty(self):
        outs = [torch.full((3, 2, 64), float("nan"), device="cuda", dtype=torch.float16) for _ in range(2)]
        lses = [torch.full((3, 2), float("-inf"), device="cuda") for _ in range(2)]
        out, lse = fai.merge_states(outs, lses, lse=True)
        torch.cuda.synchronize()
        self.assertTrue(torch.equal(out, torch.zeros_like(out)))
        self.assertTrue(torch.isneginf(lse).all())

    def test_cascade_of_decode_calls(self):
        # Decode over a cache split in two (a shared prefix and the rest), merged, against one
        # decode over the whole cache.
        torch.manual_seed(1)
        batch, hq, hk, d, cap, split = 6, 16, 4, 128, 300, 120
        q = torch.randn(batch, hq, d, device="cuda", dtype=torch.float16)
        k = torch.randn(batch, cap, hk, d, device="cuda", dtype=torch.float16)
        v = torch.randn(batch, cap, hk, d, device="cuda", dtype=torch.float16)
        lens = torch.tensor([300, 1, 120, 121, 0, 200], dtype=torch.int32, device="cuda")
        full, full_lse = fai.decode(q, k, v, lens, lse=True)
        a, a_lse = fai.decode(q, k[:, :split], v[:, :split], lens.clamp(max=split), lse=True)
        b, b_lse = fai.decode(q, k[:, split:], v[:, split:], (lens - split).clamp(min=0), lse=True)
        out, lse = fai.merge_state(a, a_lse, b, b_lse, lse=True)
        torch.cuda.synchronize()
        err = (torch.linalg.vector_norm(out.float() - full.float()) / torch.linalg.vector_norm(full.float())).item()
        self.assertLess(err, 2e-3)
        finite = torch.isfinite(full_lse)
        self.assertTrue(torch.equal(finite, torch.isfinite(lse)))
        torch.testing.assert_close(lse[finite], full_lse[finite], rtol=1e-4, atol=1e-3)
        self.assertTrue(torch.equal(out[4], torch.zeros_like(out[4])))  # the empty sequence


if __name__ == "__main__":
    unittest.main()
