//! Log-space helpers that never return NaN for all -inf inputs, and the vectorised
//! log-sum-exp kernels that read LM rows.
//!
//! The kernels read a row range in one fused pass: gather (hardware gathers masked by the
//! row length on AVX2 / AVX-512, chosen at run time by [`Isa`]), [`exp_fast`] (range
//! reduction, a degree-11 polynomial, `2^k` from exponent bits; ~1 ulp), a running sum and
//! a running maximum. No maximum pass is needed first: the values are log-probabilities, so
//! their exponentials are summed with reference point 0, which cannot overflow or lose
//! precision while the largest value lies in `-600..=600`; a range outside that (never the
//! case for a real model's normalised row) is summed again relative to its maximum, in
//! blocks of [`BLOCK`]. NaN propagates into the sum and `+inf` into the maximum, so both
//! are reported. Every kernel performs the same operations in the same order (fused
//! multiply-adds, 8 lane accumulators), so results are bit-identical across CPUs with FMA.

/// `log(exp(a) + exp(b))`.
#[inline]
pub fn logaddexp(a: f64, b: f64) -> f64 {
    if a == f64::NEG_INFINITY {
        return b;
    }
    if b == f64::NEG_INFINITY {
        return a;
    }
    let (hi, lo) = if a > b { (a, b) } else { (b, a) };
    hi + (lo - hi).exp().ln_1p()
}

/// `log(sum(exp(v)))`, -inf for an empty or all -inf slice.
pub fn logsumexp(v: &[f64]) -> f64 {
    let m = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if m == f64::NEG_INFINITY || m.is_nan() {
        return m;
    }
    if m == f64::INFINITY {
        return m;
    }
    let s: f64 = v.iter().map(|&x| (x - m).exp()).sum();
    m + s.ln()
}

/// Normalise log-weights in place (log-softmax); all -inf stays all -inf.
pub fn log_normalize(v: &mut [f64]) -> f64 {
    let z = logsumexp(v);
    if z.is_finite() {
        for x in v.iter_mut() {
            *x -= z;
        }
    }
    z
}

/// `exp(x)` for `x <= 0` (and NaN-free inputs), relative error below 1e-14; results below
/// `exp(-708)` (≈ 3e-308) are flushed to zero. Branch-free, free of libm calls and of
/// float → integer conversions, so loops over it vectorise.
#[inline(always)]
pub fn exp_neg(x: f64) -> f64 {
    const LN2_HI: f64 = 6.931_471_803_691_238e-1;
    const LN2_LO: f64 = 1.908_214_929_270_587_7e-10;
    const INV_LN2: f64 = std::f64::consts::LOG2_E;
    // 1.5 * 2^52: adding it rounds to an integer held in the low mantissa bits
    const MAGIC: f64 = 6_755_399_441_055_744.0;
    let xc = if x > -708.0 { x } else { -708.0 };
    let xc = if xc < 0.0 { xc } else { 0.0 };
    let t = xc * INV_LN2 + MAGIC;
    let kf = t - MAGIC;
    let r = (xc - kf * LN2_HI) - kf * LN2_LO;
    // Taylor series to degree 11 on |r| <= ln2/2: truncation error < 1e-14 relative (one
    // more degree costs ~10 % of the kernel's time for no visible gain in the sums)
    let mut p = 1.0 / 39_916_800.0;
    p = p * r + 1.0 / 3_628_800.0;
    p = p * r + 1.0 / 362_880.0;
    p = p * r + 1.0 / 40_320.0;
    p = p * r + 1.0 / 5_040.0;
    p = p * r + 1.0 / 720.0;
    p = p * r + 1.0 / 120.0;
    p = p * r + 1.0 / 24.0;
    p = p * r + 1.0 / 6.0;
    p = p * r + 0.5;
    p = p * r + 1.0;
    p = p * r + 1.0;
    // 2^k with k = round(xc / ln2) in [-1022, 0]: the bits of `t` minus those of MAGIC
    let k = t.to_bits().wrapping_sub(MAGIC.to_bits());
    let scale = f64::from_bits(k.wrapping_add(1023) << 52);
    let y = p * scale;
    if x < -708.0 {
        0.0
    } else {
        y
    }
}

/// Values of a model row (natural-log probabilities).
pub trait LogProb: Copy + Send + Sync + 'static {
    /// The value as `f64`.
    fn to_f64(self) -> f64;

    /// [`ExpSum`] of `row[i]` for every `i` in `idx` (an index past the row counts as
    /// `-inf`), computed with the given kernels.
    fn gather_exp_sum(row: &[Self], idx: &[u32], isa: Isa) -> ExpSum;
}

impl LogProb for f64 {
    #[inline(always)]
    fn to_f64(self) -> f64 {
        self
    }

    #[inline]
    fn gather_exp_sum(row: &[f64], idx: &[u32], isa: Isa) -> ExpSum {
        #[cfg(target_arch = "x86_64")]
        if row.len() <= i32::MAX as usize {
            match isa {
                // SAFETY: `Isa::Avx512` / `Isa::Avx2` only come from `Isa::detect` /
                // `Isa::available`, which check that the CPU supports them.
                Isa::Avx512 => return unsafe { x86::gather_f64_avx512(row, idx) },
                // SAFETY: as above.
                Isa::Avx2 => return unsafe { x86::gather_f64_avx2(row, idx) },
                Isa::Scalar => {}
            }
        }
        let _ = isa;
        pass_portable(idx.len(), |k| {
            row.get(idx[k] as usize)
                .copied()
                .unwrap_or(f64::NEG_INFINITY)
        })
    }
}

impl LogProb for f32 {
    #[inline(always)]
    fn to_f64(self) -> f64 {
        self as f64
    }

