//! Helpers shared by the examples (not an example itself: no `main.rs`).
#![allow(dead_code)] // each example uses only some of these

/// CPU time of the calling thread in seconds: less sensitive than wall time to other
/// processes competing for the cores.
pub fn thread_cpu() -> f64 {
    #[repr(C)]
    struct Timespec {
        sec: i64,
        nsec: i64,
    }
    extern "C" {
        fn clock_gettime(clk: i32, ts: *mut Timespec) -> i32;
    }
    const CLOCK_THREAD_CPUTIME_ID: i32 = 3;
    let mut ts = Timespec { sec: 0, nsec: 0 };
    // SAFETY: clock_gettime writes one timespec, which we own (Linux x86-64 layout: two i64).
    unsafe { clock_gettime(CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.sec as f64 + ts.nsec as f64 * 1e-9
}

/// User + system CPU seconds of this process (Linux; 0 elsewhere).
pub fn process_cpu() -> f64 {
    let s = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let f: Vec<&str> = s
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let t = |i: usize| f.get(i).and_then(|x| x.parse::<f64>().ok()).unwrap_or(0.0);
    (t(11) + t(12)) / 100.0
}

/// The documents of a corpus as the benches cut them: at most 8 KB, cut at line ends
/// (a longer line is one document).
pub fn chunks(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut last = 0;
    for (i, _) in text.match_indices('\n') {
        let end = i + 1;
        if end - start > 8192 && last > start {
            out.push(&text[start..last]);
            start = last;
        }
        last = end;
    }
    if start < text.len() {
        out.push(&text[start..]);
    }
    out
}

/// A `.tiktoken` vocabulary with a known pattern by name (see [`pattern`]); panics with
/// the path on a bad file (examples only).
pub fn load_encoding(vocab: &str, pattern_name: &str) -> supertok_core::CoreEncoding {
    let data = std::fs::read(vocab).unwrap_or_else(|e| panic!("{vocab}: {e}"));
    supertok_core::CoreEncoding::from_tiktoken_bytes(&data, vocab, vec![], pattern(pattern_name))
        .unwrap_or_else(|e| panic!("{vocab}: {e}"))
}

/// A known pattern by name: `r50k`, `cl100k`, anything else o200k.
pub fn pattern(name: &str) -> &'static str {
    use supertok_core::pretok::patterns;
    match name {
        "r50k" => patterns::R50K,
        "cl100k" => patterns::CL100K,
        _ => patterns::O200K,
    }
}

/// The median of `v` (the upper one for an even length; `v` must not be empty).
pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Repetitions from the `REPS` environment variable, else `default`.
pub fn reps(default: usize) -> usize {
    env_usize("REPS", default)
}

/// The environment variable `name` as a number (`default` if unset or not a number).
pub fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// The A/B examples' variant list: `VARS=0,2` (default `default`).
pub fn variants(default: &[usize]) -> Vec<usize> {
    std::env::var("VARS")
        .ok()
        .map(|s| s.split(',').filter_map(|x| x.parse().ok()).collect())
        .unwrap_or_else(|| default.to_vec())
}

/// The encoder examples' command line `VOCAB PATTERN CORPUS...`: the encoding and the corpora
/// (exits with a usage message naming `example` when they are missing).
pub fn encoder_args(example: &str) -> (supertok_core::CoreEncoding, Vec<String>) {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 4 {
        eprintln!("usage: {example} VOCAB PATTERN(r50k|cl100k|o200k) CORPUS...");
        std::process::exit(2);
    }
    (load_encoding(&args[1], &args[2]), args[3..].to_vec())
}

/// The command line and set-up shared by the SuperBPE profiling examples:
/// `FILE [VOCAB] [TRANSITION] [N]` (vocabulary 32,768 and transition 0.8 by default; `N`
/// is the example's own fourth argument) and the paper presets' two splitters.
pub struct SuperbpeRun {
    pub files: Vec<String>,
    pub vocab: usize,
    /// Stage-1 merges: `round(transition * vocab) - 256`.
    pub n1: usize,
    /// The fourth argument, or the example's default.
    pub n: usize,
    pub s1: supertok_core::superbpe::HfSplitter,
    pub s2: supertok_core::superbpe::HfSplitter,
}

impl SuperbpeRun {
    /// Parse the command line; `n_default` is the fourth argument's default.
    pub fn from_args(n_default: usize) -> Self {
        use supertok_core::superbpe::{presets, HfSplitter};
        let args: Vec<String> = std::env::args().collect();
        let file = args.get(1).expect("FILE").clone();
        let vocab: usize = args.get(2).map_or(32768, |v| v.parse().expect("vocab"));
        let tr: f64 = args.get(3).map_or(0.8, |v| v.parse().expect("transition"));
        let n: usize = args
            .get(4)
            .map_or(n_default, |v| v.parse().expect("4th argument"));
        let splitter = |stage| {
            HfSplitter::new(&presets::preset("paper", stage).expect("preset")).expect("splitter")
        };
        SuperbpeRun {
            files: vec![file],
            vocab,
            n1: ((tr * vocab as f64).round() as usize).saturating_sub(256),
            n,
            s1: splitter(presets::Stage::One),
            s2: splitter(presets::Stage::Two),
        }
    }

    /// A rayon pool of `threads` threads.
    pub fn pool(&self, threads: usize) -> rayon::ThreadPool {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .expect("pool")
    }

    /// Stage 1's training configuration (`256 + n1` tokens, no specials).
    pub fn stage1_config(&self) -> supertok_core::train::TrainConfig {
        supertok_core::train::TrainConfig {
            vocab_size: 256 + self.n1,
            special_tokens: vec![],
            min_frequency: 1,
            max_token_length: None,
        }
    }
}

/// The A/B examples' result line: each variant's median (seconds per pass over `nb`
/// bytes) as ns/B and as the first variant's time over its own.
pub fn variant_columns(vars: &[usize], medians: &[f64], nb: f64) -> String {
    vars.iter()
        .zip(medians)
        .map(|(v, x)| format!("v{v} {:.2} ns/B ({:.3}x)", x * 1e9 / nb, medians[0] / x))
        .collect::<Vec<_>>()
        .join("  ")
}

/// The A/B examples' timing: `rounds` rounds over the variants `vars` (the order rotating
/// every round), each pass starting with the thread's piece cache cleared; the median
/// thread-CPU seconds of `pass(variant)` per variant.
pub fn interleaved_medians(vars: &[usize], rounds: usize, mut pass: impl FnMut(usize)) -> Vec<f64> {
    let mut t: Vec<Vec<f64>> = vec![vec![]; vars.len()];
    for r in 0..rounds {
        for k in 0..vars.len() {
            let k = (k + r) % vars.len();
            supertok_core::piece_cache::clear_thread();
            let t0 = thread_cpu();
            pass(vars[k]);
            t[k].push(thread_cpu() - t0);
        }
    }
    t.into_iter().map(median).collect()
}
