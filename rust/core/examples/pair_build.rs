//! Build time and size of the merge's pair table (`pair_table::PairTable`) for a
//! `.tiktoken` vocabulary: `cargo run --release -p supertok-core --example pair_build -- VOCAB...`

use supertok_core::pair_table::PairTable;

mod common;

fn main() {
    for path in std::env::args().skip(1) {
        let enc = common::load_encoding(&path, "o200k");
        let t = std::time::Instant::now();
        let table = PairTable::build(enc.vocab()).expect("every byte has a token");
        let dt = t.elapsed();
        println!(
            "{path}: {} pairs, {:.1} MiB, load {:.2}, built in {:.1} ms",
            table.len(),
            table.size_bytes() as f64 / (1 << 20) as f64,
            table.len() as f64 / (table.size_bytes() / 8) as f64,
            dt.as_secs_f64() * 1e3
        );
    }
}