    #[inline]
    fn gather_exp_sum(row: &[f32], idx: &[u32], isa: Isa) -> ExpSum {
        #[cfg(target_arch = "x86_64")]
        if row.len() <= i32::MAX as usize {
            match isa {
                // SAFETY: as for `f64`.
                Isa::Avx512 => return unsafe { x86::gather_f32_avx512(row, idx) },
                // SAFETY: as for `f64`.
                Isa::Avx2 => return unsafe { x86::gather_f32_avx2(row, idx) },
                Isa::Scalar => {}
            }
        }
        let _ = isa;
        pass_portable(idx.len(), |k| {
            row.get(idx[k] as usize)
                .map_or(f64::NEG_INFINITY, |&v| v as f64)
        })
    }
}

/// Kernels of the row sums, chosen at run time.
///
/// All of them perform the same operations in the same order with fused multiply-adds, so
/// their results are bit-identical; the portable kernel matches them bit for bit where the
/// build target has hardware FMA (aarch64, x86-64 built with `+fma`) and otherwise rounds
/// the multiply-adds twice (differences in the last bits).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Isa {
    /// Portable code (vectorised by the compiler for the build target).
    Scalar,
    /// x86-64 AVX2 + FMA: 4 lanes, hardware gathers.
    Avx2,
    /// x86-64 AVX-512F/VL: 8 lanes, masked hardware gathers.
    Avx512,
}

impl Isa {
    /// The fastest kernels this CPU supports (the check is cached by the standard library).
    #[inline]
    pub fn detect() -> Isa {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f")
                && std::arch::is_x86_feature_detected!("avx512vl")
                && std::arch::is_x86_feature_detected!("fma")
            {
                return Isa::Avx512;
            }
            if std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
            {
                return Isa::Avx2;
            }
        }
        Isa::Scalar
    }

    /// Every kernel set this CPU can run, slowest first (for tests and benchmarks).
    pub fn available() -> Vec<Isa> {
        let mut v = vec![Isa::Scalar];
        #[cfg(target_arch = "x86_64")]
        {
            let fma = std::arch::is_x86_feature_detected!("fma");
            if fma && std::arch::is_x86_feature_detected!("avx2") {
                v.push(Isa::Avx2);
            }
            if fma
                && std::arch::is_x86_feature_detected!("avx512f")
                && std::arch::is_x86_feature_detected!("avx512vl")
            {
                v.push(Isa::Avx512);
            }
        }
        v
    }
}

/// `exp` of anything below is flushed to zero by [`exp_fast`].
const EXP_LO: f64 = -708.0;
/// A fused pass sums `exp(x)` with reference point 0. That sum is used as it is when the
/// largest value lies in `FAST_MIN..=FAST_MAX`: no term or sum of up to 2^32 terms
/// overflows, and terms flushed below [`EXP_LO`] add up to less than 1e-37 of the largest
/// one. Otherwise (never for normalised log-probabilities of a real model) the values are
/// summed again relative to their maximum.
const FAST_MIN: f64 = -600.0;
const FAST_MAX: f64 = 600.0;

const INV_LN2: f64 = std::f64::consts::LOG2_E;
const LN2_HI: f64 = 6.931_471_803_691_238e-1;
const LN2_LO: f64 = 1.908_214_929_270_587_7e-10;
/// 1.5 * 2^52: adding it rounds to an integer held in the low mantissa bits.
const MAGIC: f64 = 6_755_399_441_055_744.0;
/// Subtracting these bits from those of `x / ln2 + MAGIC` gives the biased exponent
/// `k + 1023` of `2^k`.
const MAGIC_BIAS: u64 = MAGIC.to_bits().wrapping_sub(1023);
/// Coefficients of a degree-11 polynomial approximation of `exp(r)` on `|r| <= 0.35`
/// (a Chebyshev fit, within 4e-18 of `exp`), degree 11 down to degree 2; those of degrees 1
/// and 0 round to 1. Evaluated in double precision the result is within ~1 ulp.
const POLY: [f64; 10] = [
    2.511_118_996_532_136e-8,
    2.763_413_820_537_965e-7,
    2.755_723_777_338_061e-6,
    2.480_148_139_221_824_8e-5,
    1.984_126_989_301_463e-4,
    1.388_888_895_617_381_3e-3,
    8.333_333_333_318_475e-3,
    4.166_666_666_647_346_5e-2,
    0.166_666_666_666_666_82,
    0.500_000_000_000_002,
];

/// `a * b + c`, fused where the target has hardware FMA (as in the SIMD kernels).
#[inline(always)]
fn fma(a: f64, b: f64, c: f64) -> f64 {
    #[cfg(any(target_feature = "fma", target_arch = "aarch64"))]
    {
        a.mul_add(b, c)
    }
    #[cfg(not(any(target_feature = "fma", target_arch = "aarch64")))]
    {
        a * b + c
    }
}

/// `exp(x)` for `-708 <= x <= 708` within ~2 ulp (relative error below 5e-16), and 0 for `x < -708`
/// (including `-inf`); NaN stays NaN; above 708 the result is unspecified. The kernels
/// perform exactly these operations: `x = k ln2 + r` with `|r| <= ln2 / 2` (ln2 in two
/// parts), a degree-11 polynomial for `exp(r)`, and `2^k` built from exponent bits.
#[inline(always)]
pub(crate) fn exp_fast(x: f64) -> f64 {
    let t = fma(x, INV_LN2, MAGIC);
    let kf = t - MAGIC;
    let r = fma(-kf, LN2_LO, fma(-kf, LN2_HI, x));
    let mut p = POLY[0];
    for &c in &POLY[1..] {
        p = fma(p, r, c);
    }
    p = fma(p, r, 1.0);
    p = fma(p, r, 1.0);
    let scale = f64::from_bits(t.to_bits().wrapping_sub(MAGIC_BIAS) << 52);
    if x < EXP_LO {
        0.0
    } else {
        p * scale
    }
}

/// One fused pass over values `x`: `sum(exp(x))` with [`exp_fast`] and the largest value.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ExpSum {
    /// `sum(exp(x))`: NaN if some value was NaN; accurate (to ~1e-15) when `max` lies in
    /// `-600..=600`, otherwise unspecified.
    pub sum: f64,
    /// Largest value, `-inf` for none (NaNs are ignored).
    pub max: f64,
}

