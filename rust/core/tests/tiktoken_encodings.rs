//! Integration tests on the real bundled vocabularies (python/supertok/data).

use std::path::PathBuf;
use std::sync::OnceLock;

use proptest::prelude::*;
use supertok_core::pretok::patterns;
use supertok_core::special::SpecialSet;
use supertok_core::CoreEncoding;

fn data(file: &str) -> Vec<u8> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../python/supertok/data")
        .join(file);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn cl100k() -> &'static CoreEncoding {
    static E: OnceLock<CoreEncoding> = OnceLock::new();
    E.get_or_init(build_cl100k)
}

fn build_cl100k() -> CoreEncoding {
    CoreEncoding::from_tiktoken_bytes(
        &data("cl100k_base.tiktoken"),
        "cl100k_base.tiktoken",
        vec![
            ("<|endoftext|>".into(), 100257),
            ("<|fim_prefix|>".into(), 100258),
        ],
        patterns::CL100K,
    )
    .unwrap()
}

fn r50k() -> &'static CoreEncoding {
    static E: OnceLock<CoreEncoding> = OnceLock::new();
    E.get_or_init(build_r50k)
}

fn build_r50k() -> CoreEncoding {
    CoreEncoding::from_tiktoken_bytes(
        &data("r50k_base.tiktoken"),
        "r50k_base.tiktoken",
        vec![("<|endoftext|>".into(), 50256)],
        patterns::R50K,
    )
    .unwrap()
}

#[test]
fn known_ids() {
    let e = cl100k();
    assert_eq!(e.encode_ordinary("hello world").unwrap(), vec![15339, 1917]);
    let all = SpecialSet::all(e.specials().len());
    let none = SpecialSet::none(e.specials().len());
    assert_eq!(
        e.encode("hello <|endoftext|>", &all, &none).unwrap(),
        vec![15339, 220, 100257]
    );
    assert!(e.encode("hello <|endoftext|>", &none, &all).is_err());
    assert_eq!(e.encode_bytes(b" \xec\x8b\xa4\xed").unwrap(), vec![62085]);
    let g = r50k();
    assert_eq!(g.encode_ordinary("hello world").unwrap(), vec![31373, 995]);
    assert_eq!(
        g.encode_ordinary(&"0".repeat(17)).unwrap(),
        vec![8269, 10535, 830]
    );
}

#[test]
fn long_pieces_are_fast_and_roundtrip() {
    let e = cl100k();
    let text = "x".repeat(200_000);
    let ids = e.encode_ordinary(&text).unwrap();
    assert_eq!(e.decode_bytes(&ids).unwrap(), text.as_bytes());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn roundtrip_any_string(s in "\\PC{0,64}") {
        let e = cl100k();
        let ids = e.encode_ordinary(&s).unwrap();
        prop_assert_eq!(e.decode_bytes(&ids).unwrap(), s.as_bytes());
    }

    #[test]
    fn roundtrip_any_bytes(b in proptest::collection::vec(any::<u8>(), 0..64)) {
        let e = r50k();
        let ids = e.encode_bytes(&b).unwrap();
        prop_assert_eq!(e.decode_bytes(&ids).unwrap(), b);
    }

    #[test]
    fn whole_piece_equals_merge_for_tokens(id in 0u32..100_000) {
        // every cl100k token is its own encoding
        let e = cl100k();
        if let Some(b) = e.vocab().bytes(id) {
            let mut out = vec![];
            e.bpe_piece(b, &mut out).unwrap();
            prop_assert_eq!(out, vec![id]);
        }
    }
}
