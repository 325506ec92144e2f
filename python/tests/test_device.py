"""Device tests of the Python package: fai against torch's scaled_dot_product_attention in
float32 (an independent reference) on random inputs, across shapes. Skipped without torch
or a GPU (so in CI); scripts/gpu-check.sh runs them on the device."""
import math
import unittest

try:
    import torch
    import torch.nn.functional as F
    HAVE_GPU = torch.cuda.is_available()
except ImportError:  # CI: no torch
    HAVE_GPU = False

import fai

# Every output the package allocates (out, lse) starts as NaN, and a workspace as 0xff bytes:
# torch.empty may hand back a block that still holds an earlier call's right answer, which
# would hide an output the kernels never wrote.
_alloc_like = fai._alloc_like


def _poisoned_alloc_like(obj, shape, dtype_name, name):
    t = _alloc_like(obj, shape, dtype_name, name)
    if t.is_floating_point():
        t.fill_(float("nan"))
    else:
        t.fill_(255)
    return t


def setUpModule():  # (for this module's tests only: test_package's stand-in torch has no fill_)
    fai._alloc_like = _poisoned_alloc_like


def tearDownModule():
    fai._alloc_like = _alloc_like


class DeviceTestsRun(unittest.TestCase):
    """The device tests below (and test_merge.py's) skip without torch or CUDA; on a machine
    that has an NVIDIA GPU that would pass them all unrun, so it is a failure there."""

    def test_not_skipped_where_a_gpu_is(self):
        import glob
        if glob.glob("/dev/nvidia[0-9]*") and not HAVE_GPU:
            self.fail("an NVIDIA GPU is present (/dev/nvidia*) but torch with CUDA is not usable: "
                      "every device test would be skipped")