/// Lanes of every kernel: value `k` of a pass goes to accumulator `k % LANES` (the values
/// after the last full group of `LANES` to a separate tail sum).
const LANES: usize = 8;

/// Combine lane accumulators and the tail in a fixed order.
#[inline(always)]
fn finish(acc: &[f64; LANES], mx: &[f64; LANES], tail: (f64, f64)) -> ExpSum {
    let a = (acc[0] + acc[4]) + (acc[2] + acc[6]);
    let b = (acc[1] + acc[5]) + (acc[3] + acc[7]);
    let mut m = tail.1;
    for &x in mx {
        m = if x > m { x } else { m };
    }
    ExpSum {
        sum: (a + b) + tail.0,
        max: m,
    }
}

/// `(sum of exp, max)` of values `from..n` one by one.
#[inline(always)]
fn tail_sum(from: usize, n: usize, get: impl Fn(usize) -> f64) -> (f64, f64) {
    let mut s = 0.0;
    let mut m = f64::NEG_INFINITY;
    for k in from..n {
        let x = get(k);
        s += exp_fast(x);
        m = if x > m { x } else { m };
    }
    (s, m)
}

/// [`exp_fast`] of [`LANES`] values, written stage by stage over the lanes so that the
/// compiler vectorises it (the same operations per lane: bit-identical to `exp_fast`).
#[inline(always)]
fn exp_lanes(x: &[f64; LANES]) -> [f64; LANES] {
    let mut t = [0.0f64; LANES];
    let mut r = [0.0f64; LANES];
    for i in 0..LANES {
        t[i] = fma(x[i], INV_LN2, MAGIC);
        let kf = t[i] - MAGIC;
        r[i] = fma(-kf, LN2_LO, fma(-kf, LN2_HI, x[i]));
    }
    let mut p = [POLY[0]; LANES];
    for &c in &POLY[1..] {
        for i in 0..LANES {
            p[i] = fma(p[i], r[i], c);
        }
    }
    let mut out = [0.0f64; LANES];
    for i in 0..LANES {
        let q = fma(fma(p[i], r[i], 1.0), r[i], 1.0);
        let scale = f64::from_bits(t[i].to_bits().wrapping_sub(MAGIC_BIAS) << 52);
        out[i] = if x[i] < EXP_LO { 0.0 } else { q * scale };
    }
    out
}

/// The portable kernel over values `get(0..n)`: groups of [`LANES`] values are read into
/// a buffer, and the arithmetic on the buffer vectorises.
#[inline(always)]
fn pass_portable(n: usize, get: impl Fn(usize) -> f64) -> ExpSum {
    let mut acc = [0.0f64; LANES];
    let mut mx = [f64::NEG_INFINITY; LANES];
    let body = n - n % LANES;
    let mut c = 0;
    while c < body {
        let mut x = [0.0f64; LANES];
        for (i, v) in x.iter_mut().enumerate() {
            *v = get(c + i);
        }
        let e = exp_lanes(&x);
        for i in 0..LANES {
            acc[i] += e[i];
            mx[i] = if x[i] > mx[i] { x[i] } else { mx[i] };
        }
        c += LANES;
    }
    finish(&acc, &mx, tail_sum(body, n, get))
}

/// [`ExpSum`] of a slice with the given kernels.
pub fn exp_sum(v: &[f64], isa: Isa) -> ExpSum {
    #[cfg(target_arch = "x86_64")]
    match isa {
        // SAFETY: `Isa` values other than `Scalar` only come from the CPU checks.
        Isa::Avx512 => return unsafe { x86::slice_avx512(v) },
        // SAFETY: as above.
        Isa::Avx2 => return unsafe { x86::slice_avx2(v) },
        Isa::Scalar => {}
    }
    let _ = isa;
    pass_portable(v.len(), |k| v[k])
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    //! AVX2 and AVX-512 kernels: [`exp_fast`](super::exp_fast) lane by lane, hardware
    //! gathers masked by the row length (indices past the row read as `-inf`).
    use super::{finish, tail_sum, ExpSum, EXP_LO, INV_LN2, LANES, LN2_HI, LN2_LO};
    use super::{MAGIC, MAGIC_BIAS, POLY};
    use std::arch::x86_64::*;

    #[target_feature(enable = "avx512f,fma")]
    #[inline]
    fn exp8(x: __m512d) -> __m512d {
        let magic = _mm512_set1_pd(MAGIC);
        let t = _mm512_fmadd_pd(x, _mm512_set1_pd(INV_LN2), magic);
        let kf = _mm512_sub_pd(t, magic);
        let r = _mm512_fnmadd_pd(kf, _mm512_set1_pd(LN2_HI), x);
        let r = _mm512_fnmadd_pd(kf, _mm512_set1_pd(LN2_LO), r);
        let mut p = _mm512_set1_pd(POLY[0]);
        for &c in &POLY[1..] {
            p = _mm512_fmadd_pd(p, r, _mm512_set1_pd(c));
        }
        let one = _mm512_set1_pd(1.0);
        p = _mm512_fmadd_pd(p, r, one);
        p = _mm512_fmadd_pd(p, r, one);
        let e = _mm512_sub_epi64(_mm512_castpd_si512(t), _mm512_set1_epi64(MAGIC_BIAS as i64));
        let scale = _mm512_castsi512_pd(_mm512_slli_epi64::<52>(e));
        // lanes with x >= -708 (or NaN) get p * 2^k, the others 0
        let keep = _mm512_cmp_pd_mask::<_CMP_NLT_UQ>(x, _mm512_set1_pd(EXP_LO));
        _mm512_maskz_mul_pd(keep, p, scale)
    }

    #[target_feature(enable = "avx2,fma")]
    #[inline]
    fn exp4(x: __m256d) -> __m256d {
        let magic = _mm256_set1_pd(MAGIC);
        let t = _mm256_fmadd_pd(x, _mm256_set1_pd(INV_LN2), magic);
        let kf = _mm256_sub_pd(t, magic);
        let r = _mm256_fnmadd_pd(kf, _mm256_set1_pd(LN2_HI), x);
        let r = _mm256_fnmadd_pd(kf, _mm256_set1_pd(LN2_LO), r);
        let mut p = _mm256_set1_pd(POLY[0]);
        for &c in &POLY[1..] {
            p = _mm256_fmadd_pd(p, r, _mm256_set1_pd(c));
        }
        let one = _mm256_set1_pd(1.0);
        p = _mm256_fmadd_pd(p, r, one);
        p = _mm256_fmadd_pd(p, r, one);
        let e = _mm256_sub_epi64(
            _mm256_castpd_si256(t),
            _mm256_set1_epi64x(MAGIC_BIAS as i64),
        );
        let scale = _mm256_castsi256_pd(_mm256_slli_epi64::<52>(e));
        let y = _mm256_mul_pd(p, scale);
        let under = _mm256_cmp_pd::<_CMP_LT_OQ>(x, _mm256_set1_pd(EXP_LO));
        _mm256_andnot_pd(under, y)
    }

    /// Running AVX-512 sums (8 lanes = [`LANES`]).
    #[derive(Clone, Copy)]
    struct S8 {
        acc: __m512d,
        mx: __m512d,
    }

    impl S8 {
        #[target_feature(enable = "avx512f")]
        #[inline]
        fn new() -> Self {
            S8 {
                acc: _mm512_setzero_pd(),
                mx: _mm512_set1_pd(f64::NEG_INFINITY),
            }
        }

        #[target_feature(enable = "avx512f,fma")]
        #[inline]
        fn step(&mut self, x: __m512d) {
            self.acc = _mm512_add_pd(self.acc, exp8(x));
            self.mx = _mm512_max_pd(x, self.mx);
        }

        #[target_feature(enable = "avx512f")]
        #[inline]
        fn finish(self, tail: (f64, f64)) -> ExpSum {
            let mut acc = [0.0f64; LANES];
            let mut mx = [0.0f64; LANES];
            // SAFETY: both arrays hold 8 f64.
            unsafe {
                _mm512_storeu_pd(acc.as_mut_ptr(), self.acc);
                _mm512_storeu_pd(mx.as_mut_ptr(), self.mx);
            }
            finish(&acc, &mx, tail)
        }
    }

    /// Running AVX2 sums (lanes 0–3 and 4–7).
    #[derive(Clone, Copy)]
    struct S4 {
        acc0: __m256d,
        acc1: __m256d,
        mx0: __m256d,
        mx1: __m256d,
    }

    impl S4 {
        #[target_feature(enable = "avx2")]
        #[inline]
        fn new() -> Self {
            let z = _mm256_setzero_pd();
            let m = _mm256_set1_pd(f64::NEG_INFINITY);
            S4 {
                acc0: z,
                acc1: z,
                mx0: m,
                mx1: m,
            }
        }

        #[target_feature(enable = "avx2,fma")]
        #[inline]
        fn step(&mut self, x0: __m256d, x1: __m256d) {
            self.acc0 = _mm256_add_pd(self.acc0, exp4(x0));
            self.acc1 = _mm256_add_pd(self.acc1, exp4(x1));
            self.mx0 = _mm256_max_pd(x0, self.mx0);
            self.mx1 = _mm256_max_pd(x1, self.mx1);
        }

        #[target_feature(enable = "avx2")]
        #[inline]
        fn finish(self, tail: (f64, f64)) -> ExpSum {
            let mut acc = [0.0f64; LANES];
            let mut mx = [0.0f64; LANES];
            // SAFETY: both arrays hold 8 f64 (two stores of 4 each).
            unsafe {
                _mm256_storeu_pd(acc.as_mut_ptr(), self.acc0);
                _mm256_storeu_pd(acc.as_mut_ptr().add(4), self.acc1);
                _mm256_storeu_pd(mx.as_mut_ptr(), self.mx0);
                _mm256_storeu_pd(mx.as_mut_ptr().add(4), self.mx1);
            }
            finish(&acc, &mx, tail)
        }
    }

    /// `row[idx[k]]` as `f64` (`-inf` past the row).
    #[inline(always)]
    fn at<T: crate::bytes::math::LogProb>(row: &[T], idx: &[u32], k: usize) -> f64 {
        row.get(idx[k] as usize)
            .map_or(f64::NEG_INFINITY, |v| v.to_f64())
    }

    /// AVX2 mask (all ones per 32-bit lane) of the indices below the row length; `lenx` is
    /// the length with its sign bit flipped (unsigned compare through a signed one).
    #[target_feature(enable = "avx2")]
    #[inline]
    fn below(vi: __m128i, lenx: __m128i) -> __m128i {
        _mm_cmpgt_epi32(lenx, _mm_xor_si128(vi, _mm_set1_epi32(i32::MIN)))
    }

    /// AVX-512 gather pass over an `f64` row.
    ///
    /// # Safety
    /// The CPU must support AVX-512F/VL and FMA; `row.len() <= i32::MAX`.
    #[target_feature(enable = "avx512f,avx512vl,fma")]
    pub(super) unsafe fn gather_f64_avx512(row: &[f64], idx: &[u32]) -> ExpSum {
        let n = idx.len();
        let body = n - n % LANES;
        let len = _mm256_set1_epi32(row.len() as i32);
        let ninf = _mm512_set1_pd(f64::NEG_INFINITY);
        let mut st = S8::new();
        let mut c = 0;
        while c < body {
            // SAFETY: `c + 8 <= n`. Lanes whose index is not below `row.len()` are masked
            // off (not read); the others are in bounds, and non-negative as i32 offsets
            // since `row.len() <= i32::MAX`.
            let x = unsafe {
                let vi = _mm256_loadu_si256(idx.as_ptr().add(c) as *const __m256i);
                let ok = _mm256_cmplt_epu32_mask(vi, len);
                _mm512_mask_i32gather_pd::<8>(ninf, ok, vi, row.as_ptr())
            };
            st.step(x);
            c += LANES;
        }
        st.finish(tail_sum(body, n, |k| at(row, idx, k)))
    }

    /// AVX-512 gather pass over an `f32` row: 16 values per gather, widened exactly.
    ///
    /// # Safety
    /// As for [`gather_f64_avx512`].
    #[target_feature(enable = "avx512f,avx512vl,fma")]
    pub(super) unsafe fn gather_f32_avx512(row: &[f32], idx: &[u32]) -> ExpSum {
        let n = idx.len();
        let body = n - n % LANES;
        let len = _mm512_set1_epi32(row.len() as i32);
        let ninf = _mm512_set1_ps(f32::NEG_INFINITY);
        let mut st = S8::new();
        let mut c = 0;
        while c + 2 * LANES <= body {
            // SAFETY: `c + 16 <= n`; masked-off lanes are not read, the others are in
            // bounds (see `gather_f64_avx512`).
            let x = unsafe {
                let vi = _mm512_loadu_si512(idx.as_ptr().add(c) as *const __m512i);
                let ok = _mm512_cmplt_epu32_mask(vi, len);
                _mm512_mask_i32gather_ps::<4>(ninf, ok, vi, row.as_ptr())
            };
            // values c..c+8, then c+8..c+16: the same order as 8 at a time
            st.step(_mm512_cvtps_pd(_mm512_castps512_ps256(x)));
            st.step(_mm512_cvtpd_ps_hi(x));
            c += 2 * LANES;
        }
        if c < body {
            // SAFETY: `c + 8 <= n`; as above with 8 lanes.
            let x = unsafe {
                let vi = _mm256_loadu_si256(idx.as_ptr().add(c) as *const __m256i);
                let ok = _mm256_cmplt_epu32_mask(vi, _mm512_castsi512_si256(len));
                _mm256_mmask_i32gather_ps::<4>(
                    _mm256_set1_ps(f32::NEG_INFINITY),
                    ok,
                    vi,
                    row.as_ptr(),
                )
            };
            st.step(_mm512_cvtps_pd(x));
        }
        st.finish(tail_sum(body, n, |k| at(row, idx, k)))
    }

    /// The upper 8 `f32` lanes widened to `f64`.
    #[target_feature(enable = "avx512f")]
    #[inline]
    fn _mm512_cvtpd_ps_hi(x: __m512) -> __m512d {
        _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(
            _mm512_castps_pd(x),
        )))
    }

    /// AVX2 gather pass over an `f64` row.
    ///
    /// # Safety
    /// The CPU must support AVX2 and FMA; `row.len() <= i32::MAX`.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn gather_f64_avx2(row: &[f64], idx: &[u32]) -> ExpSum {
        let n = idx.len();
        let body = n - n % LANES;
        let lenx = _mm_set1_epi32((row.len() as u32 ^ 0x8000_0000) as i32);
        let ninf = _mm256_set1_pd(f64::NEG_INFINITY);
        let mut st = S4::new();
        let mut c = 0;
        while c < body {
            // SAFETY: `c + 8 <= n`; masked-off lanes (index not below `row.len()`) are not
            // read, the others are in bounds.
            let (x0, x1) = unsafe {
                let v0 = _mm_loadu_si128(idx.as_ptr().add(c) as *const __m128i);
                let v1 = _mm_loadu_si128(idx.as_ptr().add(c + 4) as *const __m128i);
                let m0 = _mm256_castsi256_pd(_mm256_cvtepi32_epi64(below(v0, lenx)));
                let m1 = _mm256_castsi256_pd(_mm256_cvtepi32_epi64(below(v1, lenx)));
                (
                    _mm256_mask_i32gather_pd::<8>(ninf, row.as_ptr(), v0, m0),
                    _mm256_mask_i32gather_pd::<8>(ninf, row.as_ptr(), v1, m1),
                )
            };
            st.step(x0, x1);
            c += LANES;
        }
        st.finish(tail_sum(body, n, |k| at(row, idx, k)))
    }

    /// AVX2 gather pass over an `f32` row (values widened exactly to `f64`).
    ///
    /// # Safety
    /// As for [`gather_f64_avx2`].
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn gather_f32_avx2(row: &[f32], idx: &[u32]) -> ExpSum {
        let n = idx.len();
        let body = n - n % LANES;
        let lenx = _mm256_set1_epi32((row.len() as u32 ^ 0x8000_0000) as i32);
        let ninf = _mm256_set1_ps(f32::NEG_INFINITY);
        let mut st = S4::new();
        let mut c = 0;
        while c < body {
            // SAFETY: as in `gather_f64_avx2`, 8 `f32` lanes.
            let x = unsafe {
                let vi = _mm256_loadu_si256(idx.as_ptr().add(c) as *const __m256i);
                let ok =
                    _mm256_cmpgt_epi32(lenx, _mm256_xor_si256(vi, _mm256_set1_epi32(i32::MIN)));
                _mm256_mask_i32gather_ps::<4>(ninf, row.as_ptr(), vi, _mm256_castsi256_ps(ok))
            };
            st.step(
                _mm256_cvtps_pd(_mm256_castps256_ps128(x)),
                _mm256_cvtps_pd(_mm256_extractf128_ps::<1>(x)),
            );
            c += LANES;
        }
        st.finish(tail_sum(body, n, |k| at(row, idx, k)))
    }

    /// AVX-512 pass over a slice.
    ///
    /// # Safety
    /// The CPU must support AVX-512F and FMA.
    #[target_feature(enable = "avx512f,fma")]
    pub(super) unsafe fn slice_avx512(v: &[f64]) -> ExpSum {
        let n = v.len();
        let body = n - n % LANES;
        let mut st = S8::new();
        let mut c = 0;
        while c < body {
            // SAFETY: `c + 8 <= n`.
            st.step(unsafe { _mm512_loadu_pd(v.as_ptr().add(c)) });
            c += LANES;
        }
        st.finish(tail_sum(body, n, |k| v[k]))
    }

    /// AVX2 pass over a slice.
    ///
    /// # Safety
    /// The CPU must support AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn slice_avx2(v: &[f64]) -> ExpSum {
        let n = v.len();
        let body = n - n % LANES;
        let mut st = S4::new();
        let mut c = 0;
        while c < body {
            // SAFETY: `c + 8 <= n`.
            let (x0, x1) = unsafe {
                (
                    _mm256_loadu_pd(v.as_ptr().add(c)),
                    _mm256_loadu_pd(v.as_ptr().add(c + 4)),
                )
            };
            st.step(x0, x1);
            c += LANES;
        }
        st.finish(tail_sum(body, n, |k| v[k]))
    }
}