def sdpa(q, k, v, causal):
    """q [sq, hq, d], k/v [sk, hk, d], float32, bottom-right causal, GQA by repetition."""
    hq, hk = q.shape[1], k.shape[1]
    k = k.repeat_interleave(hq // hk, dim=1)
    v = v.repeat_interleave(hq // hk, dim=1)
    sq, sk = q.shape[0], k.shape[0]
    mask = None
    if causal:
        i = torch.arange(sq, device=q.device)[:, None]
        j = torch.arange(sk, device=q.device)[None, :]
        mask = j <= i + (sk - sq)
    o = F.scaled_dot_product_attention(q.transpose(0, 1), k.transpose(0, 1), v.transpose(0, 1), attn_mask=mask)
    o = o.transpose(0, 1)
    if causal and sq > sk:  # rows that see no key: fai gives zeros (SDPA gives NaN)
        o[: sq - sk] = 0
    return o


def rel_l2(a, b):
    return (torch.linalg.vector_norm(a.float() - b) / torch.linalg.vector_norm(b)).item()


def append_and_check(test, k_rows, v_rows, tdt, pairs=False):
    """kv_append of [batch, cap, hk, d] rows (float16 or bfloat16) into a cache of torch dtype
    tdt; the codes (and int8 scales) checked against torch's conversions of the rows' float32
    values. pairs: int8 scales as one bfloat16 [batch, cap, hk, 2] k_scale of (K, V) pairs
    (v_scale None). Returns the cache and its scales (None unless int8), and the values it
    stands for (float32)."""
    batch, cap, hk, d = k_rows.shape
    kc = torch.zeros(batch, cap, hk, d, dtype=tdt, device="cuda")
    vc = torch.zeros_like(kc)
    ks = vs = None
    if tdt == torch.int8 and pairs:
        ks = torch.zeros(batch, cap, hk, 2, device="cuda", dtype=torch.bfloat16)
    elif tdt == torch.int8:
        ks = torch.zeros(batch, cap, hk, device="cuda")
        vs = torch.zeros_like(ks)
    slots = torch.arange(batch * cap, device="cuda", dtype=torch.int64)
    fai.kv_append(k_rows.reshape(-1, hk, d), v_rows.reshape(-1, hk, d), slots, kc, vc, k_scale=ks, v_scale=vs)
    torch.cuda.synchronize()
    k_sc, v_sc = (ks[..., 0].float(), ks[..., 1].float()) if pairs else (ks, vs)
    for rows, xc, xs in ((k_rows, kc, k_sc), (v_rows, vc, v_sc)):
        if tdt == k_rows.dtype:
            test.assertTrue(torch.equal(xc.view(torch.int16), rows.view(torch.int16)), f"{tdt} copy")
        elif tdt == torch.int8:  # scale = max|x| / 127, codes = round-half-even(x * (1 / scale))
            # (each FP32 operation done in float64 and rounded once: the correctly rounded
            # FP32 result; torch's own FP32 division may multiply by a reciprocal)
            scale = (rows.double().abs().amax(-1) / 127).float()
            if pairs:  # rounded to the nearest bfloat16 (torch's conversion: ties to even), then used
                scale = scale.to(torch.bfloat16).float()
            inv = (1 / scale.double()).float()
            codes = torch.round((rows.double() * inv.double()[..., None]).float()).clamp(-127, 127)
            test.assertTrue(torch.equal(xs, scale), "int8 scales")
            test.assertTrue(torch.equal(xc, codes.to(torch.int8)), "int8 codes")
        else:
            test.assertTrue(torch.equal(xc.view(torch.uint8), rows.float().to(tdt).view(torch.uint8)), f"{tdt} codes")
    kd = kc.float() * k_sc[..., None] if k_sc is not None else kc.float()
    vd = vc.float() * v_sc[..., None] if v_sc is not None else vc.float()
    return kc, vc, ks, vs, kd, vd


@unittest.skipUnless(HAVE_GPU, "needs torch with a CUDA device")
class AgainstSDPA(unittest.TestCase):
    def test_prefill_varlen(self):
        torch.manual_seed(0)
        for d, hq, hk in ((64, 8, 8), (128, 16, 4), (256, 4, 1), (96, 14, 2)):
            for causal in (False, True):
                lens = [(1, 200), (17, 17), (130, 300), (0, 5), (64, 20)]
                cu_q = [0]
                cu_k = [0]
                for sq, sk in lens:
                    cu_q.append(cu_q[-1] + sq)
                    cu_k.append(cu_k[-1] + sk)
                q = torch.randn(cu_q[-1], hq, d, device="cuda", dtype=torch.float16)
                k = torch.randn(cu_k[-1], hk, d, device="cuda", dtype=torch.float16)
                v = torch.randn(cu_k[-1], hk, d, device="cuda", dtype=torch.float16)
                cq = torch.tensor(cu_q, dtype=torch.int32, device="cuda")
                ck = torch.tensor(cu_k, dtype=torch.int32, device="cuda")
                out = fai.prefill(q, k, v, cq, ck, max(s for s, _ in lens), causal=causal, cu_seqlens_q_host=cu_q)
                torch.cuda.synchronize()
                for b, (sq, sk) in enumerate(lens):
                    if sq == 0:
                        continue
                    ref = sdpa(q[cu_q[b]:cu_q[b + 1]].float(), k[cu_k[b]:cu_k[b + 1]].float(),
                               v[cu_k[b]:cu_k[b + 1]].float(), causal)
                    self.assertLess(rel_l2(out[cu_q[b]:cu_q[b + 1]], ref), 2e-3, f"d{d} {hq}/{hk} causal {causal} seq {b}")

    def test_decode(self):
        torch.manual_seed(1)
        batch, hq, hk, d, cap = 5, 32, 8, 128, 700
        q = torch.randn(batch, hq, d, device="cuda", dtype=torch.float16)
        kc = torch.randn(batch, cap, hk, d, device="cuda", dtype=torch.float16)
        vc = torch.randn(batch, cap, hk, d, device="cuda", dtype=torch.float16)
        lens = [1, 700, 129, 0, 333]
        seq_lens = torch.tensor(lens, dtype=torch.int32, device="cuda")
        out, lse = fai.decode(q, kc, vc, seq_lens, lse=True)
        torch.cuda.synchronize()
        for b, n in enumerate(lens):
            if n == 0:
                self.assertEqual(out[b].abs().max().item(), 0.0)
                self.assertTrue(torch.isinf(lse[b]).all())
                continue
            ref = sdpa(q[b:b + 1].float(), kc[b, :n].float(), vc[b, :n].float(), False)
            self.assertLess(rel_l2(out[b:b + 1], ref), 2e-3, f"sequence {b}")
            s = torch.einsum("hd,khd->hk", q[b].float(), kc[b, :n].repeat_interleave(hq // hk, 1).float())
            self.assertLess((lse[b] - torch.logsumexp(s / math.sqrt(d), dim=1)).abs().max().item(), 1e-3)

    def test_quantized_cache(self):
        """kv_append's codes against torch's own conversions, then decode over the quantized
        cache against SDPA on the values the cache stands for."""
        torch.manual_seed(2)
        batch, cap, hq, hk, d = 3, 300, 16, 4, 128
        lens = [1, 150, 300]
        seq_lens = torch.tensor(lens, dtype=torch.int32, device="cuda")
        q = torch.randn(batch, hq, d, device="cuda", dtype=torch.float16)
        k16 = torch.randn(batch, cap, hk, d, device="cuda", dtype=torch.float16)
        v16 = torch.randn(batch, cap, hk, d, device="cuda", dtype=torch.float16)
        for tdt, pairs in ((torch.int8, False), (torch.int8, True), (torch.float8_e4m3fn, False),
                           (torch.float8_e5m2, False)):
            kc, vc, ks, vs, kd, vd = append_and_check(self, k16, v16, tdt, pairs)
            out = fai.decode(q, kc, vc, seq_lens, k_scale=ks, v_scale=vs)
            torch.cuda.synchronize()
            for b, n in enumerate(lens):
                ref = sdpa(q[b:b + 1].float(), kd[b, :n], vd[b, :n], False)
                self.assertLess(rel_l2(out[b:b + 1], ref), 2e-3, f"{tdt} (pairs {pairs}) sequence {b}")
            # Chunked prefill over the same cache: the last rows of each sequence as queries
            # (a decode row for the 1-token one), against SDPA on the dequantized values
            # rounded to q's dtype (what fai_prefill stages).
            rows = [1, 40, 100]
            cu = [0]
            for r in rows:
                cu.append(cu[-1] + r)
            qp = torch.randn(cu[-1], hq, d, device="cuda", dtype=torch.float16)
            cq = torch.tensor(cu, dtype=torch.int32, device="cuda")
            outp = fai.prefill(qp, None, None, cq, None, max(rows), causal=True, cu_seqlens_q_host=cu, k_cache=kc,
                               v_cache=vc, seq_lens=seq_lens, k_scale=ks, v_scale=vs)
            torch.cuda.synchronize()
            for b, n in enumerate(lens):
                ref = sdpa(qp[cu[b]:cu[b + 1]].float(), kd[b, :n].half().float(), vd[b, :n].half().float(), True)
                self.assertLess(rel_l2(outp[cu[b]:cu[b + 1]], ref), 2e-3, f"{tdt} (pairs {pairs}) prefill sequence {b}")

    def test_variants_and_bf16(self):
        """Sliding window, soft-cap and sinks against their definition written with torch ops,
        on FP16 and BF16 prefill and on FP16 decode."""
        torch.manual_seed(3)
        hq, hk, d, sq, sk = 8, 2, 128, 70, 300
        left, cap = 64, 20.0
        sinks = torch.randn(hq, device="cuda")

        def reference(q, k, v):  # q [sq, hq, d], k/v [sk, hk, d], float32; causal + window + cap + sinks
            k = k.repeat_interleave(hq // hk, 1)
            v = v.repeat_interleave(hq // hk, 1)
            s = torch.einsum("qhd,khd->hqk", q, k) / math.sqrt(d)
            s = cap * torch.tanh(s / cap)
            i = torch.arange(q.shape[0], device="cuda")[:, None] + (k.shape[0] - q.shape[0])
            j = torch.arange(k.shape[0], device="cuda")[None, :]
            s = s.masked_fill(~((j <= i) & (j >= i - left)), float("-inf"))
            s = torch.cat([s, sinks[:, None, None].expand(hq, q.shape[0], 1)], dim=2)
            p = torch.softmax(s, dim=2)[:, :, :-1]
            return torch.einsum("hqk,khd->qhd", p, v)

        for dt in (torch.float16, torch.bfloat16):
            q = torch.randn(sq, hq, d, device="cuda", dtype=dt)
            k = torch.randn(sk, hk, d, device="cuda", dtype=dt)
            v = torch.randn(sk, hk, d, device="cuda", dtype=dt)
            cu_q = torch.tensor([0, sq], dtype=torch.int32, device="cuda")
            cu_k = torch.tensor([0, sk], dtype=torch.int32, device="cuda")
            out = fai.prefill(q, k, v, cu_q, cu_k, sq, causal=True, window=(left, -1), softcap=cap, sinks=sinks)
            torch.cuda.synchronize()
            self.assertEqual(out.dtype, dt)
            ref = reference(q.float(), k.float(), v.float())
            self.assertLess(rel_l2(out, ref), 2e-3 if dt == torch.float16 else 1.6e-2, f"prefill {dt}")
        q = torch.randn(1, hq, d, device="cuda", dtype=torch.float16)
        kc = torch.randn(1, sk, hk, d, device="cuda", dtype=torch.float16)
        vc = torch.randn(1, sk, hk, d, device="cuda", dtype=torch.float16)
        out = fai.decode(q, kc, vc, torch.tensor([sk], dtype=torch.int32, device="cuda"), window=(left, -1),
                         softcap=cap, sinks=sinks)
        torch.cuda.synchronize()
        self.assertLess(rel_l2(out, reference(q.float(), kc[0].float(), vc[0].float())), 2e-3, "decode")

    def test_decode_bf16(self):
        """BF16 decode: kv_append from bfloat16 rows into a bfloat16 cache (a copy) and into
        int8 / FP8 caches (codes against torch's conversions of the rows' float32 values), then
        decode with bfloat16 q against SDPA in float32 on the values the cache holds (BF16
        bound: rel L2 1.6e-2), and with a window, soft-cap and sinks against their definition."""
        torch.manual_seed(4)
        batch, cap, hq, hk, d = 3, 400, 16, 4, 128
        lens = [1, 0, 400]
        seq_lens = torch.tensor(lens, dtype=torch.int32, device="cuda")
        q = torch.randn(batch, hq, d, device="cuda", dtype=torch.bfloat16)
        kb = torch.randn(batch, cap, hk, d, device="cuda", dtype=torch.bfloat16)
        vb = torch.randn(batch, cap, hk, d, device="cuda", dtype=torch.bfloat16)
        for tdt in (torch.bfloat16, torch.int8, torch.float8_e4m3fn, torch.float8_e5m2):
            kc, vc, ks, vs, kd, vd = append_and_check(self, kb, vb, tdt)
            out, lse = fai.decode(q, kc, vc, seq_lens, k_scale=ks, v_scale=vs, lse=True)
            torch.cuda.synchronize()
            self.assertEqual(out.dtype, torch.bfloat16)
            for b, n in enumerate(lens):
                if n == 0:
                    self.assertEqual(out[b].float().abs().max().item(), 0.0)
                    self.assertTrue(torch.isinf(lse[b]).all())
                    continue
                ref = sdpa(q[b:b + 1].float(), kd[b, :n], vd[b, :n], False)
                self.assertLess(rel_l2(out[b:b + 1], ref), 1.6e-2, f"{tdt} sequence {b}")

        # window + soft-cap + sinks, BF16 q over the BF16 cache
        left, softcap = 50, 20.0
        sinks = torch.randn(hq, device="cuda")
        kc, vc = kb.clone(), vb.clone()
        out = fai.decode(q, kc, vc, seq_lens, window=(left, -1), softcap=softcap, sinks=sinks)
        torch.cuda.synchronize()
        for b, n in enumerate(lens):
            if n == 0:
                continue
            k = kc[b, :n].float().repeat_interleave(hq // hk, 1)
            v = vc[b, :n].float().repeat_interleave(hq // hk, 1)
            s = torch.einsum("hd,khd->hk", q[b].float(), k) / math.sqrt(d)
            s = softcap * torch.tanh(s / softcap)
            j = torch.arange(n, device="cuda")[None, :]
            s = s.masked_fill(j < n - 1 - left, float("-inf"))
            p = torch.softmax(torch.cat([s, sinks[:, None]], dim=1), dim=1)[:, :-1]
            ref = torch.einsum("hk,khd->hd", p, v)
            self.assertLess(rel_l2(out[b], ref), 1.6e-2, f"variants sequence {b}")


if __name__ == "__main__":
    unittest.main()