/// Largest block of the two-pass fallback.
pub const BLOCK: usize = 256;

/// `(max, all values are not NaN)` of a block (`-inf` for an empty block).
fn max_ok(v: &[f64]) -> (f64, bool) {
    let mut m = f64::NEG_INFINITY;
    let mut ok = true;
    for &x in v {
        m = if x > m { x } else { m };
        ok &= !x.is_nan();
    }
    (m, ok)
}

/// A running log-sum-exp: `m + ln(s)` with `m` a reference point (0 after fused passes,
/// a block maximum after the two-pass fallback).
#[derive(Clone, Copy, Debug)]
pub struct Lse {
    m: f64,
    s: f64,
    bad: bool,
    isa: Isa,
}

impl Default for Lse {
    fn default() -> Self {
        Self::new()
    }
}

impl Lse {
    /// Nothing summed yet (`value() == -inf`), with the CPU's fastest kernels.
    #[inline]
    pub fn new() -> Self {
        Self::with_isa(Isa::detect())
    }

    /// Nothing summed yet, with the given kernels (see [`Isa::available`]).
    #[inline]
    pub fn with_isa(isa: Isa) -> Self {
        Lse {
            m: f64::NEG_INFINITY,
            s: 0.0,
            bad: false,
            isa,
        }
    }

    /// Whether a NaN or `+inf` was seen.
    #[inline]
    pub fn bad(&self) -> bool {
        self.bad
    }

    /// `log(sum(exp(values seen)))`; `-inf` if empty or all `-inf`.
    #[inline]
    pub fn value(&self) -> f64 {
        if self.bad {
            f64::NAN
        } else if self.s > 0.0 {
            self.m + self.s.ln()
        } else {
            f64::NEG_INFINITY
        }
    }

    /// Add `s` relative to reference point `m`.
    #[inline]
    fn add_ms(&mut self, m: f64, s: f64) {
        if s <= 0.0 {
            return;
        }
        if m == self.m {
            self.s += s;
        } else if m > self.m {
            self.s = self.s * exp_neg(self.m - m) + s;
            self.m = m;
        } else {
            self.s += s * exp_neg(m - self.m);
        }
    }

    /// Take a fused pass; `false` when its values must be summed again relative to their
    /// maximum (above `FAST_MAX`, `+inf` included, or below `FAST_MIN`).
    #[inline]
    fn take(&mut self, e: ExpSum) -> bool {
        if e.max > FAST_MAX {
            return false;
        }
        if e.sum.is_nan() {
            self.bad = true;
        } else if e.max >= FAST_MIN {
            self.add_ms(0.0, e.sum);
        } else if e.max > f64::NEG_INFINITY {
            return false;
        }
        true
    }

    /// The fallback: per block, the maximum, then the sum relative to it.
    fn add_two_pass(&mut self, v: &[f64]) {
        for b in v.chunks(BLOCK) {
            let (m, ok) = max_ok(b);
            if !ok || m == f64::INFINITY {
                self.bad = true;
                return;
            }
            if m > f64::NEG_INFINITY {
                let s = b.iter().map(|&x| exp_neg(x - m)).sum();
                self.add_ms(m, s);
            }
        }
    }

    /// Add values.
    pub fn add(&mut self, v: &[f64]) {
        if !self.take(exp_sum(v, self.isa)) {
            self.add_two_pass(v);
        }
    }

    /// Add `row[i]` for every `i` in `idx` (an index past the row counts as `-inf`).
    pub fn add_gather<T: LogProb>(&mut self, row: &[T], idx: &[u32]) {
        if !self.take(T::gather_exp_sum(row, idx, self.isa)) {
            let mut buf = [0.0f64; BLOCK];
            for b in idx.chunks(BLOCK) {
                let out = &mut buf[..b.len()];
                gather(row, b, out);
                self.add_two_pass(out);
            }
        }
    }

    /// Add everything another accumulator has seen.
    pub fn merge(&mut self, o: &Lse) {
        self.bad |= o.bad;
        self.add_ms(o.m, o.s);
    }
}

/// `out[k] = row[idx[k]]` as `f64` (`-inf` past the end of the row).
#[inline]
pub fn gather<T: LogProb>(row: &[T], idx: &[u32], out: &mut [f64]) {
    for (o, &i) in out.iter_mut().zip(idx) {
        *o = match row.get(i as usize) {
            Some(v) => v.to_f64(),
            None => f64::NEG_INFINITY,
        };
    }
}

/// Log-sum-exp of a slice with the fused kernels (`NaN` if it holds NaN or `+inf`).
pub fn lse(v: &[f64]) -> f64 {
    let mut a = Lse::new();
    a.add(v);
    a.value()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_neg_accuracy() {
        let mut x = 0.0f64;
        while x > -760.0 {
            let a = exp_neg(x);
            let b = x.exp();
            if x >= -708.0 {
                assert!(((a - b) / b).abs() < 1e-14, "{x} {a} {b}");
            } else {
                assert_eq!(a, 0.0, "{x}");
            }
            x -= 0.0137;
        }
        assert_eq!(exp_neg(f64::NEG_INFINITY), 0.0);
        assert_eq!(exp_neg(0.0), 1.0);
        assert_eq!(exp_neg(-0.0), 1.0);
    }

    #[test]
    fn neg_inf_safe() {
        assert_eq!(logsumexp(&[]), f64::NEG_INFINITY);
        assert_eq!(logsumexp(&[f64::NEG_INFINITY; 3]), f64::NEG_INFINITY);
        assert_eq!(
            logaddexp(f64::NEG_INFINITY, f64::NEG_INFINITY),
            f64::NEG_INFINITY
        );
        assert!((logsumexp(&[0.0, 0.0]) - 2f64.ln()).abs() < 1e-15);
        assert!((logaddexp(-1000.0, -1000.0) - (-1000.0 + 2f64.ln())).abs() < 1e-12);
        assert_eq!(lse(&[]), f64::NEG_INFINITY);
        assert_eq!(lse(&[f64::NEG_INFINITY; 300]), f64::NEG_INFINITY);
    }

    fn lcg(state: &mut u64) -> f64 {
        *state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (*state >> 11) as f64 / (1u64 << 53) as f64
    }

    #[test]
    fn block_lse_matches_reference() {
        let mut st = 7u64;
        for &n in &[1usize, 3, 7, 8, 9, 255, 256, 257, 1000, 5003] {
            for &scale in &[1.0, 30.0, 2000.0] {
                let mut v: Vec<f64> = (0..n).map(|_| -lcg(&mut st) * scale).collect();
                if n > 4 {
                    v[n / 2] = f64::NEG_INFINITY;
                    // a late, much larger block maximum forces a rescale
                    v[n - 1] = 50.0;
                }
                let want = logsumexp(&v);
                let got = lse(&v);
                assert!(
                    (got - want).abs() <= 1e-13 * want.abs().max(1.0),
                    "{n} {scale} {got} {want}"
                );
                // gather through a permutation, f32 and f64 rows, and merging halves
                let idx: Vec<u32> = (0..n as u32).rev().collect();
                let mut a = Lse::new();
                a.add_gather(&v, &idx);
                assert!((a.value() - want).abs() <= 1e-13 * want.abs().max(1.0));
                let v32: Vec<f32> = v.iter().map(|&x| x as f32).collect();
                let want32 = logsumexp(&v32.iter().map(|&x| x as f64).collect::<Vec<_>>());
                let mut b = Lse::new();
                b.add_gather(&v32, &idx);
                assert!((b.value() - want32).abs() <= 1e-13 * want32.abs().max(1.0));
                let (l, r) = v.split_at(n / 3);
                let mut x = Lse::new();
                x.add(r);
                let mut y = Lse::new();
                y.add(l);
                y.merge(&x);
                assert!((y.value() - want).abs() <= 1e-13 * want.abs().max(1.0));
            }
        }
    }

    /// Reference `log(sum(exp(v)))` in the obvious two-pass way with libm's `exp`.
    fn reference(v: &[f64]) -> f64 {
        let m = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        if !m.is_finite() {
            return m;
        }
        m + v.iter().map(|&x| (x - m).exp()).sum::<f64>().ln()
    }

    #[test]
    fn exp_fast_accuracy() {
        // ~1.9 M points over the whole range, stepping through every residue of x / ln2
        let mut worst = 0.0f64;
        let mut x = -708.0f64;
        while x <= 708.0 {
            let (a, b) = (exp_fast(x), x.exp());
            worst = worst.max(((a - b) / b).abs());
            x += 7.31e-4;
        }
        eprintln!("exp_fast: max relative error {worst:e}");
        assert!(worst < 5e-16, "max relative error {worst:e}");
        for x in [0.0, -0.0, 1.0, -1.0, -1e-300, 1e-300, -707.9, 707.9] {
            assert!(((exp_fast(x) - x.exp()) / x.exp()).abs() < 5e-16, "{x}");
        }
        assert_eq!(exp_fast(0.0), 1.0);
        for x in [-708.0001, -709.0, -745.2, -1e6, f64::MIN, f64::NEG_INFINITY] {
            assert_eq!(exp_fast(x), 0.0, "{x}");
        }
        assert!(exp_fast(f64::NAN).is_nan());
    }

    /// Random values: mostly log-probabilities, some `-inf`, some extreme.
    fn values(st: &mut u64, n: usize) -> Vec<f64> {
        (0..n)
            .map(|_| {
                let u = lcg(st);
                match (u * 1000.0) as u32 {
                    0..=29 => f64::NEG_INFINITY,
                    30..=39 => -700.0 - 20.0 * lcg(st),
                    _ => -40.0 * lcg(st),
                }
            })
            .collect()
    }

    #[test]
    fn kernels_agree_bit_for_bit() {
        let isas = Isa::available();
        assert_eq!(isas[0], Isa::Scalar);
        let mut st = 11u64;
        for &n in &[
            0usize, 1, 5, 7, 8, 9, 15, 16, 17, 23, 24, 25, 100, 1000, 4099,
        ] {
            let v = values(&mut st, n);
            let row = values(&mut st, 3000);
            let row32: Vec<f32> = row.iter().map(|&x| x as f32).collect();
            // indices in random order, some past the end of the row
            let idx: Vec<u32> = (0..n).map(|_| (lcg(&mut st) * 3100.0) as u32).collect();
            let res = |isa: Isa| {
                (
                    exp_sum(&v, isa),
                    f64::gather_exp_sum(&row, &idx, isa),
                    f32::gather_exp_sum(&row32, &idx, isa),
                )
            };
            let base = res(isas[isas.len() - 1]);
            for &isa in &isas {
                let got = res(isa);
                if isa != Isa::Scalar || cfg!(target_feature = "fma") {
                    assert_eq!(got, base, "{isa:?} {n}");
                } else {
                    // the portable kernel rounds multiply-adds twice on this target
                    for (a, b) in [(got.0, base.0), (got.1, base.1), (got.2, base.2)] {
                        assert_eq!(a.max, b.max);
                        assert!((a.sum - b.sum).abs() <= 1e-14 * b.sum, "{isa:?} {n}");
                    }
                }
            }
            // and they are right
            let want: Vec<f64> = idx
                .iter()
                .map(|&i| row.get(i as usize).copied().unwrap_or(f64::NEG_INFINITY))
                .collect();
            let want32: Vec<f64> = idx
                .iter()
                .map(|&i| {
                    row32
                        .get(i as usize)
                        .map_or(f64::NEG_INFINITY, |&x| x as f64)
                })
                .collect();
            for &isa in &isas {
                for (got, want) in [
                    (
                        {
                            let mut a = Lse::with_isa(isa);
                            a.add(&v);
                            a.value()
                        },
                        reference(&v),
                    ),
                    (
                        {
                            let mut a = Lse::with_isa(isa);
                            a.add_gather(&row, &idx);
                            a.value()
                        },
                        reference(&want),
                    ),
                    (
                        {
                            let mut a = Lse::with_isa(isa);
                            a.add_gather(&row32, &idx);
                            a.value()
                        },
                        reference(&want32),
                    ),
                ] {
                    assert!(
                        got == want || (got - want).abs() <= 1e-13 * want.abs().max(1.0),
                        "{isa:?} {n} {got} {want}"
                    );
                }
            }
        }
    }

    #[test]
    fn fallback_outside_the_fast_range() {
        for isa in Isa::available() {
            for shift in [
                -5000.0, -1000.0, -650.0, -600.5, 600.5, 700.0, 710.0, 1e4, 1e300,
            ] {
                let v: Vec<f64> = (0..37).map(|i| shift - i as f64 * 0.25).collect();
                let mut a = Lse::with_isa(isa);
                a.add(&v);
                let want = reference(&v);
                assert!(
                    (a.value() - want).abs() <= 1e-13 * want.abs(),
                    "{isa:?} {shift} {} {want}",
                    a.value()
                );
                // mixed with ordinary values in one accumulator
                let mut b = Lse::with_isa(isa);
                b.add(&[-1.0, -2.0]);
                b.add_gather(&v, &(0..37).rev().collect::<Vec<u32>>());
                let mut all = v.clone();
                all.extend([-1.0, -2.0]);
                let want = reference(&all);
                assert!(
                    (b.value() - want).abs() <= 1e-13 * want.abs().max(1.0),
                    "{isa:?} {shift} {} {want}",
                    b.value()
                );
            }
            // NaN and +inf anywhere (body or tail, fast or fallback range) are reported
            for n in [3usize, 8, 19, 40] {
                for at in [0, n / 2, n - 1] {
                    for bad in [f64::NAN, f64::INFINITY] {
                        for base in [-3.0, -900.0, 800.0] {
                            let mut v = vec![base; n];
                            v[at] = bad;
                            let mut a = Lse::with_isa(isa);
                            a.add(&v);
                            assert!(a.bad() && a.value().is_nan(), "{isa:?} {n} {at} {bad}");
                            let idx: Vec<u32> = (0..n as u32).collect();
                            let mut b = Lse::with_isa(isa);
                            b.add_gather(&v, &idx);
                            assert!(b.bad(), "{isa:?} {n} {at} {bad} gather");
                            let v32: Vec<f32> = v.iter().map(|&x| x as f32).collect();
                            let mut c = Lse::with_isa(isa);
                            c.add_gather(&v32, &idx);
                            assert!(c.bad(), "{isa:?} {n} {at} {bad} f32");
                        }
                    }
                }
            }
            let mut a = Lse::with_isa(isa);
            a.add(&[f64::NAN; 9]);
            assert!(a.bad());
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(
            std::env::var("PROPTEST_CASES").ok().and_then(|s| s.parse().ok()).unwrap_or(300)
        ))]
        /// Every kernel's log-sum-exp equals the two-pass libm reference, for slices and
        /// gathers from f64 and f32 rows.
        #[test]
        fn lse_matches_reference(
            v in proptest::collection::vec(
                proptest::prop_oneof![
                    8 => -60.0f64..0.0,
                    1 => proptest::prelude::Just(f64::NEG_INFINITY),
                    1 => -2000.0f64..2000.0,
                ],
                0..300,
            ),
            seed in 0u64..1000,
        ) {
            let mut st = seed;
            let idx: Vec<u32> = (0..v.len())
                .map(|_| (lcg(&mut st) * (v.len() as f64 + 3.0)) as u32)
                .collect();
            let g: Vec<f64> = idx
                .iter()
                .map(|&i| v.get(i as usize).copied().unwrap_or(f64::NEG_INFINITY))
                .collect();
            let v32: Vec<f32> = v.iter().map(|&x| x as f32).collect();
            let g32: Vec<f64> = idx
                .iter()
                .map(|&i| v32.get(i as usize).map_or(f64::NEG_INFINITY, |&x| x as f64))
                .collect();
            for isa in Isa::available() {
                let mut a = Lse::with_isa(isa);
                a.add(&v);
                let mut b = Lse::with_isa(isa);
                b.add_gather(&v, &idx);
                let mut c = Lse::with_isa(isa);
                c.add_gather(&v32, &idx);
                for (got, want) in [(a.value(), reference(&v)), (b.value(), reference(&g)), (c.value(), reference(&g32))] {
                    proptest::prop_assert!(
                        got == want || (got - want).abs() <= 1e-13 * want.abs().max(1.0),
                        "{:?} {} {}", isa, got, want
                    );
                }
            }
        }
    }

    #[test]
    fn bad_values_are_reported() {
        let mut v = vec![-1.0; 100];
        v[37] = f64::NAN;
        assert!(lse(&v).is_nan());
        v[37] = f64::INFINITY;
        assert!(lse(&v).is_nan());
        v[37] = f64::NEG_INFINITY;
        assert!(lse(&v).is_finite());
        let mut a = Lse::new();
        a.add_gather(&v, &[500, 600]);
        assert_eq!(a.value(), f64::NEG_INFINITY);
        assert!(!a.bad());
    }
}
